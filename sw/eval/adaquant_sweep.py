"""Choosing AdaQuant's settings on the validation slice: the ``adaquant_sweep`` report section.

AdaQuant's perplexity depends strongly on its optimiser settings (steps, learning rates, how many
calibration tokens, whether the attention-sink position is in the loss, a bound on how far a weight
may move), and a lower calibration MSE does not mean a lower perplexity. Settings picked by their
perplexity on the evaluation windows would flatter the result, so this section measures every
setting of a grid on the **validation slice** (``ctx.val_ids``: the tokens just before the
calibration slice, disjoint from it and from the evaluation slice) and chooses the one with the
lowest validation perplexity. The evaluation-slice perplexity of every setting is reported beside
it, so the reader can see how well validation predicts evaluation, but plays no part in the choice.

Every setting calibrates the preset's format (int4, g128, fp16 scales) in sequential mode with
:func:`sw.eval.adaquant.calibrate`, on the calibration slice, with the context's seed.

The section is opt-in (``python -m sw.eval --sections adaquant_sweep``; not in the default
sections): the ``adaquant`` section's quick and full settings (:data:`sw.eval.adaquant.PRESETS`)
are the winner of this sweep at the quick preset, and the section says whether they still are.
"""
from __future__ import annotations

import time

from .adaquant import PRESETS as ADAQUANT_PRESETS
from .adaquant import _ppl_loaded, calibrate, recovered_fraction
from .context import EvalContext, Section, Table
from .hooks import QuantSpec

#: the settings a grid row may set; the rest come from the row's defaults below
KEYS = ("steps", "lr_w", "lr_s", "calib_tokens", "batch_tokens", "skip_first", "max_move")
BASE = dict(steps=20, lr_w=5e-3, lr_s=5e-4, calib_tokens=2048, batch_tokens=128, skip_first=1, max_move=None)


def _grid(*rows: dict) -> list[dict]:
    return [{**BASE, **r} for r in rows]


QUICK_GRID = _grid(
    dict(steps=6, calib_tokens=1024, skip_first=0),
    dict(calib_tokens=1024, skip_first=0),
    dict(calib_tokens=1024),
    dict(skip_first=0),
    dict(),
    dict(lr_s=0.0),
    dict(lr_s=5e-3),
    dict(calib_tokens=4096),
    dict(lr_w=2e-2, lr_s=2e-3),
    dict(lr_w=2e-2, lr_s=2e-3, max_move=0.5),
    dict(steps=40, lr_w=1e-2, max_move=0.5),
    dict(steps=80, lr_w=1e-2, calib_tokens=4096, batch_tokens=256, max_move=0.5),
)

PRESETS: dict[str, dict] = {
    "smoke": dict(format="int4", mode="sequential", seq_len=64,
                  grid=[{**BASE, "steps": 4, "calib_tokens": 256, "batch_tokens": 64},
                        {**BASE, "steps": 4, "calib_tokens": 256, "batch_tokens": 64, "lr_w": 5e-2, "max_move": 0.5}],
                  eval_windows=None, val_windows=None),
    "quick": dict(format="int4", mode="sequential", seq_len=512, grid=QUICK_GRID, eval_windows=None, val_windows=None),
    "full": dict(format="int4", mode="sequential", seq_len=512, grid=QUICK_GRID, eval_windows=4, val_windows=None),
}


def setting_label(row: dict) -> str:
    """Compact text of a grid row, e.g. ``20 steps, lr_w 5e-3, lr_s 5e-4, 2048 tok, skip 1``."""
    s = (f"{row['steps']} steps, lr_w {row['lr_w']:g}, lr_s {row['lr_s']:g}, {row['calib_tokens']} tok, "
         f"batch {row['batch_tokens']}, skip {row['skip_first']}")
    return s + (f", |D|<={row['max_move']:g}" if row.get("max_move") is not None else "")


def same_setting(a: dict, b: dict) -> bool:
    """True when the two settings agree on every key of :data:`KEYS` (missing ``max_move`` = None)."""
    return all(a.get(k) == b.get(k) for k in KEYS)


