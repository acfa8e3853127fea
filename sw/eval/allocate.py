"""Per-layer format allocation by an integer program (CalibTIP's IP, on bitmix's own cost model).

1. :func:`layer_sensitivity` -- one decoder linear at a time is quantized (RTN, ``hooks.quantize_weight``)
   and the added loss is the mean token NLL on the calibration slice minus the float NLL, floored at
   ``EPS`` = 1e-6 as CalibTIP floors its per-layer losses. Speed-up (exact): one float forward caches
   the hidden state entering every decoder block (plus the block's call arguments: mask, RoPE
   tables); a linear of block ``i`` only changes blocks ``i..n-1``, so each measurement re-runs from
   block ``i`` onward, then the final norm, ``lm_head`` and the loss. The result equals the full
   forward (held to 1e-6 relative by the tests).
2. :func:`solve` -- a multiple-choice knapsack with ``scipy.optimize.milp`` (HiGHS): binaries
   ``x[l,f]``, one format per layer, minimise ``sum loss[l,f] x[l,f]`` subject to the param-weighted
   average bits per weight (metadata included) ``<= bits_budget`` and/or total engine cycles
   ``<= cycles_budget``. Formats the engine cannot run (cycles NaN) are excluded whenever a cycle
   budget is set. :func:`brute_force` enumerates every assignment (tests).
3. :func:`section` -- sensitivities on SmolLM2, a sweep of budgets (bits, cycles relative to uniform
   INT4, and joint), each distinct allocation's perplexity, the uniform formats at their own bits and
   cycles in the same table, and Pareto plots.

The cost per (layer, format) comes from :mod:`sw.eval.hwcost` (bits: ``sw.quantize``'s metadata
accounting with the partial last group of ``hooks.quantize_weight``; cycles: the engine's cycle
model with the default ``gen.config`` engine).
"""
from __future__ import annotations

import itertools
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as Fn
from torch import nn

from . import hwcost
from .hooks import QuantSpec, decoder_linears, quantize_weight, weights_restored

if TYPE_CHECKING:
    from .context import Section

#: Floor of a measured added loss (CalibTIP floors at 1e-6): keeps every cost positive so a
#: negative measurement (noise) cannot make the IP prefer a lossy format for its own sake.
EPS = 1e-6

PRESETS: dict[str, dict] = {
    # tiny_llama, seconds: a few formats, a handful of budgets
    "smoke": {"formats": ["fp3", "int3_asym", "int4_asym", "bitmod4", "int8", "fp16"],
              "tokens": 128, "uniform": ["int3_asym", "bitmod4"],
              "extra_bits": [5.0], "cycle_budgets": [0.75], "joint": [(4.25, 0.9)], "metric": "kl"},
    # SmolLM2, ~8 min idle: 6 engine formats (INT8 gives the IP somewhere to spend bits above FP6) on
    # 128 calibration tokens, 4 uniform baselines, ~6 IP budgets; quantized weights are kept from the
    # sensitivity pass (~2.5 GB) and reused
    "quick": {"formats": ["fp3", "bitmod3", "int4_asym", "bitmod4", "fp6_e3m2", "int8"],
              "tokens": 128, "uniform": ["bitmod3", "int4_asym", "bitmod4", "fp6_e3m2"],
              "extra_bits": [3.5], "cycle_budgets": [0.75], "joint": [], "reuse_quantized": True, "metric": "kl",
              "eval_windows": None},
    # SmolLM2, ~13 min idle: 8 engine formats on 128 tokens, 6 uniform baselines, a denser budget sweep
    "full": {"formats": ["fp3", "int3_asym", "bitmod3", "int4_asym", "bitmod4", "fp6_e2m3", "fp6_e3m2", "int8"],
             "tokens": 128, "uniform": ["int3_asym", "bitmod3", "int4_asym", "bitmod4", "fp6_e3m2", "fp6_e2m3"],
             "extra_bits": [3.5, 4.5, 5.0], "cycle_budgets": [0.75, 1.0], "joint": [(4.5, 1.0)],
             "reuse_quantized": True, "metric": "kl", "eval_windows": 4},
}
GROUP_SIZE = 128


