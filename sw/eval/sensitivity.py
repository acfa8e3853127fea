"""Per-layer sensitivity: the loss one quantized decoder linear adds, one layer at a time.

:func:`layer_sensitivity` quantizes one decoder linear at a time (RTN, ``hooks.quantize_weight``);
the added loss is the mean token NLL (or the KL to the float model) on the calibration slice minus
the float one, floored at :data:`EPS` = 1e-6 as CalibTIP floors its per-layer losses. Speed-up
(exact): one float forward caches the hidden state entering every decoder block (plus the block's
call arguments: mask, RoPE tables); a linear of block ``i`` only changes blocks ``i..n-1``, so each
measurement re-runs from block ``i`` onward, then the final norm, ``lm_head`` and the loss. The
result equals the full forward (held to 1e-6 relative by the tests).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as Fn
from torch import nn

from . import hwcost
from .hooks import decoder_linears, quantize_weight, weights_restored

#: Floor of a measured added loss (CalibTIP floors at 1e-6): keeps every cost positive so a
#: negative measurement (noise) cannot make the IP prefer a lossy format for its own sake.
EPS = 1e-6
#: Group size of the measured formats (and of the allocation's).
GROUP_SIZE = 128


def _blocks(model: nn.Module) -> nn.ModuleList:
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if not isinstance(layers, nn.ModuleList) or not hasattr(inner, "norm") or not hasattr(model, "lm_head"):
        raise TypeError("model must be a decoder-only causal LM with .model.layers, .model.norm and .lm_head "
                        "(e.g. LlamaForCausalLM)")
    return layers


@dataclass
class BlockCache:
    """Inputs of every decoder block for one token chunk: ``hidden[i]`` enters block ``i`` with the
    call arguments ``calls[i] = (args, kwargs)`` captured from the float forward."""
    ids: torch.Tensor
    hidden: list[torch.Tensor]
    calls: list[tuple[tuple, dict]]
    logp: torch.Tensor | None = None     # float model's next-token log-probs [T-1, vocab] (for metric="kl")


@torch.no_grad()
def build_cache(model: nn.Module, ids: torch.Tensor) -> BlockCache:
    """One float forward of ``ids`` ([1, T]) recording every block's input and call arguments."""
    blocks = _blocks(model)
    hidden: list = [None] * len(blocks)
    calls: list = [None] * len(blocks)

    def pre(i):
        def hook(mod, args, kwargs):
            h = args[0] if args else kwargs["hidden_states"]
            hidden[i] = h.detach().clone()
            calls[i] = (tuple(args[1:]) if args else (), {k: v for k, v in kwargs.items() if k != "hidden_states"})
        return hook

    handles = [b.register_forward_pre_hook(pre(i), with_kwargs=True) for i, b in enumerate(blocks)]
    try:
        logits = model(input_ids=ids, use_cache=False).logits
    finally:
        for h in handles:
            h.remove()
    return BlockCache(ids=ids, hidden=hidden, calls=calls, logp=_logp(logits))


def _logp(logits: torch.Tensor) -> torch.Tensor:
    return Fn.log_softmax(logits[0, :-1].detach().float(), dim=-1)


def _score(logits: torch.Tensor, ids: torch.Tensor, metric: str, ref_logp: torch.Tensor | None) -> float:
    """Summed over the T-1 predictions: next-token NLL (``"nll"``) or KL(float || this) (``"kl"``)."""
    if metric == "nll":
        return float(Fn.cross_entropy(logits[0, :-1].detach().float(), ids[0, 1:], reduction="sum"))
    if metric == "kl":
        return float(Fn.kl_div(_logp(logits), ref_logp, log_target=True, reduction="sum"))
    raise ValueError(f"metric={metric!r} must be 'kl' or 'nll'")


@torch.no_grad()
def run_from(model: nn.Module, cache: BlockCache, start: int, metric: str = "nll") -> float:
    """``metric`` summed over ``cache.ids``' predictions, computed from block ``start`` onward (cached
    input): next-token NLL, or KL divergence from the float model's predictions (``"kl"``)."""
    blocks = _blocks(model)
    h = cache.hidden[start]
    for j in range(start, len(blocks)):
        args, kw = cache.calls[j]
        out = blocks[j](h, *args, **kw)
        h = out[0] if isinstance(out, tuple) else out
    logits = model.lm_head(model.model.norm(h))
    return _score(logits, cache.ids, metric, cache.logp)


