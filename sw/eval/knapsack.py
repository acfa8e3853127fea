"""The format-allocation integer program: a multiple-choice knapsack over layers and formats.

:func:`solve` uses ``scipy.optimize.milp`` (HiGHS): binaries ``x[l,f]``, one format per layer,
minimise ``sum loss[l,f] x[l,f]`` subject to the param-weighted average bits per weight (metadata
included) ``<= bits_budget`` and/or total engine cycles ``<= cycles_budget``. Formats the engine
cannot run (cycles NaN) are excluded whenever a cycle budget is set. :func:`brute_force` enumerates
every assignment (tests). The cost per (layer, format) comes from :mod:`sw.eval.hwcost` (bits: the
registries' metadata accounting with the partial last group of ``hooks.quantize_weight``; cycles:
the engine's cycle model, :mod:`sw.cycles`).
"""
from __future__ import annotations

import itertools
import math
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from . import hwcost
from .hooks import decoder_linears
from .sensitivity import GROUP_SIZE


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
        return layer_formats(self.choice, names, formats)


def layer_formats(choice, names: list[str], formats: list[str]) -> dict[str, str | None]:
    """``QuantSpec.layer_formats`` of a format index per layer (``fp16`` = keep float = None)."""
    return {n: (None if formats[int(i)] == hwcost.KEEP_FLOAT else formats[int(i)]) for n, i in zip(names, choice)}


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


def figures(choice, params, bits, cyc) -> tuple[float, float | None]:
    """Param-weighted average bits and total cycles (None if a chosen format is not runnable) of a
    choice, from [L, F] ``bits`` and cycles-per-weight ``cyc`` (or None)."""
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
    from scipy.sparse import csr_matrix, identity, kron, vstack
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
    avg, total = figures(choice, params, bits, cyc)
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
    avg, cycles_total = figures(best, params, bits, cyc)
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
                shape=None) -> tuple[np.ndarray, np.ndarray]:
    """[L, F] bits per weight (partial last group as ``hooks.quantize_weight`` stores it) and [L, F]
    engine cycles per weight (NaN: not runnable) for layers of ``(out, in)`` shapes."""
    bits = np.array([[hwcost.layer_bits_per_weight(f, o, i, group_size) for f in formats] for o, i in shapes])
    cyc = np.array([[np.nan if (c := hwcost.layer_cycles(f, o, i, shape)) is None else c / (o * i)
                     for f in formats] for o, i in shapes])
    return bits, cyc


def model_cost(shapes: list[tuple[int, int]], fmt: str, group_size: int | None = GROUP_SIZE,
               shape=None) -> tuple[float, float | None]:
    """Average bits per weight and total engine cycles (None if not runnable) of a uniform ``fmt``."""
    n = sum(o * i for o, i in shapes)
    bits = sum(hwcost.layer_bits_per_weight(fmt, o, i, group_size) * o * i for o, i in shapes) / n
    cyc = [hwcost.layer_cycles(fmt, o, i, shape) for o, i in shapes]
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
