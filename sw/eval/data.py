"""Real text for the evaluation: the English-Wikipedia excerpt shipped in the ``gensim`` wheel.

``gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2`` is a
2016 MediaWiki XML dump excerpt. :func:`wiki_articles` keeps main-namespace (ns 0), non-redirect
pages and strips the markup with ``mwparserfromhell`` after removing templates, ``<ref>`` tags and
File/Image/Category/interlanguage links: 106 articles, ~2.93 M characters. :func:`wiki_text` joins
them as ``" = Title = \\n\\n" + body`` separated by blank lines (WikiText's header style).
:func:`tokenize` caches the token ids; :func:`splits` cuts disjoint evaluation (start of the text)
and calibration (end of the text) slices, and :func:`validation_slice` a third one just before the
calibration slice, for choosing settings without looking at the evaluation slice.
"""
from __future__ import annotations

import bz2
import hashlib
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

WIKI_FILE = "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
DROP_LINK_PREFIXES = ("file:", "image:", "category:", "media:")
_INTERWIKI = re.compile(r"^[a-z]{2,3}(-[a-z]+)*:")     # en:, simple:, zh-min-nan:, ...
_STRAY_REF = re.compile(r"<ref[^>]*/>|<ref[^>]*>.*?</ref>", re.S | re.I)
_BLANKS = re.compile(r"\n{3,}")


def wiki_dump_path() -> Path:
    """Path of the bz2 dump inside the installed gensim wheel (found without importing gensim)."""
    from .models import package_dir
    p = package_dir("gensim") / WIKI_FILE
    if not p.is_file():
        raise FileNotFoundError(f"{p} is missing: install gensim==4.4.0 (the eval dependency group)")
    return p


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def iter_pages(path: Path):
    """(title, ns, wikitext, is_redirect) for every <page> of a MediaWiki XML dump (bz2)."""
    with bz2.open(path, "rb") as f:
        for _, el in ET.iterparse(f, events=("end",)):
            if _local(el.tag) != "page":
                continue
            fields = {_local(c.tag): c for c in el}
            rev = fields.get("revision")
            text = ""
            if rev is not None:
                for c in rev:
                    if _local(c.tag) == "text":
                        text = c.text or ""
            title = fields["title"].text or ""
            ns = int(fields["ns"].text) if "ns" in fields else 0
            redirect = "redirect" in fields or text.lstrip().upper().startswith("#REDIRECT")
            yield title, ns, text, redirect
            el.clear()


def strip_markup(wikitext: str) -> str:
    """Plain text of one article: templates, <ref>s and File/Category/interwiki links removed, then
    ``mwparserfromhell``'s ``strip_code``; whitespace runs of blank lines collapsed."""
    import mwparserfromhell as mw
    code = mw.parse(wikitext)
    for t in code.filter_templates(recursive=False):
        try:
            code.remove(t)
        except ValueError:
            pass
    for tag in code.filter_tags(matches=lambda n: str(n.tag).lower() == "ref"):
        try:
            code.remove(tag)
        except ValueError:
            pass
    for link in code.filter_wikilinks():
        target = str(link.title).strip().lower().lstrip(":")
        if target.startswith(DROP_LINK_PREFIXES) or _INTERWIKI.match(target):
            try:
                code.remove(link)
            except ValueError:
                pass
    text = code.strip_code(normalize=True, collapse=True)
    text = _STRAY_REF.sub("", text)
    lines = [ln.rstrip() for ln in text.splitlines()]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def wiki_articles(path: Path | None = None) -> list[tuple[str, str]]:
    """(title, plain text) of the dump's ns-0, non-redirect articles with non-empty text, dump order."""
    out = []
    for title, ns, text, redirect in iter_pages(path or wiki_dump_path()):
        if ns != 0 or redirect:
            continue
        body = strip_markup(text)
        if body:
            out.append((title, body))
    return out


def join_articles(articles: list[tuple[str, str]]) -> str:
    """WikiText-style corpus: `` = Title = `` header, blank line, body; articles joined by blank lines."""
    return "\n\n".join(f" = {t} = \n\n{b}" for t, b in articles)


def wiki_text(cache_dir: Path | str | None = None) -> str:
    """The whole corpus as one string (cached as ``wiki-<hash>.txt`` in ``cache_dir`` if given)."""
    path = wiki_dump_path()
    if cache_dir is None:
        return join_articles(wiki_articles(path))
    key = hashlib.sha1(f"{path.stat().st_size}:{WIKI_FILE}:v1".encode()).hexdigest()[:12]
    f = Path(cache_dir) / f"wiki-{key}.txt"
    if f.is_file():
        return f.read_text(encoding="utf-8")
    text = join_articles(wiki_articles(path))
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(text, encoding="utf-8")
    return text


def _tokenizer_key(tok) -> str:
    name = getattr(tok, "name_or_path", "") or type(tok).__name__
    vocab = getattr(tok, "vocab_size", 0)
    probe = tok("The capital of France is Paris.\n\n = Title = ")["input_ids"]
    return hashlib.sha1(f"{type(tok).__name__}:{vocab}:{list(probe)}:{Path(str(name)).name}".encode()).hexdigest()[:12]


