"""The ``gptq`` report section: GPTQ against RTN for the registry's 4- and 3-bit formats on SmolLM2.

Every decoder linear is rounded by :func:`sw.eval.gptq.gptq_quantize` through
:func:`sw.eval.adaquant.calibrate` (``method="gptq"``): sequential capture (a block's inputs come
from the model whose preceding blocks are already GPTQ-quantized), calibration sequences from the
calibration slice, every position in the Hessian (the attention sink included: left out, it made
int4_asym worse than RTN on SmolLM2, 30.66 against 28.26; kept, 26.69). The variants (``VARIANTS``;
a preset names the ones it runs): act-order with static groups (RTN's group metadata, the columns in
order of decreasing Hessian diagonal), the same true-sequential (each linear of a block rounded on the
inputs the block's already-quantized earlier linears give), the same followed by the scale refit, and,
for the BitMoD formats, natural order with each group's metadata (scale and BitMoD variant) chosen
inside the column loop from the error-fed weights.

Targets (issue: accuracy): GPTQ below RTN for every format at W4 and W3; the best W4 result at
about 4.15 bits/weight within +12% of the float reference, the best W3 within +60%.
"""
from __future__ import annotations

import time

from .adaquant import over_slices
from .context import EvalContext, Section, Table
from .hooks import QuantSpec
from .slices import spread_exceeds, spread_text

__all__ = ["PRESETS", "VARIANTS", "section"]

#: label -> calibrate() options of each GPTQ variant
VARIANTS = {
    "GPTQ act-order": dict(act_order=True, static_groups=True),
    "GPTQ act-order, true-sequential": dict(act_order=True, static_groups=True, true_sequential=True),
    "GPTQ act-order + scale refit": dict(act_order=True, static_groups=True, gptq_refit=True),
    "GPTQ in-loop groups": dict(act_order=False, static_groups=False),
}

#: per preset: the formats, the variants run on every format (``in_loop`` formats add "GPTQ in-loop
#: groups"), the calibration (sequences of ``seq_len``, ``calib_tokens`` per slice) and the windows.
#: A GPTQ calibration of SmolLM2 takes ~6 min here on one thread (30 blocks x 3,264 columns in the
#: loop, three block passes of the calibration tokens), so the presets run plain act-order on the
#: formats the targets are judged on; ``--set gptq.formats=[...]`` runs any others. The scale refit
#: is a variant to ask for, not a default: on SmolLM2 it lowered every layer's calibration error
#: and raised the perplexity far above RTN's (int3_asym 455.7 against RTN 112.1 and plain GPTQ 58.7).
PRESETS = {
    "smoke": dict(formats=["int4_asym", "bitmod3"], variants=["GPTQ act-order", "GPTQ act-order + scale refit"],
                  group_size=32, in_loop=["bitmod3"], seq_len=64, calib_tokens=512, damp=0.01, block=128,
                  skip_first=0, eval_windows=None),
    # quick: the W4 format of the target, one calibration slice
    "quick": dict(formats=["bitmod4"], variants=["GPTQ act-order"], group_size=128, in_loop=[],
                  seq_len=512, calib_tokens=8192, damp=0.01, block=128, skip_first=0, eval_windows=None),
    # full: the W4 and W3 formats of the targets and the common INT4 baseline, 3 calibration slices
    "full": dict(formats=["int4_asym", "bitmod4", "bitmod3"], variants=["GPTQ act-order"],
                 group_size=128, in_loop=[], seq_len=512, calib_tokens=8192, damp=0.01, block=128, skip_first=0,
                 eval_windows=4),
}

W4_PCT, W3_PCT = 12.0, 60.0


def _bits(fmt: str) -> int:
    import sw
    return sw.format_spec(fmt).bits


def section(ctx: EvalContext, preset: str | None = None, params: dict | None = None) -> Section:
    """RTN and GPTQ perplexity per format (see the module docstring)."""
    p = dict(PRESETS[preset or ctx.preset.name])
    if params:
        unknown = sorted(set(params) - set(p) - {"slices"})
        if unknown:
            raise ValueError(f"gptq section: unknown parameter(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(set(p) | {'slices'}))}")
        p.update(params)
    bad = [v for v in p["variants"] if v not in VARIANTS]
    if bad:
        raise ValueError(f"variants: {', '.join(map(repr, bad))} not among {', '.join(map(repr, VARIANTS))}")
    t0 = time.perf_counter()
    win = p.get("eval_windows")
    reference = ctx.reference_for(win)
    ref = reference["ppl"]
    g = p["group_size"]
    n_slices = int(p.get("slices") or ctx.preset.slices)
    rows, data = [], {"params": p, "reference_ppl": ref, "formats": {}, "slices": n_slices}
    for f in p["formats"]:
        rtn = ctx.ppl(QuantSpec(weight=f, group_size=g), windows=win)
        runs = {"RTN": {"ppl": rtn["ppl"], "bits_per_weight": rtn["bits_per_weight"], "mse_ratio": 1.0,
                        "seconds": rtn["quant_seconds"]}}
        for label in list(p["variants"]) + (["GPTQ in-loop groups"] if f in p["in_loop"] else []):
            kw = VARIANTS[label]
            run = over_slices(ctx, f, n_slices, win, method="gptq", mode="sequential", group_size=g,
                              seq_len=p["seq_len"], tokens=p["calib_tokens"], skip_first=p["skip_first"],
                              damp=p["damp"], gptq_block=p["block"], **kw)
            runs[label] = {**run, "bits_per_weight": rtn["bits_per_weight"]}
        for label, v in runs.items():
            v["delta_pct"] = 100.0 * (v["ppl"] / ref - 1.0)
            rows.append([f, label, v["bits_per_weight"], v["ppl"],
                         spread_text(v["ppl_spread"]) if "ppl_spread" in v else None, v["delta_pct"],
                         v["mse_ratio"], v["seconds"]])
        data["formats"][f] = runs
    data["targets"] = targets(data["formats"], ref)
    tab = Table(f"GPTQ vs RTN (weights only, g{g}, sequential, perplexity on the evaluation slice; GPTQ: mean over "
                f"{n_slices} calibration slice(s))",
                ["format", "method", "bits/weight", "PPL (mean)", "PPL mean (min..max)", "Δ vs float %",
                 "calib MSE / RTN (geo-mean)", "calib s (all slices)"], rows)
    return Section("gptq", "GPTQ for every format", _text(ctx, p, reference, data["targets"], data["formats"], n_slices), [tab], [], data,
                   time.perf_counter() - t0)