@torch.no_grad()
def full_nll(model: nn.Module, ids: torch.Tensor, ref_logp: torch.Tensor | None = None) -> float:
    """Summed next-token NLL of ``ids`` by a plain full forward (the uncached reference); with
    ``ref_logp`` the summed KL(ref || model) instead."""
    logits = model(input_ids=ids, use_cache=False).logits
    return _score(logits, ids, "nll" if ref_logp is None else "kl", ref_logp)


def calib_chunks(ids: torch.Tensor, tokens: int, window: int) -> list[torch.Tensor]:
    """The first ``tokens`` tokens of ``ids`` cut into chunks of at most ``window`` (each >= 2 tokens)."""
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 2:
        raise ValueError(f"tokens={tokens!r} must be an int >= 2")
    if ids.shape[1] < tokens:
        raise ValueError(f"tokens={tokens} exceeds the calibration slice ({ids.shape[1]} tokens)")
    chunks = [ids[:, s:min(s + window, tokens)] for s in range(0, tokens, window)]
    return [c for c in chunks if c.shape[1] >= 2]


def layer_sensitivity(ctx, formats: list[str], tokens: int, layers: list[str] | None = None,
                      progress: bool = True, group_size: int | None = GROUP_SIZE,
                      floor: float | None = EPS, store: dict | None = None,
                      metric: str = "nll") -> dict[str, dict[str, float]]:
    """Added loss of quantizing one decoder linear alone: ``{name: {fmt: mean NLL - float mean NLL}}``.

    ``metric="nll"`` is CalibTIP's measure (the mean token NLL difference). ``metric="kl"`` measures
    instead the mean per-token KL divergence of the quantized model's next-token distribution from
    the float model's (the expected NLL increase if the float model's predictions were the truth):
    never negative and free of the label noise that dominates the NLL difference of one layer on a
    short calibration slice (see the section text for the measured figures).

    Calibration tokens: the first ``tokens`` of ``ctx.calib_ids`` (chunks of ``ctx.preset.window``).
    Each value is floored at ``floor`` (None: raw, may be negative). ``fp16`` (keep float) costs 0
    (then the floor) without a forward. ``layers`` restricts to some linears (default: all, in forward
    order). Uses the block cache described in the module docstring; ``ctx.model`` is left unchanged.
    ``store``: if a dict, every quantized weight is kept in it as ``store[(name, fmt)]`` (fp32, for
    :func:`allocation_ppl` to reuse instead of quantizing again).
    """
    from tqdm.auto import tqdm
    model = ctx.model
    if metric not in ("kl", "nll"):
        raise ValueError(f"metric={metric!r} must be 'kl' or 'nll'")
    if not formats:
        raise ValueError("formats is empty")
    for f in formats:
        hwcost.bits_per_weight(f)          # raises naming an unknown format
    lin = decoder_linears(model)
    names = list(lin) if layers is None else list(layers)
    unknown = [n for n in names if n not in lin]
    if unknown:
        raise ValueError(f"layers names unknown linear(s) {unknown[:3]}")
    chunks = calib_chunks(ctx.calib_ids, tokens, ctx.preset.window)
    scored = sum(c.shape[1] - 1 for c in chunks)
    blocks = _blocks(model)
    owner = {id(m): i for i, b in enumerate(blocks) for m in b.modules()}
    with weights_restored(model):
        caches = [build_cache(model, c) for c in chunks]
        base = 0.0 if metric == "kl" else sum(run_from(model, c, 0) for c in caches) / scored
        out: dict[str, dict[str, float]] = {}
        todo = [(n, f) for n in names for f in formats]
        bar = tqdm(todo, desc="layer sensitivity", disable=not progress, leave=False)
        for name, fmt in bar:
            if fmt == hwcost.KEEP_FLOAT:
                d = 0.0
            else:
                m = lin[name]
                w = m.weight.detach().clone()
                try:
                    wq = quantize_weight(w, fmt, group_size)
                    if store is not None:
                        store[(name, fmt)] = wq
                    with torch.no_grad():
                        m.weight.copy_(wq)
                    start = owner[id(m)]
                    d = sum(run_from(model, c, start, metric) for c in caches) / scored - base
                finally:
                    with torch.no_grad():
                        m.weight.copy_(w)
            out.setdefault(name, {})[fmt] = d if floor is None else max(d, floor)
    return out


# ============================================================================ the integer program
