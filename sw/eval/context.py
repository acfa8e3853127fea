"""The evaluation context every ``sw.eval`` section receives, the presets, and the report types.

``build_context(preset)`` loads SmolLM2, the Wikipedia text, the disjoint evaluation/calibration
slices and the float reference perplexity once; ``tiny_context()`` builds the same object from
``tiny_llama`` and random token ids for unit tests. ``EvalContext.ppl(spec)`` is the one way
sections measure a quantized model: quantize per spec, perplexity on the evaluation slice (or, with
``split="val"``, on the validation slice that settings are chosen on), restore the float weights.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .hooks import QuantSpec, apply_weights, attach_act_kv, weights_restored
from .perplexity import perplexity


@dataclass(frozen=True)
class Preset:
    """Run size: ``eval_windows`` perplexity windows of ``window`` tokens on the evaluation slice,
    a disjoint calibration slice of ``calib_tokens`` tokens, and ``val_windows`` windows of a
    validation slice (disjoint from both) on which settings are chosen."""
    name: str
    eval_windows: int
    window: int
    calib_tokens: int
    val_windows: int = 2
    slices: int = 1           # calibration slices each algorithm figure is measured on (mean and spread)

    @property
    def eval_tokens(self) -> int:
        return self.eval_windows * self.window

    @property
    def val_tokens(self) -> int:
        return self.val_windows * self.window


PRESETS: dict[str, Preset] = {
    "smoke": Preset("smoke", eval_windows=2, window=128, calib_tokens=512, val_windows=2, slices=2),
    "quick": Preset("quick", eval_windows=1, window=2048, calib_tokens=8192, val_windows=1, slices=1),
    "full": Preset("full", eval_windows=8, window=2048, calib_tokens=16384, val_windows=4, slices=3),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"preset={name!r} is not one of {', '.join(PRESETS)}")
    return PRESETS[name]


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list]       # cells: str | int | float | None


@dataclass
class Section:
    key: str
    title: str
    text: str = ""
    tables: list[Table] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    seconds: float = 0.0


TINY_TEXT = (
    "The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a single step. "
    "Water boils at one hundred degrees Celsius at sea level. The library opens at nine in the morning. "
    "Anarchism is a political philosophy that rejects involuntary authority. Albedo measures how much light "
    "a surface reflects. Aristotle was a Greek philosopher and polymath. ASCII encodes characters as numbers. "
    "The cat sat on the mat and watched the rain. Prime numbers have exactly two divisors."
)


@dataclass
class EvalContext:
    """Shared state of one evaluation run; sections must leave ``model`` exactly as they found it."""
    model: nn.Module
    tokenizer: object
    eval_ids: torch.Tensor
    calib_ids: torch.Tensor
    preset: Preset
    reference: dict
    out_dir: Path
    seed: int = 0
    progress: bool = True
    text: str = ""            # the evaluation corpus (MiniLM sentences are drawn from it)
    tiny: bool = False        # built by tiny_context (sections use stand-ins for other real models)
    val_ids: torch.Tensor | None = None   # [1, V] validation slice (just before the calibration slice)
    calib_more: list = field(default_factory=list)   # calibration slices 1.. (disjoint; data.calibration_slices)
    params: dict = field(default_factory=dict)       # section key -> parameter overrides (``--set``)
    _memo: dict = field(default_factory=dict, repr=False)

    def split_ids(self, split: str = "eval") -> torch.Tensor:
        """Token ids of ``split``: ``"eval"`` (the evaluation slice) or ``"val"`` (the validation slice)."""
        if split == "eval":
            return self.eval_ids
        if split == "val":
            if self.val_ids is None:
                raise ValueError("split='val': this context has no validation slice (val_ids is None)")
            return self.val_ids
        raise ValueError(f"split={split!r} must be 'eval' or 'val'")

    def calib_slice(self, k: int) -> torch.Tensor:
        """Calibration slice ``k`` (0 = ``calib_ids``; 1 .. ``preset.slices - 1``: the other disjoint,
        seeded slices of the same length)."""
        n = 1 + len(self.calib_more)
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < n:
            raise ValueError(f"k={k!r}: this context has calibration slices 0..{n - 1}")
        return self.calib_ids if k == 0 else self.calib_more[k - 1]

    def _windows(self, windows: int | None, split: str) -> int:
        if windows is not None:
            return windows
        return self.reference["windows"] if split == "eval" else self.preset.val_windows

    def reference_for(self, windows: int | None = None, split: str = "eval") -> dict:
        """Float-model perplexity on the first ``windows`` windows of ``split`` (default: the preset's)."""
        ids = self.split_ids(split)
        nwin = self._windows(windows, split)
        if split == "eval" and nwin == self.reference["windows"]:
            return self.reference
        key = ("reference", split, nwin)
        if key not in self._memo:
            self._memo[key] = perplexity(self.model, ids, self.preset.window, nwin, self.progress)
        return self._memo[key]

    def ppl(self, spec: QuantSpec | None = None, model: nn.Module | None = None, windows: int | None = None,
            split: str = "eval") -> dict:
        """Quantize ``model or self.model`` per ``spec`` (weights RTN + act/KV hooks), perplexity on
        the ``split`` slice (``"eval"``, default, or ``"val"``; the preset's window, ``windows``
        overrides the number of windows), restore.

        Adds ``delta_pct`` (vs the float reference on the same windows), ``label``,
        ``bits_per_weight`` (16 for float weights) and ``quant_seconds``. Results for the context's
        own model are memoised by spec.
        """
        spec = spec or QuantSpec()
        if not isinstance(spec, QuantSpec):
            raise TypeError(f"spec must be a QuantSpec or None, got {type(spec).__name__}")
        m = self.model if model is None else model
        ids = self.split_ids(split)
        nwin = self._windows(windows, split)
        key = (repr(spec), split, nwin)
        if model is None and key in self._memo:
            return dict(self._memo[key])
        with weights_restored(m):
            info = apply_weights(m, spec, self.progress) if spec.quantizes_weights else None
            with attach_act_kv(m, spec):
                r = perplexity(m, ids, self.preset.window, nwin, self.progress)
        ref = self.reference_for(nwin, split)
        r["delta_pct"] = 100.0 * (r["ppl"] / ref["ppl"] - 1.0)
        r["label"] = spec.label()
        r["bits_per_weight"] = info["bits_per_weight"] if info else 16.0
        r["quant_seconds"] = info["seconds"] if info else 0.0
        if model is None:
            self._memo[key] = dict(r)
        return r

    def save_figure(self, fig, name: str, dpi: int = 110) -> str:
        """Lay out ``fig``, write it to ``out_dir / name``, close it; returns ``name`` (for Section.plots)."""
        import matplotlib.pyplot as plt
        fig.tight_layout()
        fig.savefig(self.out_dir / name, dpi=dpi)
        plt.close(fig)
        return name


class ByteTokenizer:
    """Stand-in tokenizer for tiny contexts: UTF-8 bytes as ids (vocab 256)."""
    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        return bytes(int(i) % 256 for i in ids).decode("utf-8", errors="replace")

    def __call__(self, text: str, return_tensors: str | None = None):
        ids = self.encode(text)
        return {"input_ids": torch.tensor([ids]) if return_tensors == "pt" else ids}


def tiny_context(out_dir: Path, seed: int = 0) -> EvalContext:
    """``tiny_llama(seed)`` + random token ids, preset "smoke"; runs every section in seconds.
    The ids are cut as evaluation | calibration | validation (all disjoint)."""
    from .models import tiny_llama
    preset = PRESETS["smoke"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = tiny_llama(seed)
    g = torch.Generator().manual_seed(seed)
    n_ec = preset.eval_tokens + preset.calib_tokens
    ids = torch.randint(0, model.config.vocab_size, (1, n_ec + preset.val_tokens), generator=g)
    eval_ids, calib_ids, val_ids = ids[:, :preset.eval_tokens], ids[:, preset.eval_tokens:n_ec], ids[:, n_ec:]
    more = [torch.randint(0, model.config.vocab_size, (1, preset.calib_tokens), generator=g)
            for _ in range(preset.slices - 1)]
    ref = perplexity(model, eval_ids, preset.window, preset.eval_windows, progress=False)
    return EvalContext(model=model, tokenizer=ByteTokenizer(), eval_ids=eval_ids, calib_ids=calib_ids,
                       preset=preset, reference=ref, out_dir=out_dir, seed=seed, progress=False,
                       text=TINY_TEXT, tiny=True, val_ids=val_ids, calib_more=more)


def build_context(preset: str | Preset = "quick", out_dir: Path | str = Path("build/reports"), seed: int = 0,
                  progress: bool = True, cache_dir: Path | str | None = None,
                  reference: dict | None = None) -> EvalContext:
    """Load SmolLM2 + the gensim Wikipedia text, cut the slices (evaluation: the start of the text;
    calibration: its end; validation: just before the calibration slice), measure the float reference
    (or take ``reference``, the one another process measured on the same preset)."""
    from . import data
    from .models import DEFAULT_CACHE, load_smollm2
    p = preset if isinstance(preset, Preset) else get_preset(preset)
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    model, tok = load_smollm2(cache)
    text = data.wiki_text(cache_dir=cache)
    ids = data.tokenize(tok, text, cache_dir=cache)
    eval_ids, calib_ids = data.splits(ids, p.eval_tokens, p.calib_tokens)
    val_ids = data.validation_slice(ids, p.eval_tokens, p.calib_tokens, p.val_tokens)
    more = data.calibration_slices(ids, p.eval_tokens, p.calib_tokens, p.val_tokens, p.slices, seed)[1:]
    load_seconds = time.perf_counter() - t0
    if reference is None:
        ref = perplexity(model, eval_ids, p.window, p.eval_windows, progress)
        ref["load_seconds"] = load_seconds
        ref["corpus_tokens"] = int(ids.shape[1])
    else:
        ref = dict(reference)
    return EvalContext(model=model, tokenizer=tok, eval_ids=eval_ids, calib_ids=calib_ids, preset=p,
                       reference=ref, out_dir=out_dir, seed=seed, progress=progress, text=text, val_ids=val_ids,
                       calib_more=more)
