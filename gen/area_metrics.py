"""The figures of the area report: per-component metrics, per-row totals, throughput per area, and
the targets the engine is held to (each with the measured figure and what limits it)."""
from __future__ import annotations

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


def _cm(design: dict | None, comp: str, key: str):
    """A component's metric from a report design entry (None when absent)."""
    if not design:
        return None
    return ((design.get("components", {}).get(comp) or {}).get("metrics") or {}).get(key)


def targets(rep: dict) -> list[dict]:
    """The engine's area targets, evaluated on the report: measured figure, target, met, what limits it."""
    by = {d["name"]: d for d in rep["designs"]}

    def kge(name, fmt):
        d = by.get(name)
        return None if d is None else (d["efficiency"].get(fmt) or {}).get("macs_per_cycle_per_kge")

    out = []
    bm = kge("bitmix", "int4")
    bm_row = (by.get("bitmix") or {}).get("row", {})
    parts = {}
    if "bitmix" in by:
        d = by["bitmix"]
        for c, n in d["per_row"].items():
            ge = _cm(d, c, "ge")
            if n and ge is not None and bm_row.get("ge"):
                parts[c] = n * ge / bm_row["ge"]
        dec, pe = _cm(d, "decoder", "ge"), _cm(d, "pe", "ge")
        lanes = d["params"].get("lanes")
        if dec and pe and lanes:
            parts["decoders (inside pe)"] = lanes * dec / bm_row["ge"]
    share = ", ".join(f"{c} {v:.0%}" for c, v in parts.items())
    for base, fmt, want in (("fp16xfp16_mac", "fp16", 2.5), ("fp16xint8_parallel", "int8", 1.6)):
        b = kge(base, fmt)
        ratio = None if bm is None or b is None else bm / b
        out.append({"target": f"bitmix MACs/cycle/kGE at INT4 >= {want}x {base}'s (at {fmt})",
                    "measured": None if ratio is None else round(ratio, 3), "want": want,
                    "met": None if ratio is None else ratio >= want,
                    "figures": f"{fmt_value(bm, 3)} vs {fmt_value(b, 3)} MACs/cycle/kGE",
                    "limit": f"bitmix row area shares: {share}"})
    a, b = (by.get("bitmix") or {}).get("row", {}).get("ge"), (by.get("bitmix_int4_only") or {}).get("row", {}).get("ge")
    over = None if not a or not b else a / b - 1
    pe_a, pe_b = _cm(by.get("bitmix"), "pe", "ge"), _cm(by.get("bitmix_int4_only"), "pe", "ge")
    out.append({"target": "full format set costs <= 15% area over INT4-only (per row)",
                "measured": None if over is None else round(over, 3), "want": 0.15,
                "met": None if over is None else over <= 0.15,
                "figures": f"{fmt_value(a)} vs {fmt_value(b)} GE per row",
                "limit": (f"the PE: {fmt_value(pe_a)} vs {fmt_value(pe_b)} GE (12-format term decoders, and shifts up to "
                          f"9 places for FP6 E3M2 against 3 for INT4 widen every lane and the adder tree)")})
    f1 = (by.get("bitmix") or {}).get("row", {}).get("fmax_min_mhz")
    f2 = (by.get("fp16xfp16_mac") or {}).get("row", {}).get("fmax_min_mhz")
    add = _cm(by.get("fp16xfp16_mac"), "fp32_adder", "fmax_mhz")
    slow = None
    if "bitmix" in by:
        fm = {c: _cm(by["bitmix"], c, "fmax_mhz") for c, n in by["bitmix"]["per_row"].items() if n}
        fm = {c: v for c, v in fm.items() if v}
        slow = min(fm, key=fm.get) if fm else None
    out.append({"target": "bitmix ECP5 Fmax >= the FP16 MAC's",
                "measured": f1, "want": f2, "met": None if f1 is None or f2 is None else f1 >= f2,
                "figures": f"{fmt_value(f1, 1)} vs {fmt_value(f2, 1)} MHz",
                "limit": (f"bitmix's slowest component: {slow}; the FP16 MAC's multiply->add->accumulate path is one "
                          f"cycle (a product register would leave its fp32 adder alone at {fmt_value(add, 1)} MHz)")})
    return out
