"""Figures over several calibration slices: mean, spread, and whether the spread swamps the effect.

An algorithm figure (AdaQuant's recovery, GPTQ's perplexity) depends on the calibration text; the
evaluation sections measure it on ``ctx.preset.slices`` disjoint, seeded slices
(:meth:`sw.eval.context.EvalContext.calib_slice`) and report :func:`summary`: the mean (on which
targets are judged), the range (min..max) and the sample standard deviation.
"""
from __future__ import annotations

import math
import statistics


def summary(values) -> dict:
    """``{"mean", "min", "max", "std" (sample; 0 for one value), "n", "values"}`` of finite ``values``
    (``None`` entries are left out; all-``None`` gives ``mean`` None)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return {"mean": None, "min": None, "max": None, "std": None, "n": 0, "values": []}
    return {"mean": statistics.fmean(vals), "min": min(vals), "max": max(vals),
            "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "n": len(vals), "values": vals}


def spread_text(s: dict, fmt: str = "{:.3f}") -> str:
    """``"26.89 (26.10..27.52, 3 slices)"``, or the value alone for one slice."""
    if s["mean"] is None:
        return "n/a"
    if s["n"] == 1:
        return fmt.format(s["mean"])
    return f"{fmt.format(s['mean'])} ({fmt.format(s['min'])}..{fmt.format(s['max'])}, {s['n']} slices)"


def spread_exceeds(s: dict, effect: float) -> bool:
    """True when the range over the slices is wider than ``|effect|`` (the figure is not settled by one
    slice: the choice of calibration text moves it more than the effect being claimed)."""
    return s["n"] > 1 and s["max"] is not None and (s["max"] - s["min"]) > abs(effect)
