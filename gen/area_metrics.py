"""The figures of the area report: per-component metrics, per-row totals, throughput per area, and
the targets the engine is held to (each with the measured figure, the target, met or missed, by how
much, and what limits it from the breakdown), against the baselines and the external anchors."""
from __future__ import annotations

import importlib

from .area_markdown import fmt_value

ADDITIVE_ASIC = {"cells": ("generic", "cells"), "ge": ("ge", "ge"), "seq_ge": ("ge", "seq_ge"),
                 "transistors": (None, "transistors"), "ff_bits": ("ge", "ff_bits")}
ADDITIVE_FPGA = ("lut4", "ff", "ccu2c", "lut4_equiv", "dp16kd", "dpr16x4", "mult18x18d", "pfumx", "l6mux21")


def four_bit_format(macs: dict) -> str | None:
    """The 4-bit weight format a design is compared at: int4 if it has it, else its first 4-bit one."""
    if "int4" in macs:
        return "int4"
    try:
        from sw import terms as T
        for f in macs:
            try:
                if T.code_bits(f) == 4:
                    return f
            except Exception:
                continue
    except ImportError:
        pass
    return None


def headline_format(macs: dict) -> str | None:
    """The format a design is compared at: its 4-bit one, else its fastest (e.g. fp16, int8 baselines)."""
    f4 = four_bit_format(macs)
    if f4 is not None or not macs:
        return f4
    return max(macs, key=lambda f: macs[f])


def component_metrics(asic: dict | None, ecp5: dict | None) -> dict:
    """Flat figures of one component (None where a flow did not run or failed)."""
    m: dict = {}
    ok_a = asic is not None and "error" not in asic
    for name, (part, key) in ADDITIVE_ASIC.items():
        if not ok_a:
            m[name] = None
        elif part is None:
            m[name] = asic.get(key)
        else:
            m[name] = (asic.get(part) or {}).get(key)
    m["depth"] = asic.get("depth") if ok_a else None
    ok_f = ecp5 is not None and "error" not in ecp5
    for k in ADDITIVE_FPGA:
        m[k] = ecp5.get(k) if ok_f else None
    m["fmax_mhz"] = ecp5.get("fmax_mhz") if ok_f else None
    return m


def row_totals(per_row: dict, metrics: dict) -> dict:
    """Per-row sums of the additive figures, max depth and min Fmax over the row's components."""
    out: dict = {}
    used = [c for c, n in per_row.items() if n]
    for k in list(ADDITIVE_ASIC) + list(ADDITIVE_FPGA):
        vals = [(per_row[c], (metrics.get(c) or {}).get(k)) for c in used]
        out[k] = None if any(v is None for _, v in vals) or not vals else round(sum(n * v for n, v in vals), 3)
    depths = [(metrics.get(c) or {}).get("depth") for c in used]
    out["depth_max"] = None if any(d is None for d in depths) or not depths else max(depths)
    fm = [(metrics.get(c) or {}).get("fmax_mhz") for c in used]
    out["fmax_min_mhz"] = None if any(f is None for f in fm) or not fm else min(fm)
    return out


def efficiency(macs: dict, row: dict) -> dict:
    """MACs/cycle per kGE and per kLUT (LUT4 + 2 per CCU2C) of one row, per weight format."""
    ge, lut = row.get("ge"), row.get("lut4_equiv")
    return {f: {"macs_per_cycle": round(v, 4),
                "macs_per_cycle_per_kge": round(v / (ge / 1000), 4) if ge else None,
                "macs_per_cycle_per_klut": round(v / (lut / 1000), 4) if lut else None}
            for f, v in macs.items()}


#: Per-PE figures from outside this repository: constants, not re-measured (see docs/baselines.md).
ANCHORS = (
    {"key": "bitmod_pe4", "name": "BitMoD 4-lane PE, without its block registers", "ge": 3192,
     "provenance": "the authors' RTL synthesised with this project's flow"},
    {"key": "bitmod_pe4_regs", "name": "BitMoD 4-lane PE, with its block registers", "ge": 4946,
     "provenance": "the authors' RTL synthesised with this project's flow"},
    {"key": "bitmod_fp16xint8", "name": "BitMoD FP16xINT8 unit", "ge": 2445,
     "provenance": "the authors' RTL synthesised with this project's flow"},
    {"key": "hardfloat_mac", "name": "HardFloat FP16xFP16 MAC with fp32 accumulation", "ge": 5562,
     "provenance": "Berkeley HardFloat synthesised with this project's flow"},
)

