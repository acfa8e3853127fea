"""Per-layer format allocation by an integer program (CalibTIP's IP, on bitmix's own cost model):
the ``allocate`` report section.

:func:`section` measures the sensitivities on SmolLM2 (:mod:`sw.eval.sensitivity`), solves the IP
(:mod:`sw.eval.knapsack`) over a sweep of budgets (bits, cycles relative to uniform INT4, and
joint), measures each distinct allocation's perplexity (:func:`allocation_ppl`), puts the uniform
formats at their own bits and cycles in the same table, and draws the Pareto plots.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from . import hwcost
from .hooks import QuantSpec, decoder_linears, quantize_weight, weights_restored
from .knapsack import model_cost, problem, solve
from .sensitivity import EPS, GROUP_SIZE, layer_sensitivity

if TYPE_CHECKING:
    from .context import Section

PRESETS: dict[str, dict] = {
    # tiny_llama, seconds: a few formats, a handful of budgets
    "smoke": {"formats": ["fp3", "int3_asym", "int4_asym", "bitmod4", "int8", "fp16"],
              "tokens": 128, "uniform": ["int3_asym", "bitmod4"],
              "extra_bits": [5.0], "cycle_budgets": [0.75], "joint": [(4.25, 0.9)], "metric": "kl"},
    # SmolLM2, ~4 min idle: 6 engine formats (INT8 gives the IP somewhere to spend bits above FP6) on
    # 64 calibration tokens, 4 uniform baselines, ~6 IP budgets; quantized weights are kept from the
    # sensitivity pass (~2.5 GB) and reused
    "quick": {"formats": ["fp3", "bitmod3", "int4_asym", "bitmod4", "fp6_e3m2", "int8"],
              "tokens": 64, "uniform": ["bitmod3", "int4_asym", "bitmod4", "fp6_e3m2"],
              "extra_bits": [3.5], "cycle_budgets": [0.75], "joint": [], "reuse_quantized": True, "metric": "kl",
              "eval_windows": None},
    # SmolLM2, ~13 min idle: 8 engine formats on 128 tokens, 6 uniform baselines, a denser budget sweep
    "full": {"formats": ["fp3", "int3_asym", "bitmod3", "int4_asym", "bitmod4", "fp6_e2m3", "fp6_e3m2", "int8"],
             "tokens": 128, "uniform": ["int3_asym", "bitmod3", "int4_asym", "bitmod4", "fp6_e3m2", "fp6_e2m3"],
             "extra_bits": [3.5, 4.5, 5.0], "cycle_budgets": [0.75, 1.0], "joint": [(4.5, 1.0)],
             "reuse_quantized": True, "metric": "kl", "eval_windows": 4},
}

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
        f"{hwcost.default_shape().rows}×{hwcost.default_shape().lanes} engine, G={hwcost.default_shape().group_size}; formats the engine cannot run are excluded from cycle budgets). Each distinct allocation's "
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
