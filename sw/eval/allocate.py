"""Per-layer format allocation by an integer program (CalibTIP's IP, on bitmix's own cost model):
the ``allocate`` report section.

:func:`section` measures the sensitivities on SmolLM2 (:mod:`sw.eval.sensitivity`), solves the IP
(:mod:`sw.eval.knapsack`) over a sweep of budgets (bits, cycles relative to uniform INT4, and
joint), measures each distinct allocation's perplexity (:func:`allocation_ppl`), puts the uniform
formats at their own bits and cycles in the same table, runs the closed loop
(:mod:`sw.eval.closed_loop`: re-solve with what the mixtures measure on the validation slice, the
uniform formats as candidates) at every budget, judges its pick against the best uniform format within
the budget, and draws the Pareto plots.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from . import hwcost
from .closed_loop import closed_loop
from .hooks import QuantSpec, decoder_linears, quantize_weight, weights_restored
from .knapsack import layer_formats, model_cost, problem, solve
from .sensitivity import EPS, GROUP_SIZE, layer_sensitivity

if TYPE_CHECKING:
    from .context import Section

#: per preset: the formats of the IP, the sensitivity tokens, the uniform baselines (each also a bits
#: budget), more budgets (bits, cycles x uniform INT4, joint), the closed loop's iterations, and
#: ``gptq``: the budgets (by their ``kind``, e.g. "bits = uniform bitmod4") whose closed-loop pick is then
#: GPTQ-rounded (act-order, the gptq section's settings for the preset) and measured; none by default
#: (each is a GPTQ calibration, ~7 min per slice on SmolLM2), ``--set 'allocate.gptq=[...]'`` asks.
PRESETS: dict[str, dict] = {
    # tiny_llama, seconds: a few formats, a handful of budgets
    "smoke": {"formats": ["fp3", "int3_asym", "int4_asym", "bitmod4", "int8", "fp16"],
              "tokens": 128, "uniform": ["int3_asym", "bitmod4"],
              "extra_bits": [5.0], "cycle_budgets": [0.75], "joint": [(4.25, 0.9)], "metric": "kl", "loop_iter": 3,
              "gptq": []},
    # SmolLM2, ~5 min idle: 6 engine formats (INT8 gives the IP somewhere to spend bits above FP6) on
    # 64 calibration tokens, 3 uniform baselines (3.x, 4.x and 6.x bits), 5 IP budgets with the closed loop;
    # quantized weights are kept from the sensitivity pass (~2.5 GB) and reused
    "quick": {"formats": ["fp3", "bitmod3", "int4_asym", "bitmod4", "fp6_e3m2", "int8"],
              "tokens": 64, "uniform": ["bitmod3", "bitmod4", "fp6_e3m2"],
              "extra_bits": [3.5], "cycle_budgets": [0.75], "joint": [], "reuse_quantized": True, "metric": "kl",
              "eval_windows": None, "loop_iter": 3, "gptq": []},
    # SmolLM2: 8 engine formats on 128 tokens, 6 uniform baselines at their own bits, 3.5 bits, 0.75x INT4
    # cycles; the closed loop on 2 validation windows
    "full": {"formats": ["fp3", "int3_asym", "bitmod3", "int4_asym", "bitmod4", "fp6_e2m3", "fp6_e3m2", "int8"],
             "tokens": 128, "uniform": ["int3_asym", "bitmod3", "int4_asym", "bitmod4", "fp6_e3m2", "fp6_e2m3"],
             "extra_bits": [3.5], "cycle_budgets": [0.75], "joint": [],
             "reuse_quantized": True, "metric": "kl", "eval_windows": 4, "loop_iter": 4, "val_windows": 2,
             "gptq": []},
}

def allocation_ppl(ctx, layer_formats: dict[str, str | None], store: dict | None = None,
                   group_size: int | None = GROUP_SIZE, windows: int | None = None, split: str = "eval") -> dict:
    """Perplexity of ``ctx.model`` with ``layer_formats`` applied.

    Without ``store`` this is ``ctx.ppl(QuantSpec(layer_formats=..., group_size=...))``. With a
    ``store`` from :func:`layer_sensitivity` the weights are copied in from it (quantizing only what
    is missing, with the same ``hooks.quantize_weight``), then ``ctx.ppl(model=ctx.model)`` measures
    them and the float weights are restored: the same numbers without quantizing the model again
    (held equal by the tests). ``bits_per_weight`` is then left out (the caller knows it exactly).
    ``windows``: perplexity windows (None = the context preset's); ``split``: ``"eval"`` or ``"val"``.
    """
    if store is None:
        return ctx.ppl(QuantSpec(layer_formats=dict(layer_formats), group_size=group_size), windows=windows,
                       split=split)
    lin = decoder_linears(ctx.model)
    with weights_restored(ctx.model), torch.no_grad():
        for name, fmt in layer_formats.items():
            if fmt is not None:
                w = store.get((name, fmt))
                lin[name].weight.copy_(quantize_weight(lin[name].weight, fmt, group_size) if w is None else w)
        r = ctx.ppl(None, model=ctx.model, windows=windows, split=split)
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
    for kind, style, color, label in (("bits", "o-", "C0", "open-loop IP, bits budget"),
                                      ("cycles", "D", "C2", "open-loop IP, cycle budget"),
                                      ("closed", "*", "C1", "closed-loop pick (any budget)")):
        pts = sorted((p for p in points_ip if p["kind"] == kind and p[xkey] is not None), key=lambda p: p[xkey])
        if pts:
            ax.plot([p[xkey] for p in pts], [p["ppl"] for p in pts], style, color=color, label=label,
                    ms=10 if kind == "closed" else 6)
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


def _budgets(P: dict, bits_of=lambda fmt: None, int4_cycles: float | None = None) -> list[dict]:
    """The preset's budgets in report order: ``{"kind", "bits_budget", "cycles_budget"}`` (each uniform
    format's own bits from ``bits_of``, extra bits, cycles as multiples of ``int4_cycles``, joint)."""
    cyc = (lambda c: None) if int4_cycles is None else (lambda c: c * int4_cycles)
    runs = [{"kind": "bits = uniform " + u, "bits_budget": bits_of(u), "cycles_budget": None} for u in P["uniform"]]
    runs += [{"kind": f"bits ≤ {b}", "bits_budget": float(b), "cycles_budget": None} for b in P["extra_bits"]]
    runs += [{"kind": f"cycles ≤ {c}× int4", "bits_budget": None, "cycles_budget": cyc(c)} for c in P["cycle_budgets"]]
    runs += [{"kind": f"bits ≤ {b} and cycles ≤ {c}× int4", "bits_budget": float(b), "cycles_budget": cyc(c)}
             for b, c in P["joint"]]
    return runs


def section(ctx, preset: str | None = None, params: dict | None = None) -> Section:
    """IP format allocation: sensitivities, a budget sweep, perplexity of each allocation vs uniform
    formats, the closed loop, and (``params["gptq"]``) the closed loop's pick GPTQ-rounded."""
    from .context import Section, Table
    t0 = time.perf_counter()
    pname = preset or ctx.preset.name
    if pname not in PRESETS:
        raise ValueError(f"preset={pname!r} is not one of {', '.join(PRESETS)}")
    P = dict(PRESETS[pname])
    if params:
        unknown = sorted(set(params) - set(P))
        if unknown:
            raise ValueError(f"allocate section: unknown parameter(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(P))}")
        P.update(params)
    kinds = [r["kind"] for r in _budgets(P)]
    bad = [k for k in P["gptq"] if k not in kinds]
    if bad:
        raise ValueError(f"allocate.gptq: {', '.join(map(repr, bad))} not among this preset's budgets "
                         f"{', '.join(map(repr, kinds))}")
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
    runs = _budgets(P, lambda u: model_cost(pr.shapes, u)[0], int4_cyc)
    def plan(choice) -> dict[str, str | None]:
        return layer_formats(choice, pr.names, formats)

    # the closed loop's measurements: added NLL on the validation slice (never the evaluation windows)
    tl = time.perf_counter()
    vwin = P.get("val_windows")
    val_ref = ctx.reference_for(vwin, "val")
    uni_val: dict[str, float] = {}
    for k, f in enumerate(formats):
        uni_val[f] = 0.0 if f == hwcost.KEEP_FLOAT else (
            allocation_ppl(ctx, plan(np.full(len(pr.names), k)), store, windows=vwin, split="val")["nll"]
            - val_ref["nll"])
    val_seen: dict[tuple, float] = {}

    def measure_val(choice) -> float:
        key = tuple(int(i) for i in choice)
        if key not in val_seen:
            val_seen[key] = allocation_ppl(ctx, plan(choice), store, windows=vwin, split="val")["nll"] - val_ref["nll"]
        return val_seen[key]

    seen: dict[tuple, dict] = {}

    def eval_ppl(choice) -> dict:
        key = tuple(int(i) for i in choice)
        if key not in seen:
            seen[key] = allocation_ppl(ctx, plan(choice), store, windows=win)
        return seen[key]

    solve_s = 0.0
    picks: dict[str, np.ndarray] = {}      # budget kind -> the closed loop's pick (a format index per layer)
    for r in runs:
        try:
            ts = time.perf_counter()
            a = solve(pr.loss, pr.params, pr.bits, pr.cycles, r["bits_budget"], r["cycles_budget"])
            solve_s += time.perf_counter() - ts
            loop = closed_loop(pr.loss, pr.params, pr.bits, pr.cycles, formats, measure_val, uni_val,
                               bits_budget=r["bits_budget"], cycles_budget=r["cycles_budget"], max_iter=P["loop_iter"])
        except ValueError as e:
            r["error"] = str(e)
            continue
        r.update(avg_bits=a.avg_bits, cycles=a.cycles, predicted=a.objective, counts=a.counts(formats),
                 status=a.status, solve_seconds=a.seconds, val_delta_nll=measure_val(a.choice))
        res = eval_ppl(a.choice)
        r.update(ppl=res["ppl"], delta_pct=res["delta_pct"])
        if "bits_per_weight" in res:
            r["measured_bits"] = res["bits_per_weight"]
        b = loop.best
        picks[r["kind"]] = b.choice
        res = eval_ppl(b.choice)
        cands = [c for c in loop.candidates if c.kind == "uniform"]
        bu_val = min(cands, key=lambda c: c.measured, default=None)
        bu_eval = min(({"fmt": c.label, "ppl": ctx.ppl(QuantSpec(weight=c.label, group_size=GROUP_SIZE),
                                                      windows=win)["ppl"]} for c in cands
                       if c.label != hwcost.KEEP_FLOAT), key=lambda u: u["ppl"], default=None)
        r["loop"] = {"pick": b.label, "kind": b.kind, "avg_bits": b.avg_bits, "cycles": b.cycles,
                     "counts": {formats[i]: int((b.choice == i).sum()) for i in range(len(formats))
                                if (b.choice == i).any()},
                     "layer_formats": plan(b.choice),
                     "val_delta_nll": b.measured, "ppl": res["ppl"], "delta_pct": res["delta_pct"],
                     "mixtures_measured": sum(c.kind == "ip" for c in loop.candidates), "stop": loop.stop,
                     "factors": {f: float(x) for f, x in zip(formats, loop.factors)},
                     "best_uniform_val": None if bu_val is None else {"fmt": bu_val.label, "delta_nll": bu_val.measured},
                     "best_uniform_eval": bu_eval,
                     "candidates": [{"label": c.label, "kind": c.kind, "avg_bits": c.avg_bits,
                                     "val_delta_nll": c.measured,
                                     "counts": {formats[i]: int((c.choice == i).sum()) for i in range(len(formats))
                                                if (c.choice == i).any()}} for c in loop.candidates]}
    loop_s = time.perf_counter() - tl
    if store is not None:
        store.clear()
    ref = ctx.reference_for(win)
    gptq_rows = _gptq_picks(ctx, pname, P, runs, picks, plan, win, ref["ppl"])
    uni: list[dict] = []
    for u in P["uniform"]:
        bits, cyc = model_cost(pr.shapes, u)
        res = ctx.ppl(QuantSpec(weight=u, group_size=GROUP_SIZE), windows=win)
        predicted = float(pr.loss[:, formats.index(u)].sum()) if u in formats else None
        uni.append({"fmt": u, "avg_bits": bits, "cycles": cyc, "ppl": res["ppl"], "delta_pct": res["delta_pct"],
                    "predicted": predicted, "measured_bits": res["bits_per_weight"],
                    "val_delta_nll": uni_val.get(u)})

    rel = lambda c: None if c is None else c / int4_cyc   # noqa: E731
    table = Table(
        title=f"Open-loop IP allocations vs uniform formats ({len(pr.names)} linears, g{GROUP_SIZE}, "
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

    # target: the closed loop at or below the best uniform format within each budget, on validation and
    # evaluation; at least 5% below it at bitmod3's and bitmod4's bits
    verdicts, met = [], True
    for r in runs:
        lp = r.get("loop")
        if lp is None:
            continue
        bu, bv = lp["best_uniform_eval"], lp["best_uniform_val"]
        vs = None if bu is None else 100.0 * (lp["ppl"] / bu["ppl"] - 1.0)
        need = -5.0 if r["kind"] in ("bits = uniform bitmod3", "bits = uniform bitmod4") else 0.0
        ok = (vs is None or vs <= need + 1e-9) and (bv is None or lp["val_delta_nll"] <= bv["delta_nll"] + 1e-12)
        met &= ok
        verdicts.append([r["kind"], lp["pick"], _mixture(lp["counts"]), lp["avg_bits"], rel(lp["cycles"]),
                         r["val_delta_nll"], lp["val_delta_nll"], None if bv is None else bv["delta_nll"],
                         r["ppl"], lp["ppl"], None if bu is None else f"{bu['fmt']} {bu['ppl']:.3f}", vs,
                         f"≤ {need:+.0f} %", "met" if ok else "missed", lp["mixtures_measured"]])
    target = Table(title="Closed loop: the pick at each budget vs the open-loop IP and the best uniform format "
                         "within the budget (validation: added NLL, nats/token; evaluation: PPL)",
                   columns=["budget", "pick", "mixture", "avg bits", "cycles (× int4)", "open-loop val ΔNLL",
                            "pick val ΔNLL", "best uniform val ΔNLL", "open-loop PPL", "pick PPL",
                            "best uniform (eval PPL)", "pick vs best uniform %", "target", "verdict",
                            "mixtures measured"], rows=verdicts)
    sens_table = Table(
        title=f"Mean added loss per layer (nats/token, {tokens} calibration tokens), by format",
        columns=["format", "bits/weight (g128)", "terms (cycles/beat)", "mean Δloss", "max Δloss", "layer with max"],
        rows=[[c.fmt, c.bits, c.terms, float(pr.loss[:, k].mean()), float(pr.loss[:, k].max()),
               pr.names[int(pr.loss[:, k].argmax())]] for k, c in enumerate(hwcost.format_costs(formats, GROUP_SIZE))])

    ip_points = [{"kind": "bits" if r["cycles_budget"] is None else "cycles", "avg_bits": r["avg_bits"],
                  "cycles": rel(r["cycles"]), "ppl": r["ppl"]} for r in runs if "ppl" in r]
    ip_points += [{"kind": "closed", "avg_bits": r["loop"]["avg_bits"], "cycles": rel(r["loop"]["cycles"]),
                   "ppl": r["loop"]["ppl"]} for r in runs if "loop" in r]
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
    figs = "; ".join(f"{v[0]}: {v[1]} {v[9]:.3f} vs best uniform {v[10]} ({v[11]:+.1f} %, open-loop IP {v[8]:.3f})"
                     if v[11] is not None else f"{v[0]}: {v[1]} (no uniform format fits)" for v in verdicts)
    missed = [v for v in verdicts if v[-2] == "missed"]
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
        "**Closed loop.** The open-loop IP minimises the sum of one-at-a-time losses, which ignores how layers' "
        "errors compound (and they compound more in coarse formats). `sw.eval.closed_loop` measures every "
        f"uniform format and each IP mixture on the validation slice ({val_ref['tokens']} tokens, disjoint from "
        "the evaluation and calibration text), fits one compounding factor per format to those measurements "
        "(measured added NLL ≈ Σ_format factor × summed one-at-a-time loss, non-negative least squares on "
        "relative errors), re-solves the IP with the scaled losses and measures again, until a mixture repeats, "
        f"an iteration does not improve, or {P['loop_iter']} mixtures are measured. The pick is the best measured "
        "candidate, uniform formats within the budget included, so on the validation slice it is never worse "
        "than the best uniform format; the evaluation windows are used only to report it.",
        "",
        f"**Target** -- the pick at or below the best uniform format within every budget, on validation and on "
        f"the evaluation windows, and at least 5% below it at bitmod3's and bitmod4's bits: "
        f"**{'met' if met else 'missed'}** ({figs})."
        + ("" if not missed else " Missed: " + "; ".join(
            f"{v[0]} ({'the pick is that uniform format' if v[1] == (v[10] or '').split(' ')[0] else 'a mixture that measured better on validation'}"
            f"{'' if v[11] is None else f', {v[11]:+.1f} % on evaluation against {v[12]}'})" for v in missed) + "."),
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
        f"measurements), open-loop IP solves {solve_s:.1f} s, closed loop {loop_s:.0f} s ({len(val_seen)} mixtures "
        f"and {sum(f != hwcost.KEEP_FLOAT for f in formats)} uniform formats on validation), {len(seen)} distinct "
        "allocations evaluated.",
    ])
    data = {"preset": pname, "metric": metric, "formats": formats, "tokens": tokens, "group_size": GROUP_SIZE, "layers": pr.names,
            "sensitivity": sens, "int4_cycles": int4_cyc, "runs": runs, "uniform": uni, "target_met": met,
            "area": area, "sensitivity_seconds": sens_s, "solve_seconds": solve_s, "loop_seconds": loop_s,
            "uniform_val_delta_nll": uni_val, "val_reference": val_ref,
            "bits": {f: hwcost.bits_per_weight(f) for f in formats}, "terms": {f: hwcost.terms(f) for f in formats}}
    tables = [table, target, sens_table]
    if gptq_rows:
        tables.append(Table(
            title="The closed loop's pick, GPTQ-rounded (act-order, static groups; mean over the calibration slices)",
            columns=["budget", "pick", "mixture", "avg bits", "pick PPL (RTN)", "pick + GPTQ PPL (mean)",
                     "mean (min..max)", "Δ vs float %", "calib s (all slices)"], rows=gptq_rows))
        text += "\n\n" + (
            "**The pick, GPTQ-rounded** (`--set 'allocate.gptq=[budget, ...]'`): every linear of the closed loop's "
            "pick rounded by GPTQ act-order in its own format (the gptq section's settings, sequential capture), "
            "which combines the allocator with error-aware rounding: " + "; ".join(
                f"{r[0]}: {r[5]:.3f} ({r[7]:+.1f}% vs float) against the pick's RTN {r[4]:.3f}" for r in gptq_rows)
            + ". A mixture at a 4-bit format's bits is not a 4-bit format: its layers take other formats' cycles.")
    return Section(key="allocate", title="Integer-program format allocation, open and closed loop", text=text,
                   tables=tables, plots=plots, data=data, seconds=time.perf_counter() - t0)