#: The targets' thresholds: throughput per area against each baseline (ratios of MACs/cycle/kGE at
#: W4), the full format set's area over INT4-only, and the 4-lane PE against the BitMoD anchor.
WANT_VS_FP16_MAC = 2.5
WANT_VS_FP16_INT8 = 1.5
WANT_VS_INT8_BFP = 1.0          # strictly above
WANT_FORMATS_OVER_INT4 = 1.15
WANT_PE4_OF_ANCHOR = 0.8
PE4_DESIGN = "bitmix_pe4"
#: The weight formats "W4" means in the targets (fp16 activations).
W4_FORMATS = ("int4", "bitmod4")
PE4_ANCHOR = "bitmod_pe4"


def anchor(key: str) -> dict:
    """The external anchor ``key`` of :data:`ANCHORS`."""
    for a in ANCHORS:
        if a["key"] == key:
            return a
    raise KeyError(f"no anchor {key!r}; known: {', '.join(a['key'] for a in ANCHORS)}")


def _weight_stream_module():
    """``sw.weight_stream`` when it exists (the packed weight port's own accounting), else None."""
    try:
        return importlib.import_module("sw.weight_stream")
    except ModuleNotFoundError as e:
        if e.name != "sw.weight_stream":
            raise
        return None


#: The function of ``sw.weight_stream`` that gives a format's weight-stream bits per weight (the
#: first that module defines).
WEIGHT_STREAM_FUNCTIONS = ("bits_per_weight", "stream_bits_per_weight")


def weight_stream_bits(fmt: str, code_bits: int | None = None) -> float | None:
    """Weight-stream bits per weight of ``fmt``: the hook for the packed weight port.

    ``sw.weight_stream``'s own count (:data:`WEIGHT_STREAM_FUNCTIONS`) when that module exists;
    else the format's element bits from ``sw.terms``; for a format ``sw`` does not know (the FP16
    MAC's raw fp16 codes) the design's own code slot width ``code_bits``."""
    from sw import terms as T
    ws = _weight_stream_module()
    fn = next((getattr(ws, n) for n in WEIGHT_STREAM_FUNCTIONS if hasattr(ws, n)), None) if ws else None
    if fn is not None:
        try:
            return fn(fmt)
        except ValueError:
            pass
    try:
        return T.code_bits(fmt)
    except ValueError:
        return code_bits


def design_weight_bits(design: dict, fmt: str | None) -> float | None:
    """:func:`weight_stream_bits` of a report design entry at ``fmt``."""
    if not design or not fmt:
        return None
    return weight_stream_bits(fmt, design.get("params", {}).get("code_bits"))


def _cm(design: dict | None, comp: str, key: str):
    """A component's metric from a report design entry (None when absent)."""
    if not design:
        return None
    return ((design.get("components", {}).get(comp) or {}).get("metrics") or {}).get(key)


def row_shares(design: dict | None) -> dict[str, float]:
    """Each counted component's share of a design's per-row GE (count x GE / row GE), and the term
    decoders' share (``lanes`` x decoder GE, inside the PE) when the design lists a decoder."""
    if not design or not (design.get("row") or {}).get("ge"):
        return {}
    total = design["row"]["ge"]
    out = {}
    for c, n in design["per_row"].items():
        ge = _cm(design, c, "ge")
        if n and ge is not None:
            out[c] = n * ge / total
    dec, lanes = _cm(design, "decoder", "ge"), design.get("params", {}).get("lanes")
    if dec is not None and lanes:
        out["decoders (inside pe)"] = lanes * dec / total
    return out


def _shares_text(design: dict | None) -> str:
    sh = row_shares(design)
    if not sh:
        return "no breakdown (not measured)"
    return ", ".join(f"{c} {v:.0%}" for c, v in sh.items())


def _largest(design: dict | None) -> str | None:
    sh = {c: v for c, v in row_shares(design).items() if "inside" not in c}
    return max(sh, key=sh.get) if sh else None