def choose(rows: list[dict]) -> int:
    """Index of the row with the lowest validation perplexity (the first on a tie)."""
    if not rows:
        raise ValueError("rows must not be empty")
    return min(range(len(rows)), key=lambda i: (rows[i]["val_ppl"], i))


def section(ctx: EvalContext, preset: str | None = None, params: dict | None = None) -> Section:
    """Run the grid, choose on the validation slice, report both slices (see the module docstring)."""
    p = dict(PRESETS[preset or ctx.preset.name])
    if params:
        p.update(params)
    bad = [i for i, r in enumerate(p["grid"]) if set(r) - set(KEYS) or set(KEYS) - set(r)]
    if bad:
        raise ValueError(f"grid rows {bad} must set exactly the keys {', '.join(KEYS)}")
    if ctx.val_ids is None:
        raise ValueError("the adaquant_sweep section needs a validation slice (ctx.val_ids)")
    t0 = time.perf_counter()
    fmt, ewin, vwin = p["format"], p.get("eval_windows"), p.get("val_windows")
    ref_e, ref_v = ctx.reference_for(ewin)["ppl"], ctx.reference_for(vwin, split="val")["ppl"]
    spec = QuantSpec(weight=fmt, group_size=128)
    rtn_e, rtn_v = ctx.ppl(spec, windows=ewin)["ppl"], ctx.ppl(spec, windows=vwin, split="val")["ppl"]
    rows = []
    for i, g in enumerate(p["grid"]):
        cal = calibrate(ctx.model, ctx.calib_ids, fmt, method="adaquant", mode=p["mode"], group_size=128,
                        seq_len=p["seq_len"], tokens=g["calib_tokens"], steps=g["steps"],
                        batch_tokens=g["batch_tokens"], lr_w=g["lr_w"], lr_s=g["lr_s"], skip_first=g["skip_first"],
                        max_move=g["max_move"], seed=ctx.seed, progress=ctx.progress)
        v = _ppl_loaded(ctx, cal, vwin, split="val")["ppl"]
        e = _ppl_loaded(ctx, cal, ewin)["ppl"]
        rows.append({"setting": dict(g), "label": setting_label(g), "mse_ratio": cal.mse_ratio(),
                     "val_ppl": v, "eval_ppl": e, "val_recovered": recovered_fraction(rtn_v, v, ref_v),
                     "eval_recovered": recovered_fraction(rtn_e, e, ref_e), "calib_seconds": cal.seconds})
    best = choose(rows)
    used = ADAQUANT_PRESETS.get(ctx.preset.name, ADAQUANT_PRESETS["quick"])
    in_use = [i for i, r in enumerate(rows) if same_setting(r["setting"], used)]
    table = Table(f"AdaQuant settings ({fmt} g128, {p['mode']}): chosen by validation perplexity",
                  ["#", "setting", "calib MSE / RTN", "val PPL", "val recovered", "eval PPL", "eval recovered",
                   "chosen", "calib s"],
                  [[i + 1, r["label"], r["mse_ratio"], r["val_ppl"], r["val_recovered"], r["eval_ppl"],
                    r["eval_recovered"], i == best, r["calib_seconds"]] for i, r in enumerate(rows)])
    data = {"params": {k: v for k, v in p.items() if k != "grid"}, "grid": p["grid"], "rows": rows, "chosen": best,
            "reference": {"eval": ref_e, "val": ref_v}, "rtn": {"eval": rtn_e, "val": rtn_v},
            "adaquant_preset_setting": {k: used.get(k) for k in KEYS},
            "adaquant_preset_is_chosen": best in in_use}
    plots = [] if ctx.tiny else [_plot(ctx, rows, best)]
    text = _text(ctx, p, rows, best, in_use, ref_e, ref_v, rtn_e, rtn_v)
    return Section("adaquant_sweep", "AdaQuant settings chosen on the validation slice", text, [table], plots, data,
                   time.perf_counter() - t0)