def _gptq_picks(ctx, pname: str, P: dict, runs: list[dict], picks: dict, plan, win, ref_ppl: float) -> list[list]:
    """GPTQ act-order on the closed loop's pick at each budget of ``P["gptq"]`` (over the context's
    calibration slices; stored in the run's ``loop["gptq"]``): the rows of the section's GPTQ table."""
    if not P["gptq"]:
        return []
    from .adaquant import over_slices
    from .gptq_eval import PRESETS as GPTQ_PRESETS
    from .gptq_eval import VARIANTS
    from .slices import spread_text
    gp = GPTQ_PRESETS[pname]
    rows = []
    for r in runs:
        if r["kind"] not in P["gptq"] or "loop" not in r:
            continue
        lp = r["loop"]
        run = over_slices(ctx, plan(picks[r["kind"]]), int(ctx.preset.slices), win, method="gptq",
                          mode="sequential", group_size=GROUP_SIZE, seq_len=gp["seq_len"], tokens=gp["calib_tokens"],
                          skip_first=gp["skip_first"], damp=gp["damp"], gptq_block=gp["block"],
                          **VARIANTS["GPTQ act-order"])
        lp["gptq"] = {**run, "delta_pct": 100.0 * (run["ppl"] / ref_ppl - 1.0)}
        rows.append([r["kind"], lp["pick"], _mixture(lp["counts"]), lp["avg_bits"], lp["ppl"], run["ppl"],
                     spread_text(run["ppl_spread"]), lp["gptq"]["delta_pct"], run["seconds"]])
    return rows