def _b(v) -> str:
    """Bits per weight for a table: ``4``, ``4.125``, an en dash for None."""
    if v is None:
        return "–"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _bits(a, b) -> str:
    return f"{_b(a)} vs {_b(b)}"


def _kge(design: dict | None, fmt: str | None):
    if not design or not fmt:
        return None
    return (design["efficiency"].get(fmt) or {}).get("macs_per_cycle_per_kge")


def w4_format(design: dict | None) -> str | None:
    """The format a design is held to at W4: the first of :data:`W4_FORMATS` it has, else its 4-bit one."""
    if not design:
        return None
    macs = design.get("macs_per_cycle", {})
    return next((f for f in W4_FORMATS if f in macs), design.get("format_4bit"))


def _w4_text(design: dict, fmt: str) -> str:
    """The W4 format and the other :data:`W4_FORMATS` at the same rate (e.g. ``int4 = bitmod4``)."""
    macs = design.get("macs_per_cycle", {})
    same = [f for f in W4_FORMATS if f != fmt and f in macs and macs[f] == macs[fmt]]
    return " = ".join([fmt] + same)


def ratio_target(bm: dict | None, base: dict | None, base_name: str, want: float, strict: bool = False) -> dict:
    """bitmix's MACs/cycle/kGE at W4 over a baseline's at its compared format, held to ``want``."""
    fb = (base or {}).get("format_headline")
    f4 = w4_format(bm)
    a, b = _kge(bm, f4), _kge(base, fb)
    ratio = None if a is None or b is None or b == 0 else a / b
    rel = "above" if strict else ">="
    text = (f"bitmix MACs/cycle/kGE at W4 {rel} " + ("" if strict and want == 1 else f"{want:g}x ")
            + f"{base_name}'s (at {fb or '–'})")
    met = None if ratio is None else (ratio > want if strict else ratio >= want)
    by, limit = "", f"bitmix row area shares: {_shares_text(bm)}"
    if met is False:
        macs, ge = bm["efficiency"][f4]["macs_per_cycle"], bm["row"]["ge"]
        need_ge = macs / (want * b) * 1000
        by = (f"{want - ratio:.2f}x short ({want / ratio - 1:.0%} more MACs/cycle/kGE needed: the bitmix row "
              f"would have to shrink from {fmt_value(ge)} to {fmt_value(need_ge)} GE, "
              f"{fmt_value(ge - need_ge)} GE less)")
        big = _largest(bm)
        if big:
            limit += f"; largest: {big}"
    return {"target": text, "measured": None if ratio is None else round(ratio, 3), "want": want, "met": met,
            "unit": "x", "figures": (f"{fmt_value(a, 3)} vs {fmt_value(b, 3)} MACs/cycle/kGE "
                                     f"(W4 = {_w4_text(bm, f4) if bm and f4 else '–'})"
                                     + ("" if ratio is None else f": {ratio:.2f}x")),
            "by": by, "limit": limit,
            "weight_bits": _bits(design_weight_bits(bm, f4), design_weight_bits(base, fb))}


def formats_target(bm: dict | None, int4: dict | None, want: float = WANT_FORMATS_OVER_INT4) -> dict:
    """The full format set's per-row GE over the INT4-only engine's, held to ``want``."""
    a, b = (bm or {}).get("row", {}).get("ge"), (int4 or {}).get("row", {}).get("ge")
    ratio = None if not a or not b else a / b
    met = None if ratio is None else ratio <= want
    by = "" if met is not False else (f"{fmt_value(a - want * b)} GE per row over "
                                      f"({ratio - want:.2f}x above {want:g}x)")
    limit = "the PE: " + f"{fmt_value(_cm(bm, 'pe', 'ge'))} vs {fmt_value(_cm(int4, 'pe', 'ge'))} GE"
    dec_a, dec_b = _cm(bm, "decoder", "ge"), _cm(int4, "decoder", "ge")
    if dec_a is not None and dec_b is not None:
        limit += f"; one term decoder {fmt_value(dec_a)} vs {fmt_value(dec_b)} GE"
    return {"target": f"bitmix row GE with the full format set <= {want:g}x bitmix_int4_only's",
            "measured": None if ratio is None else round(ratio, 3), "want": want, "met": met, "unit": "x",
            "figures": f"{fmt_value(a)} vs {fmt_value(b)} GE per row" + ("" if ratio is None else f": {ratio:.2f}x"),
            "by": by, "limit": limit,
            "weight_bits": _bits(design_weight_bits(bm, w4_format(bm)), design_weight_bits(int4, w4_format(int4)))}