# ============================================================================ sensitivity
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
@dataclass
class Allocation:
    """One format index per layer (``choice``) and its figures."""
    choice: np.ndarray
    objective: float                 # sum of the chosen added losses
    avg_bits: float                  # param-weighted bits per weight, metadata included
    cycles: float | None             # total engine cycles; None if some chosen format is not runnable
    bits_budget: float | None = None
    cycles_budget: float | None = None
    status: int = 0                  # scipy.optimize.milp status (0 optimal within the gap, 1 time limit)
    message: str = ""
    seconds: float = 0.0

    def counts(self, formats: list[str]) -> dict[str, int]:
        """Layers per format, in ``formats`` order (formats never chosen are left out)."""
        c = Counter(int(i) for i in self.choice)
        return {formats[i]: c[i] for i in range(len(formats)) if c[i]}

    def layer_formats(self, names: list[str], formats: list[str]) -> dict[str, str | None]:
        """``QuantSpec.layer_formats`` of this allocation (``fp16`` = keep float = None)."""
        return {n: (None if formats[int(i)] == hwcost.KEEP_FLOAT else formats[int(i)])
                for n, i in zip(names, self.choice)}


def _as_cost(a, L: int, F: int, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=float)
    if arr.shape == (F,):
        arr = np.broadcast_to(arr, (L, F))
    if arr.shape != (L, F):
        raise ValueError(f"{name} must have shape [F]={F} or [L, F]=({L}, {F}), got {arr.shape}")
    return np.array(arr)


def _check_problem(loss, params, bits, cycles, bits_budget, cycles_budget):
    loss = np.asarray(loss, dtype=float)
    if loss.ndim != 2 or 0 in loss.shape:
        raise ValueError(f"loss must be a non-empty [L, F] array, got shape {loss.shape}")
    L, F = loss.shape
    if not np.isfinite(loss).all():
        raise ValueError("loss has non-finite entries")
    params = np.asarray(params, dtype=float)
    if params.shape != (L,) or (params <= 0).any():
        raise ValueError(f"params must be {L} positive layer sizes, got shape {params.shape}")
    bits = _as_cost(bits, L, F, "bits")
    if not np.isfinite(bits).all():
        raise ValueError("bits has non-finite entries")
    cyc = None if cycles is None else _as_cost(cycles, L, F, "cycles")   # NaN = not runnable
    if bits_budget is None and cycles_budget is None:
        raise ValueError("give bits_budget and/or cycles_budget")
    if cycles_budget is not None and cyc is None:
        raise ValueError("cycles_budget needs cycles")
    for nm, v in (("bits_budget", bits_budget), ("cycles_budget", cycles_budget)):
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0):
            raise ValueError(f"{nm}={v!r} must be a positive number or None")
    allowed = np.ones((L, F), bool)
    if cycles_budget is not None:
        allowed &= np.isfinite(cyc)
    if not allowed.any(axis=1).all():
        bad = int(np.flatnonzero(~allowed.any(axis=1))[0])
        raise ValueError(f"cycles_budget={cycles_budget}: layer {bad} has no format the engine can run")
    total = params.sum()
    if bits_budget is not None:
        lo = float((params * np.where(allowed, bits, np.inf).min(axis=1)).sum() / total)
        if lo > bits_budget * (1 + 1e-12):
            raise ValueError(f"bits_budget={bits_budget} is infeasible: the lowest reachable average is "
                             f"{lo:.6g} bits per weight")
    if cycles_budget is not None:
        lo = float((params * np.where(allowed, cyc, np.inf).min(axis=1)).sum())
        if lo > cycles_budget * (1 + 1e-12):
            raise ValueError(f"cycles_budget={cycles_budget} is infeasible: the fewest reachable cycles are "
                             f"{lo:.6g}")
    return loss, params, bits, cyc, allowed


def _figures(choice, params, bits, cyc) -> tuple[float, float | None]:
    rows = np.arange(len(choice))
    avg = float((params * bits[rows, choice]).sum() / params.sum())
    if cyc is None:
        return avg, None
    c = cyc[rows, choice] * params
    return avg, (float(c.sum()) if np.isfinite(c).all() else None)