def _text(ctx, p, rows, best, in_use, ref_e, ref_v, rtn_e, rtn_v) -> str:
    b = rows[best]
    nv = ctx.reference_for(p.get("val_windows"), split="val")
    ne = ctx.reference_for(p.get("eval_windows"))
    order_v = sorted(range(len(rows)), key=lambda i: rows[i]["val_ppl"])
    order_e = sorted(range(len(rows)), key=lambda i: rows[i]["eval_ppl"])
    top_e = order_e[0]
    lines = [
        f"Every setting calibrates {p['format']} g128 (fp16 scales, {p['mode']} mode, seed {ctx.seed}) on the "
        f"calibration slice and is scored on the **validation slice** ({nv['windows']} windows of {nv['window']} "
        f"tokens just before the calibration slice; float PPL {ref_v:.3f}, RTN {rtn_v:.3f}). The setting with the "
        f"lowest validation perplexity is chosen; the evaluation-slice figures ({ne['windows']} windows; float "
        f"{ref_e:.3f}, RTN {rtn_e:.3f}) are shown for comparison only. Recovered = (RTN - PPL) / (RTN - float) "
        f"on the same slice. `|D|<=m`: the weight perturbation bounded to m group steps (0.5: AdaRound's "
        f"round-up-or-down).",
        f"Chosen: **#{best + 1}** ({b['label']}): validation PPL {b['val_ppl']:.3f}, evaluation PPL "
        f"{b['eval_ppl']:.3f} ({_pct(b['eval_recovered'])} of RTN's increase recovered on the evaluation slice).",
        f"The best setting on the evaluation slice would have been #{top_e + 1} ({_pct(rows[top_e]['eval_recovered'])}); "
        f"the chosen one ranks {order_e.index(best) + 1} of {len(rows)} there"
        + ("" if top_e == best else f", so choosing on the evaluation slice would have overstated the recovery by "
           f"{100 * ((rows[top_e]['eval_recovered'] or 0) - (b['eval_recovered'] or 0)):.1f} points") + ". "
        f"Validation and evaluation agree on the order of the top three: "
        f"{'yes' if order_v[:3] == order_e[:3] else 'no'}.",
        ("The `adaquant` section's settings for this preset are this sweep's choice."
         if best in in_use else
         "The `adaquant` section's settings for this preset are **not** this sweep's choice"
         + (f" (they are #{in_use[0] + 1})" if in_use else " (they are not in the grid)")
         + ": update `sw.eval.adaquant.PRESETS`."),
    ]
    return "\n\n".join(lines)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _plot(ctx: EvalContext, rows: list[dict], best: int) -> str:
    """Validation vs evaluation recovery per setting; the axes show the settings that recover
    something on the validation slice, the others are listed in the legend as off the chart."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    xv = [100 * (r["val_recovered"] or 0) for r in rows]
    ye = [100 * (r["eval_recovered"] or 0) for r in rows]
    shown = [i for i in range(len(rows)) if xv[i] >= 0 and ye[i] >= 0] or list(range(len(rows)))
    off = [i + 1 for i in range(len(rows)) if i not in shown]
    ax.scatter([xv[i] for i in shown], [ye[i] for i in shown],
               c=["tab:red" if i == best else "tab:blue" for i in shown], zorder=3)
    for i in shown:
        ax.annotate(str(i + 1), (xv[i], ye[i]), textcoords="offset points", xytext=(4, 3), fontsize=8)
    vals = [xv[i] for i in shown] + [ye[i] for i in shown] + [100 / 3]
    lo, hi = min(vals) - 3, max(vals) + 3
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--", zorder=1, label="validation = evaluation")
    ax.axhline(100 / 3, color="tab:green", lw=0.8, ls=":", label="target: a third")
    if off:
        ax.plot([], [], " ", label=f"off the chart (worse than RTN): #{', #'.join(map(str, off))}")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("RTN increase recovered on the validation slice (%)")
    ax.set_ylabel("... on the evaluation slice (%)")
    ax.set_title("AdaQuant settings (int4 g128, sequential); red = chosen", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    return ctx.save_figure(fig, "adaquant_sweep.png")
