"""The closed-loop allocator: the integer program re-solved with what the chosen mixtures measure.

The open-loop IP (:func:`sw.eval.knapsack.solve`) minimises the sum of one-layer-at-a-time losses.
Layers' errors compound, and they compound more in coarse formats than in fine ones, so the summed
losses under-rate the coarse formats and a mixture can measure worse than the uniform format it was
meant to beat. :func:`closed_loop` closes the loop on a held-out measurement (the validation slice,
never the evaluation windows):

1. every uniform format is measured (``uniform_delta``: added NLL, nats per token, on the validation
   slice); those within the budget are candidates;
2. the IP is solved with the losses of format ``f`` scaled by a compounding factor ``c[f]`` (1 at
   first), and its mixture is measured;
3. ``c`` is re-fitted to every measurement so far, uniform and mixed: ``measured ≈ Σ_f c[f] · S[f]``
   with ``S[f]`` the summed one-at-a-time losses of the layers in format ``f`` (non-negative least
   squares on relative errors), and the IP is solved again;
4. it stops when a mixture repeats, when an iteration does not improve on the best mixture measured
   before it, or after ``max_iter`` mixtures.

The answer is the best *measured* candidate, uniform formats included, so it never measures worse
than the best uniform format within the budget on the slice it was measured on. The measurement is a
callback (``measure(choice) -> added NLL``), so the loop is independent of the model (the tests drive
it with a synthetic compounding loss).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .knapsack import Allocation, figures, solve

#: Smallest compounding factor the fit may return (keeps every IP cost positive).
MIN_FACTOR = 1e-3


@dataclass
class Candidate:
    """One measured candidate: a uniform format or an IP mixture (``iteration`` 0 = the open-loop IP)."""
    kind: str                        # "uniform" or "ip"
    label: str                       # the format, or "IP iteration k"
    choice: np.ndarray               # format index per layer
    avg_bits: float
    cycles: float | None
    measured: float                  # added NLL on the held-out slice (nats/token)
    predicted: float                 # Σ c[f]·loss of the choice, with the factors it was solved with
    iteration: int | None = None
    factors: np.ndarray | None = None


@dataclass
class LoopResult:
    best: Candidate
    open_loop: Candidate | None      # the plain IP's mixture (None if the budget admits no IP solution)
    candidates: list[Candidate] = field(default_factory=list)
    factors: np.ndarray | None = None    # the last fitted compounding factors, per format
    stop: str = ""


def fit_factors(sums: np.ndarray, measured: np.ndarray, floor: float = 1e-4) -> np.ndarray:
    """Compounding factors ``c >= MIN_FACTOR`` minimising ``Σ_k ((S[k] · c - m[k]) / max(|m[k]|, floor))²``.

    ``sums``: [K, F] summed one-at-a-time losses per format of each measured configuration;
    ``measured``: [K] their measured added NLL. Formats no configuration uses keep the factor 1.
    """
    from scipy.optimize import nnls
    S = np.asarray(sums, float)
    m = np.asarray(measured, float)
    if S.ndim != 2 or m.shape != (S.shape[0],):
        raise ValueError(f"sums must be [K, F] and measured [K]; got {S.shape} and {m.shape}")
    used = (S > 0).any(axis=0)
    c = np.ones(S.shape[1])
    if not used.any():
        return c
    w = 1.0 / np.maximum(np.abs(m), floor)
    A = S[:, used] * w[:, None]
    b = np.maximum(m, 0.0) * w
    # c = MIN_FACTOR + x with x >= 0: shift the target by the floor's contribution
    x, _ = nnls(A, b - A.sum(axis=1) * MIN_FACTOR)
    c[used] = x + MIN_FACTOR
    return c


def format_sums(loss: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """[F] summed ``loss`` of the layers in each format of ``choice``."""
    L, F = loss.shape
    out = np.zeros(F)
    np.add.at(out, choice, loss[np.arange(L), choice])
    return out


def closed_loop(loss, params, bits, cycles, formats: list[str], measure: Callable[[np.ndarray], float],
                uniform_delta: dict[str, float], *, bits_budget: float | None = None,
                cycles_budget: float | None = None, max_iter: int = 4, tol: float = 1e-9) -> LoopResult:
    """Best measured allocation under the budgets (see the module docstring).

    ``loss``, ``params``, ``bits``, ``cycles``: as :func:`sw.eval.knapsack.solve` ([L, F] costs);
    ``formats``: the F format names; ``measure(choice)``: added NLL of a mixture on the held-out slice;
    ``uniform_delta``: that measurement for uniform formats (``{format: added NLL}``; every format of
    ``formats`` that has one takes part in the fit, and is a candidate if it fits the budgets);
    ``max_iter``: most IP mixtures measured (>= 1).
    """
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter={max_iter!r} must be a positive integer")
    unknown = sorted(set(uniform_delta) - set(formats))
    if unknown:
        raise ValueError(f"uniform_delta names formats not in formats: {', '.join(unknown)}")
    loss = np.asarray(loss, float)
    params = np.asarray(params, float)
    L, F = loss.shape
    bits_lf = np.broadcast_to(np.asarray(bits, float), (L, F))
    cyc_lf = None if cycles is None else np.broadcast_to(np.asarray(cycles, float), (L, F))

    def fits(avg, cyc):
        if bits_budget is not None and avg > bits_budget + 1e-9:
            return False
        if cycles_budget is not None and (cyc is None or cyc > cycles_budget * (1 + 1e-12)):
            return False
        return True

    sums, meas, cands = [], [], []
    for f, d in uniform_delta.items():
        k = formats.index(f)
        ch = np.full(L, k)
        sums.append(format_sums(loss, ch))
        meas.append(float(d))
        avg, cyc = figures(ch, params, bits_lf, cyc_lf)
        if fits(avg, cyc):
            cands.append(Candidate("uniform", f, ch, avg, cyc, float(d), float(loss[:, k].sum())))
    factors = np.ones(F)
    seen: set[tuple] = set()
    open_loop = None
    stop = f"{max_iter} mixtures measured"
    for it in range(max_iter):
        try:
            a: Allocation = solve(loss * factors[None, :], params, bits, cycles, bits_budget, cycles_budget)
        except ValueError as e:
            stop = f"no IP solution: {e}"
            break
        key = tuple(int(i) for i in a.choice)
        if key in seen:
            stop = f"iteration {it} repeats a measured mixture"
            break
        seen.add(key)
        best_ip = min((c.measured for c in cands if c.kind == "ip"), default=np.inf)
        d = float(measure(a.choice))
        c = Candidate("ip", f"IP iteration {it}", a.choice, a.avg_bits, a.cycles, d,
                      float((loss * factors[None, :])[np.arange(L), a.choice].sum()), it, factors.copy())
        cands.append(c)
        if it == 0:
            open_loop = c
        sums.append(format_sums(loss, a.choice))
        meas.append(d)
        factors = fit_factors(np.array(sums), np.array(meas))
        if it > 0 and d >= best_ip - tol:
            stop = f"iteration {it} did not improve on the best mixture measured before it"
            break
    if not cands:
        raise ValueError("no uniform format fits the budgets and the IP has no solution")
    best = min(cands, key=lambda c: (c.measured, c.avg_bits))
    return LoopResult(best=best, open_loop=open_loop, candidates=cands, factors=factors, stop=stop)