def solve(loss, params, bits, cycles=None, bits_budget: float | None = None, cycles_budget: float | None = None,
          time_limit: float = 30.0, mip_rel_gap: float = 1e-3) -> Allocation:
    """Minimum total added loss with one format per layer under the budgets (``scipy.optimize.milp``).

    loss: [L, F] added loss per (layer, format); params: [L] weights per layer;
    bits: [F] or [L, F] bits per weight (metadata included); cycles: [F] or [L, F] engine cycles per
    weight (layer cycles / params), NaN where the engine cannot run the format; bits_budget: max
    param-weighted average bits per weight; cycles_budget: max total cycles (formats with NaN cycles
    are excluded when it is set). HiGHS with ``mip_rel_gap`` and ``time_limit`` (status 1 = time limit
    reached with a feasible solution, accepted and said in ``message``). Infeasible budgets raise a
    ValueError naming the budget.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_matrix, kron, identity, vstack
    loss, params, bits, cyc, allowed = _check_problem(loss, params, bits, cycles, bits_budget, cycles_budget)
    L, F = loss.shape
    t0 = time.perf_counter()
    rows = [kron(identity(L), np.ones((1, F)))]
    lo, hi = [np.ones(L)], [np.ones(L)]
    if bits_budget is not None:   # normalised: average bits per weight
        rows.append(csr_matrix((params[:, None] * bits / params.sum()).reshape(1, -1)))
        lo.append([-np.inf]), hi.append([bits_budget])
    if cycles_budget is not None:  # normalised by the budget
        rows.append(csr_matrix((np.where(allowed, cyc, 0.0) * params[:, None] / cycles_budget).reshape(1, -1)))
        lo.append([-np.inf]), hi.append([1.0])
    cons = LinearConstraint(vstack(rows).tocsr(), np.concatenate(lo), np.concatenate(hi))
    res = milp(c=loss.reshape(-1), constraints=cons, integrality=np.ones(L * F),
               bounds=Bounds(np.zeros(L * F), allowed.reshape(-1).astype(float)),
               options={"mip_rel_gap": mip_rel_gap, "time_limit": time_limit, "disp": False})
    budgets = ", ".join(f"{n}={v}" for n, v in (("bits_budget", bits_budget), ("cycles_budget", cycles_budget))
                        if v is not None)
    if res.status == 2:
        raise ValueError(f"{budgets}: infeasible together (each alone is reachable)")
    if res.x is None or res.status not in (0, 1):
        raise RuntimeError(f"milp failed for {budgets}: status {res.status}: {res.message}")
    choice = np.asarray(res.x).reshape(L, F).argmax(axis=1)
    avg, total = _figures(choice, params, bits, cyc)
    msg = "optimal within mip_rel_gap" if res.status == 0 else f"time limit {time_limit} s: best feasible found"
    return Allocation(choice=choice, objective=float(loss[np.arange(L), choice].sum()), avg_bits=avg,
                      cycles=total, bits_budget=bits_budget, cycles_budget=cycles_budget, status=int(res.status),
                      message=msg, seconds=time.perf_counter() - t0)


def brute_force(loss, params, bits, cycles=None, bits_budget: float | None = None,
                cycles_budget: float | None = None) -> Allocation:
    """Exhaustive reference for :func:`solve` (F^L assignments; tests only)."""
    loss, params, bits, cyc, allowed = _check_problem(loss, params, bits, cycles, bits_budget, cycles_budget)
    L, F = loss.shape
    if F ** L > 2_000_000:
        raise ValueError(f"brute force over {F}^{L} assignments is too large")
    best, best_obj = None, math.inf
    total = params.sum()
    for choice in itertools.product(range(F), repeat=L):
        ch = np.array(choice)
        r = np.arange(L)
        if not allowed[r, ch].all():
            continue
        if bits_budget is not None and (params * bits[r, ch]).sum() / total > bits_budget:
            continue
        if cycles_budget is not None and (params * cyc[r, ch]).sum() > cycles_budget:
            continue
        obj = loss[r, ch].sum()
        if obj < best_obj:
            best, best_obj = ch, obj
    if best is None:
        raise ValueError("budgets infeasible together")
    avg, cycles_total = _figures(best, params, bits, cyc)
    return Allocation(choice=best, objective=float(best_obj), avg_bits=avg, cycles=cycles_total,
                      bits_budget=bits_budget, cycles_budget=cycles_budget, message="exhaustive")


# ============================================================================ costs of a model
@dataclass
class Problem:
    """The IP inputs for a model: layer names, formats, [L, F] loss / bits / cycles-per-weight, params."""
    names: list[str]
    formats: list[str]
    loss: np.ndarray
    params: np.ndarray
    bits: np.ndarray
    cycles: np.ndarray               # per weight, NaN = not runnable on the engine
    shapes: list[tuple[int, int]] = field(default_factory=list)


def layer_costs(shapes: list[tuple[int, int]], formats: list[str], group_size: int | None = GROUP_SIZE,
                cfg=None) -> tuple[np.ndarray, np.ndarray]:
    """[L, F] bits per weight (partial last group as ``hooks.quantize_weight`` stores it) and [L, F]
    engine cycles per weight (NaN: not runnable) for layers of ``(out, in)`` shapes."""
    bits = np.array([[hwcost.layer_bits_per_weight(f, o, i, group_size) for f in formats] for o, i in shapes])
    cyc = np.array([[np.nan if (c := hwcost.layer_cycles(f, o, i, cfg)) is None else c / (o * i)
                     for f in formats] for o, i in shapes])
    return bits, cyc


def model_cost(shapes: list[tuple[int, int]], fmt: str, group_size: int | None = GROUP_SIZE,
               cfg=None) -> tuple[float, float | None]:
    """Average bits per weight and total engine cycles (None if not runnable) of a uniform ``fmt``."""
    n = sum(o * i for o, i in shapes)
    bits = sum(hwcost.layer_bits_per_weight(fmt, o, i, group_size) * o * i for o, i in shapes) / n
    cyc = [hwcost.layer_cycles(fmt, o, i, cfg) for o, i in shapes]
    return bits, (None if any(c is None for c in cyc) else float(sum(cyc)))


def problem(model: nn.Module, sens: dict[str, dict[str, float]], formats: list[str],
            group_size: int | None = GROUP_SIZE) -> Problem:
    """Assemble :class:`Problem` from a :func:`layer_sensitivity` result and the model's linears."""
    lin = decoder_linears(model)
    names = [n for n in lin if n in sens]
    shapes = [tuple(lin[n].weight.shape) for n in names]
    loss = np.array([[sens[n][f] for f in formats] for n in names])
    bits, cyc = layer_costs(shapes, formats, group_size)
    return Problem(names=names, formats=list(formats), loss=loss, params=np.array([o * i for o, i in shapes], float),
                   bits=bits, cycles=cyc, shapes=shapes)