def targets(formats: dict, ref: float) -> dict:
    """GPTQ below RTN per format (its best variant), and the best W4 / W3 result against the float
    reference (``+W4_PCT`` / ``+W3_PCT`` %)."""
    below = {}
    best = {4: None, 3: None}
    for f, runs in formats.items():
        g = [(v["ppl"], k) for k, v in runs.items() if k != "RTN"]
        if g:
            below[f] = min(g)[0] < runs["RTN"]["ppl"]
        b = _bits(f)
        if b in best:
            for k, v in runs.items():
                if best[b] is None or v["ppl"] < best[b][0]:
                    best[b] = (v["ppl"], f, k)
    out = {"gptq_below_rtn": below, "all_below": bool(below) and all(below.values())}
    for b, want in ((4, W4_PCT), (3, W3_PCT)):
        if best[b] is not None:
            pct = 100.0 * (best[b][0] / ref - 1.0)
            out[f"w{b}"] = {"ppl": best[b][0], "format": best[b][1], "method": best[b][2], "delta_pct": pct,
                            "target_pct": want, "met": pct <= want}
    return out


def _text(ctx: EvalContext, p: dict, reference: dict, tg: dict, formats: dict, n_slices: int) -> str:
    lines = [
        f"Protocol: every decoder linear GPTQ-rounded (Frantar et al., 2022; `sw/eval/gptq.py`) on "
        f"{p['calib_tokens']} tokens of a calibration slice ({n_slices} disjoint, seeded slice(s); figures are "
        f"the mean, targets judged on it) in sequences of {p['seq_len']} "
        f"({p['skip_first']} leading position(s) of each left out of the Hessian); damping "
        f"{p['damp']} x mean(diag H), blocks of {p['block']} columns; sequential capture (a block sees the "
        f"outputs of the GPTQ-quantized blocks before it). `GPTQ act-order`: columns by decreasing "
        f"diag(H), each group's metadata (scale, zero point, BitMoD variant) RTN's; `GPTQ in-loop groups`: "
        f"natural order, each group's metadata chosen when the loop reaches it, from the error-fed weights "
        f"(BitMoD chooses its variant there); `true-sequential`: inside a block, o, gate/up and down each "
        f"rounded on the inputs the block gives with its earlier linears already quantized (otherwise every "
        f"linear of a block sees the inputs of the block's float weights). Deployed weights are real "
        f"`sw.QuantizedTensor`s.",
        f"Perplexity: {reference['windows']} windows of {reference['window']} tokens of the evaluation slice; "
        f"float reference {reference['ppl']:.3f}.",
    ]
    noisy = []
    for f, runs in formats.items():
        for k, v in runs.items():
            if "ppl_spread" in v and spread_exceeds(v["ppl_spread"], v["ppl"] - runs["RTN"]["ppl"]):
                noisy.append(f"{f} {k} (range {v['ppl_spread']['max'] - v['ppl_spread']['min']:.2f}, "
                             f"effect {v['ppl'] - runs['RTN']['ppl']:+.2f})")
    if noisy:
        lines.append("The spread over the calibration slices is larger than the gain over RTN for: "
                     + "; ".join(noisy) + ": one slice alone would not settle those comparisons.")
    below = tg.get("gptq_below_rtn", {})
    if below:
        worse = [f for f, ok in below.items() if not ok]
        lines.append(f"- GPTQ below RTN for every format: **{'met' if not worse else 'missed'}**"
                     + (f" (not below for {', '.join(worse)})" if worse else "") + ".")
    for b in (4, 3):
        t = tg.get(f"w{b}")
        if t:
            lines.append(f"- best W{b}: {t['format']} {t['method']}, PPL {t['ppl']:.3f} ({t['delta_pct']:+.1f}% "
                         f"vs float; target within +{t['target_pct']:.0f}%): **{'met' if t['met'] else 'missed'}**.")
    return "\n\n".join(lines)