def pe4_target(pe4: dict | None, want: float = WANT_PE4_OF_ANCHOR) -> dict:
    """The bitmix PE at 4 lanes with the full format set against the BitMoD authors' 4-lane PE."""
    anc = anchor(PE4_ANCHOR)
    cap = want * anc["ge"]
    ge = _cm(pe4, "pe", "ge")
    met = None if ge is None else ge <= cap
    by = "" if met is not False else f"{fmt_value(ge - cap)} GE over ({ge / cap - 1:.0%})"
    dec, lanes = _cm(pe4, "decoder", "ge"), (pe4 or {}).get("params", {}).get("lanes")
    limit = "–"
    if ge and dec is not None and lanes:
        limit = (f"{lanes} term decoders {fmt_value(lanes * dec)} GE ({lanes * dec / ge:.0%} of the PE), "
                 f"shifters, adder tree and group sum register {fmt_value(ge - lanes * dec)} GE")
    return {"target": (f"4-lane PE, full format set, <= {want:g} x {fmt_value(anc['ge'])} GE "
                       f"({anc['name']}; {anc['provenance']})"),
            "measured": ge, "want": round(cap, 1), "met": met, "unit": "GE",
            "figures": f"{fmt_value(ge)} vs {fmt_value(cap)} GE" + ("" if ge is None else f" ({ge / anc['ge']:.2f} x the anchor)"),
            "by": by, "limit": limit,
            "weight_bits": _b(design_weight_bits(pe4, w4_format(pe4)))}


def fmax_target(bm: dict | None, mac: dict | None) -> dict:
    """bitmix's ECP5 Fmax (slowest counted component) against the FP16 MAC's."""
    f1 = (bm or {}).get("row", {}).get("fmax_min_mhz")
    f2 = (mac or {}).get("row", {}).get("fmax_min_mhz")
    met = None if f1 is None or f2 is None else f1 >= f2
    by = "" if met is not False else f"{f2 - f1:.1f} MHz short ({1 - f1 / f2:.0%})"
    slow = None
    if bm:
        fm = {c: _cm(bm, c, "fmax_mhz") for c, n in bm["per_row"].items() if n}
        fm = {c: v for c, v in fm.items() if v}
        slow = min(fm, key=fm.get) if fm else None
    add = _cm(mac, "fp32_adder", "fmax_mhz")
    return {"target": "bitmix ECP5 Fmax >= fp16xfp16_mac's", "measured": f1, "want": f2, "met": met,
            "unit": "MHz", "figures": f"{fmt_value(f1, 1)} vs {fmt_value(f2, 1)} MHz", "by": by,
            "limit": (f"bitmix's slowest component: {slow or '–'}; the FP16 MAC's multiply->add->accumulate path is "
                      f"one cycle (its fp32 adder alone: {fmt_value(add, 1)} MHz)"),
            "weight_bits": _bits(design_weight_bits(bm, w4_format(bm)),
                                 design_weight_bits(mac, (mac or {}).get("format_headline")))}


def targets(rep: dict) -> list[dict]:
    """The engine's targets at W4 (per row, R rows sharing the front end and the rescale unit),
    evaluated on the report: measured figure, target, met, by how much when missed, what limits it."""
    by = {d["name"]: d for d in rep["designs"]}
    bm = by.get("bitmix")
    return [
        ratio_target(bm, by.get("fp16xfp16_mac"), "fp16xfp16_mac", WANT_VS_FP16_MAC),
        ratio_target(bm, by.get("fp16xint8_parallel"), "fp16xint8_parallel", WANT_VS_FP16_INT8),
        ratio_target(bm, by.get("int8xbfp_parallel"), "int8xbfp_parallel", WANT_VS_INT8_BFP, strict=True),
        formats_target(bm, by.get("bitmix_int4_only")),
        pe4_target(by.get(PE4_DESIGN)),
        fmax_target(bm, by.get("fp16xfp16_mac")),
    ]