def allocation_ppl(ctx, layer_formats: dict[str, str | None], store: dict | None = None,
                   group_size: int | None = GROUP_SIZE, windows: int | None = None) -> dict:
    """Perplexity of ``ctx.model`` with ``layer_formats`` applied.

    Without ``store`` this is ``ctx.ppl(QuantSpec(layer_formats=..., group_size=...))``. With a
    ``store`` from :func:`layer_sensitivity` the weights are copied in from it (quantizing only what
    is missing, with the same ``hooks.quantize_weight``), then ``ctx.ppl(model=ctx.model)`` measures
    them and the float weights are restored: the same numbers without quantizing the model again
    (held equal by the tests). ``bits_per_weight`` is then left out (the caller knows it exactly).
    ``windows``: perplexity windows (None = the context preset's).
    """
    if store is None:
        return ctx.ppl(QuantSpec(layer_formats=dict(layer_formats), group_size=group_size), windows=windows)
    lin = decoder_linears(ctx.model)
    with weights_restored(ctx.model), torch.no_grad():
        for name, fmt in layer_formats.items():
            if fmt is not None:
                w = store.get((name, fmt))
                lin[name].weight.copy_(quantize_weight(lin[name].weight, fmt, group_size) if w is None else w)
        r = ctx.ppl(None, model=ctx.model, windows=windows)
    r.pop("bits_per_weight", None)
    r["label"] = "W mixed (reused quantized weights)"
    return r


# ============================================================================ the section
def _mixture(counts: dict[str, int]) -> str:
    return ", ".join(f"{f}×{n}" for f, n in counts.items())