def tokenize(tok, text: str, cache_dir: Path | str | None = None) -> torch.Tensor:
    """Token ids ``[1, N]`` of ``text`` (no special tokens added), cached in ``cache_dir`` keyed by
    the tokenizer and a hash of the text."""
    if not isinstance(text, str) or not text:
        raise ValueError("text must be a non-empty str")
    f = None
    if cache_dir is not None:
        th = hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
        f = Path(cache_dir) / f"tokens-{_tokenizer_key(tok)}-{th}.pt"
        if f.is_file():
            return torch.load(f)
    enc = tok(text, add_special_tokens=False) if _accepts_special(tok) else tok(text)
    ids = torch.tensor([list(enc["input_ids"])], dtype=torch.long)
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        torch.save(ids, f)
    return ids


def _accepts_special(tok) -> bool:
    import inspect
    try:
        sig = inspect.signature(tok.__call__)
    except (TypeError, ValueError):
        return False
    return "add_special_tokens" in sig.parameters or any(
        p.kind == p.VAR_KEYWORD for p in sig.parameters.values())


def splits(ids: torch.Tensor, eval_tokens: int, calib_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint slices of ``ids`` ([1, N]): evaluation = the first ``eval_tokens``, calibration = the
    last ``calib_tokens``. Raises if the text is shorter than both together."""
    from .perplexity import check_ids
    ids = check_ids(ids)
    for name, v in (("eval_tokens", eval_tokens), ("calib_tokens", calib_tokens)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name}={v!r} must be a non-negative int")
    n = ids.shape[1]
    if eval_tokens + calib_tokens > n:
        raise ValueError(f"the text has {n} tokens, fewer than eval_tokens={eval_tokens} + "
                         f"calib_tokens={calib_tokens}; use a smaller preset or a longer text")
    return ids[:, :eval_tokens].clone(), ids[:, n - calib_tokens:].clone()


def validation_slice(ids: torch.Tensor, eval_tokens: int, calib_tokens: int, val_tokens: int) -> torch.Tensor:
    """The ``val_tokens`` tokens just before the calibration slice of :func:`splits` (``ids[:, n -
    calib_tokens - val_tokens : n - calib_tokens]``): disjoint from the evaluation and calibration
    slices, so settings (hyperparameters) chosen on it are not tuned on the evaluation text.
    Raises if the three slices do not fit in the text."""
    from .perplexity import check_ids
    ids = check_ids(ids)
    for name, v in (("eval_tokens", eval_tokens), ("calib_tokens", calib_tokens), ("val_tokens", val_tokens)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name}={v!r} must be a non-negative int")
    n = ids.shape[1]
    if eval_tokens + calib_tokens + val_tokens > n:
        raise ValueError(f"the text has {n} tokens, fewer than eval_tokens={eval_tokens} + calib_tokens="
                         f"{calib_tokens} + val_tokens={val_tokens}; use a smaller preset or a longer text")
    end = n - calib_tokens
    return ids[:, end - val_tokens:end].clone()


def calibration_slices(ids: torch.Tensor, eval_tokens: int, calib_tokens: int, val_tokens: int, n: int,
                       seed: int = 0) -> list[torch.Tensor]:
    """``n`` disjoint calibration slices of ``calib_tokens`` tokens each: slice 0 is :func:`splits`'
    calibration slice (the end of the text); the others are ``calib_tokens``-long blocks between the
    evaluation slice and the validation slice (:func:`validation_slice`), drawn without replacement by
    a generator seeded with ``seed``. All are disjoint from each other and from the evaluation and
    validation slices. Raises if the middle of the text holds fewer than ``n - 1`` blocks."""
    from .perplexity import check_ids
    ids = check_ids(ids)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} must be a positive int")
    first = splits(ids, eval_tokens, calib_tokens)[1]
    validation_slice(ids, eval_tokens, calib_tokens, val_tokens)     # checks the three fit
    if n == 1:
        return [first]
    lo, hi = eval_tokens, ids.shape[1] - calib_tokens - val_tokens
    blocks = (hi - lo) // calib_tokens if calib_tokens else 0
    if blocks < n - 1:
        raise ValueError(f"n={n}: the text between the evaluation and validation slices holds {blocks} "
                         f"block(s) of calib_tokens={calib_tokens}, fewer than the {n - 1} extra slices asked for")
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(blocks, generator=g)[:n - 1].tolist()
    return [first] + [ids[:, lo + b * calib_tokens: lo + (b + 1) * calib_tokens].clone() for b in pick]


_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def sentences(text: str, n: int, min_words: int = 6, max_words: int = 40, seed: int = 0) -> list[str]:
    """``n`` real sentences from ``text`` (lines that are not `` = headers = ``, split at sentence
    ends, ``min_words..max_words`` words), drawn with a fixed seed, in text order."""
    import random
    if n <= 0:
        raise ValueError(f"n={n!r} must be positive")
    pool = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("="):
            continue
        for s in _SENT.split(line):
            w = s.split()
            if min_words <= len(w) <= max_words and s[-1] in ".!?":
                pool.append(s)
    if len(pool) < n:
        raise ValueError(f"text has only {len(pool)} usable sentences, fewer than n={n}")
    idx = sorted(random.Random(seed).sample(range(len(pool)), n))
    return [pool[i] for i in idx]