def _plot(path: Path, points_ip: list[dict], points_uni: list[dict], xkey: str, xlabel: str, ref_ppl: float) -> None:
    """Perplexity against ``xkey``: IP mixtures under a bits budget (line), under a cycle or joint
    budget (diamonds), uniform formats (labelled squares), the float reference (dashed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for kind, style, label in (("bits", "o-", "IP mixture, bits budget"), ("cycles", "D", "IP mixture, cycle budget")):
        pts = sorted((p for p in points_ip if p["kind"] == kind and p[xkey] is not None), key=lambda p: p[xkey])
        if pts:
            ax.plot([p[xkey] for p in pts], [p["ppl"] for p in pts], style, color="C0" if kind == "bits" else "C2",
                    label=label)
    uni = [p for p in points_uni if p[xkey] is not None]
    for p in uni:
        ax.plot(p[xkey], p["ppl"], "s", color="C3")
        ax.annotate(p["fmt"], (p[xkey], p["ppl"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if uni:
        ax.plot([], [], "s", color="C3", label="uniform format")
    ax.axhline(ref_ppl, color="gray", ls="--", lw=1, label="float")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("perplexity")
    ys = [p["ppl"] for p in points_ip + points_uni] + [ref_ppl]
    if max(ys) > 3 * min(ys):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def section(ctx, preset: str | None = None) -> Section:
    """IP format allocation: sensitivities, a budget sweep, perplexity of each allocation vs uniform formats."""
    from .context import Section, Table
    t0 = time.perf_counter()
    pname = preset or ctx.preset.name
    if pname not in PRESETS:
        raise ValueError(f"preset={pname!r} is not one of {', '.join(PRESETS)}")
    P = PRESETS[pname]
    formats = list(P["formats"])
    tokens = min(P["tokens"], int(ctx.calib_ids.shape[1]))
    win = P.get("eval_windows")

    ts = time.perf_counter()
    store = {} if P.get("reuse_quantized") else None
    metric = P.get("metric", "kl")
    sens = layer_sensitivity(ctx, formats, tokens, progress=ctx.progress, store=store, metric=metric)
    sens_s = time.perf_counter() - ts
    pr = problem(ctx.model, sens, formats)
    int4_bits, int4_cyc = model_cost(pr.shapes, "int4")

    # budgets: each uniform format's own bits (the target), extra bits, cycles x int4, joint
    runs: list[dict] = []
    for u in P["uniform"]:
        runs.append({"kind": "bits = uniform " + u, "bits_budget": model_cost(pr.shapes, u)[0], "cycles_budget": None})
    for b in P["extra_bits"]:
        runs.append({"kind": f"bits ≤ {b}", "bits_budget": float(b), "cycles_budget": None})
    for c in P["cycle_budgets"]:
        runs.append({"kind": f"cycles ≤ {c}× int4", "bits_budget": None, "cycles_budget": c * int4_cyc})
    for b, c in P["joint"]:
        runs.append({"kind": f"bits ≤ {b} and cycles ≤ {c}× int4", "bits_budget": float(b),
                     "cycles_budget": c * int4_cyc})
    seen: dict[tuple, dict] = {}
    solve_s = 0.0
    for r in runs:
        try:
            a = solve(pr.loss, pr.params, pr.bits, pr.cycles, r["bits_budget"], r["cycles_budget"])
        except ValueError as e:
            r["error"] = str(e)
            continue
        solve_s += a.seconds
        r.update(avg_bits=a.avg_bits, cycles=a.cycles, predicted=a.objective, counts=a.counts(formats),
                 status=a.status, solve_seconds=a.seconds)
        key = tuple(int(i) for i in a.choice)
        if key not in seen:
            seen[key] = allocation_ppl(ctx, a.layer_formats(pr.names, formats), store, windows=win)
        r.update(ppl=seen[key]["ppl"], delta_pct=seen[key]["delta_pct"])
        if "bits_per_weight" in seen[key]:
            r["measured_bits"] = seen[key]["bits_per_weight"]
    if store is not None:
        store.clear()
    uni: list[dict] = []
    for u in P["uniform"]:
        bits, cyc = model_cost(pr.shapes, u)
        res = ctx.ppl(QuantSpec(weight=u, group_size=GROUP_SIZE), windows=win)
        predicted = float(pr.loss[:, formats.index(u)].sum()) if u in formats else None
        uni.append({"fmt": u, "avg_bits": bits, "cycles": cyc, "ppl": res["ppl"], "delta_pct": res["delta_pct"],
                    "predicted": predicted, "measured_bits": res["bits_per_weight"]})

    ref = ctx.reference_for(win)
    rel = lambda c: None if c is None else c / int4_cyc   # noqa: E731
    table = Table(
        title=f"IP allocations vs uniform formats ({len(pr.names)} linears, g{GROUP_SIZE}, "
              f"PPL on {ref['tokens']} tokens, {ref['windows']}×{ref['window']} windows)",
        columns=["budget", "mixture (layers per format)", "avg bits/weight", "cycles (× uniform int4)",
                 "predicted Σ Δloss", "PPL", "Δ PPL %"],
        rows=[])
    for r in runs:
        if "error" in r:
            table.rows.append([r["kind"], "infeasible: " + r["error"], None, None, None, None, None])
        else:
            table.rows.append([r["kind"], _mixture(r["counts"]), r["avg_bits"], rel(r["cycles"]), r["predicted"],
                               r["ppl"], r["delta_pct"]])
    for u in uni:
        table.rows.append([f"uniform {u['fmt']}", f"{u['fmt']}×{len(pr.names)}", u["avg_bits"], rel(u["cycles"]),
                           u["predicted"], u["ppl"], u["delta_pct"]])

    # target: IP at each uniform format's bits <= that format's perplexity
    verdicts, met = [], True
    for u, r in zip(uni, runs[:len(uni)]):
        ok = "ppl" in r and r["ppl"] <= u["ppl"]
        met &= ok
        verdicts.append([u["fmt"], u["avg_bits"], u["ppl"], r.get("ppl"), r.get("avg_bits"),
                         None if "ppl" not in r else 100.0 * (r["ppl"] / u["ppl"] - 1.0), "met" if ok else "missed"])
    target = Table(title="Target: IP mixture at the same average bits vs each uniform format",
                   columns=["uniform format", "its avg bits", "its PPL", "IP PPL", "IP avg bits", "IP vs uniform %",
                            "verdict"], rows=verdicts)
    sens_table = Table(
        title=f"Mean added loss per layer (nats/token, {tokens} calibration tokens), by format",
        columns=["format", "bits/weight (g128)", "terms (cycles/beat)", "mean Δloss", "max Δloss", "layer with max"],
        rows=[[c.fmt, c.bits, c.terms, float(pr.loss[:, k].mean()), float(pr.loss[:, k].max()),
               pr.names[int(pr.loss[:, k].argmax())]] for k, c in enumerate(hwcost.format_costs(formats, GROUP_SIZE))])

    ip_points = [{"kind": "bits" if r["cycles_budget"] is None else "cycles", "avg_bits": r["avg_bits"],
                  "cycles": rel(r["cycles"]), "ppl": r["ppl"]} for r in runs if "ppl" in r]
    uni_points = [{"fmt": u["fmt"], "avg_bits": u["avg_bits"], "cycles": rel(u["cycles"]), "ppl": u["ppl"]}
                  for u in uni]
    out = Path(ctx.out_dir)
    plots = ["allocate_pareto_bits.png", "allocate_pareto_cycles.png"]
    _plot(out / plots[0], ip_points, uni_points, "avg_bits", "average bits per weight (metadata included)",
          ref["ppl"])
    _plot(out / plots[1], ip_points, uni_points, "cycles", "engine cycles (× uniform int4)", ref["ppl"])

    area = hwcost.engine_area()
    area_txt = ("Engine area (build/reports/area.json): bitmix {:,.0f} GE per row vs {:,.0f} for the INT4-only "
                "engine ({:.2f}×) -- the price of running every format of the table on one datapath."
                .format(area["bitmix_ge_per_row"], area["int4_only_ge_per_row"], area["ratio"])
                if area else "Engine area: build/reports/area.json is absent (run `python -m gen area`); not shown.")
    notes = [f"{u['fmt']}: no candidate format stores more bits, so the IP can only move layers to cheaper formats"
             for u, v in zip(uni, verdicts) if v[-1] == "missed"
             and not any(b > u["avg_bits"] + 1e-9 for b in pr.bits.max(axis=0))]
    figs = "; ".join(f"{v[0]} {v[2]:.3f} vs IP {v[3]:.3f} ({v[5]:+.1f} %)" if v[3] is not None
                     else f"{v[0]}: no IP solution" for v in verdicts)
    text = "\n".join([
        "**Protocol.** CalibTIP's integer program on bitmix's cost model. Each of the "
        f"{len(pr.names)} decoder linears is quantized alone (RTN, g{GROUP_SIZE}, fp16 scales) to each of "
        f"{', '.join(formats)}; its added loss is "
        + ("the mean per-token KL divergence of the model's next-token distribution from the float model's"
           if metric == "kl" else "the mean token NLL minus the float NLL")
        + f" on the first {tokens} tokens of the calibration slice (disjoint from the evaluation text), floored at "
        f"{EPS:g} (CalibTIP's floor). Measured by re-running the model from the cached input of the linear's decoder "
        "block (exact). `scipy.optimize.milp` (HiGHS, mip_rel_gap 1e-3) picks one format per layer minimising "
        "the summed added loss under the param-weighted average bits per weight (scale, zero point and BitMoD "
        "selector bits included, from `sw.quantize`'s accounting) and/or total engine cycles "
        f"(`ceil(out/R)·(ceil(in/G)·max(G/L·terms, rescale) + 1) + R + 6` per layer, the default "
        f"{hwcost.default_config().rows}×{hwcost.default_config().lanes} engine, G={hwcost.default_config().group_size}; formats the engine cannot run are excluded from cycle budgets). Each distinct allocation's "
        "perplexity is measured with the same protocol as the uniform rows (as intel/auto-round#2118 asks, the "
        "uniform formats are shown at their own bits and cycles).",
        "",
        f"**Target** -- IP mixtures at or below the perplexity of every uniform format at the same average bits: "
        f"**{'met' if met else 'missed'}** ({figs}). The IP minimises the sum of one-at-a-time losses, which "
        "ignores interactions between layers; where a mixture loses to a uniform format that is the reason."
        + (" " + "; ".join(notes) + "." if notes else ""),
        "",
        f"Cycle budgets are relative to uniform INT4 ({int4_cyc:,.0f} cycles for one token through all "
        f"{len(pr.names)} linears). On the bit-serial engine cycles follow terms per weight, not bits: FP6 E3M2 "
        "costs INT4's 2 terms and FP3 only 1, so a cycle budget and a bits budget pick different mixtures.",
        "",
        area_txt,
        "",
        "Entries at the floor (measured added loss <= the floor) per format: "
        + ", ".join(f"{f} {int((pr.loss[:, k] <= EPS).sum())}/{len(pr.names)}" for k, f in enumerate(formats))
        + (". With the NLL difference (CalibTIP's measure) on 128 tokens, 76-98 of the 210 entries per format "
           "came out negative (label noise of a one-layer change), and the IP exploited the noise: at INT4's bits "
           "it chose FP3 for 76 layers and reached PPL 70.6 against 28.2 for uniform INT4-asym; the KL divergence "
           "is never negative and has no label noise, hence the default `metric='kl'`." if metric == "kl" else "."),
        "",
        f"Timing: sensitivities {sens_s:.0f} s ({len(pr.names)}×{sum(f != hwcost.KEEP_FLOAT for f in formats)} "
        f"measurements), IP solves {solve_s:.1f} s in total, {len(seen)} distinct allocations evaluated.",
    ])
    data = {"preset": pname, "metric": metric, "formats": formats, "tokens": tokens, "group_size": GROUP_SIZE, "layers": pr.names,
            "sensitivity": sens, "int4_cycles": int4_cyc, "runs": runs, "uniform": uni, "target_met": met,
            "area": area, "sensitivity_seconds": sens_s, "solve_seconds": solve_s,
            "bits": {f: hwcost.bits_per_weight(f) for f in formats}, "terms": {f: hwcost.terms(f) for f in formats}}
    return Section(key="allocate", title="Integer-program format allocation", text=text,
                   tables=[table, target, sens_table], plots=plots, data=data, seconds=time.perf_counter() - t0)
