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

``bitmix area [--config X] [--no-fpga] [--no-top] [--designs a,b] ...``; figures are
measured and written down, never asserted by tests.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import re
import sys
import time
from pathlib import Path

from sw import jobs as J
from sw.jobs import scheduler_from
from sw.report_files import write_report

from . import area as A
from . import format_cost as FC
from .area_markdown import fmt_value, markdown, plots
from .area_metrics import (
    ADDITIVE_FPGA,
    ANCHORS,
    component_metrics,
    design_weight_bits,
    efficiency,
    four_bit_format,
    headline_format,
    row_totals,
    targets,
)
from .cache import Cache
from .jobs import ToolJob, add_job_options, run_jobs

ROOT = Path(__file__).resolve().parent.parent


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


def build(designs, cfg, work: Path, out: Path, *, fpga: bool = True, top: bool = True, top_fpga: bool = False,
          top_fpga_timeout: float = 300.0, timeout: float = 3600.0, freq_mhz: float = A.ECP5_FREQ_MHZ,
          scheduler: str | None = None, workers: int | None = None, use_cache: bool = True,
          progress: bool = True, format_costs=None, log=print) -> dict:
    """Price ``designs`` on every flow into ``out/area.{json,md}`` and the plots. ``format_costs``: the
    config of the design named ``bitmix`` (at the per-row R) to price again without each format
    (:mod:`gen.format_cost`), or None."""
    t_start = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    cache = Cache(work / "cache") if use_cache else None
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
    by_name = {d.name: d for d in designs}
    jl: list[ToolJob] = []
    for (dn, c), (p, name) in paths.items():
        size = p.stat().st_size
        is_top = c == "@top"
        jl.append(ToolJob((dn, c, "asic"), "asic", p, name, timeout, {"parts": list(A.ASIC_PARTS)}, weight=size))
        proxied = not is_top and c in by_name[dn].fpga_proxy
        if fpga and (not is_top or top_fpga) and not proxied:
            jl.append(ToolJob((dn, c, "ecp5"), "ecp5", p, name, top_fpga_timeout if is_top else timeout,
                          {"freq_mhz": freq_mhz, "nodsp": True}, weight=2.5 * size))
    bm = next((d for d in designs if d.name == "bitmix"), None) if format_costs is not None else None
    variants = FC.variant_components(format_costs, bm) if bm is not None else {}
    extra = [J.Job(f"format_cost/{label}/{c}", FC.measure,
                   (format_costs, bm.name, label, v["formats"], c, work / "format_cost", cache, timeout),
                   weight=1.0) for label, v in variants.items() for c in v["components"]]
    t0 = time.perf_counter()
    res = run_jobs(jl, cache, scheduler=scheduler, workers=workers, desc="area", progress=progress, extra=extra)
    t_tools = time.perf_counter() - t0

    # 3. figures
    rep_designs = []
    for d in designs:
        comps = {}
        metrics = {}
        for c in d.components:
            a, f = res.get((d.name, c, "asic")), res.get((d.name, c, "ecp5"))
            if c in d.fpga_proxy:
                pc, k = d.fpga_proxy[c]
                f = proxy_ecp5(res.get((d.name, pc, "ecp5")), pc, k)
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
        entry["weight_bits"] = design_weight_bits(entry, entry["format_headline"])
        if (d.name, "@top") in paths:
            p, name = paths[(d.name, "@top")]
            a, f = res.get((d.name, "@top", "asic")), res.get((d.name, "@top", "ecp5"))
            notes = []
            if f is None:
                notes.append("ECP5 not run" if not fpga else "ECP5 not run (whole engines on ECP5: --top-fpga)")
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
        if d is bm:
            full = {c: (res.get((d.name, c, "asic")) or {}).get("ge", {}).get("ge") for c in FC.COMPONENTS}
            ge = {label: {"formats": v["formats"], "same": v["same"],
                          "ge": {c: (res.get(f"format_cost/{label}/{c}") or {}).get("ge", {}).get("ge")
                                 for c in v["components"]}} for label, v in variants.items()}
            entry["format_costs"] = FC.savings(d.per_row, full, ge)

    runs = list(res.values())
    rep = {
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "tools": versions,
        "flow": flow_description(),
        "config": cfg.to_dict() if hasattr(cfg, "to_dict") else cfg,
        "options": {"fpga": fpga, "top": top, "top_fpga": top_fpga, "top_fpga_timeout_s": top_fpga_timeout,
                    "timeout_s": timeout, "freq_mhz": freq_mhz, "scheduler": scheduler_from(scheduler),
                    "workers": workers, "cache": use_cache},
        "designs": rep_designs,
        "anchors": [dict(a) for a in ANCHORS],
        "timings": {"emit_s": round(t_emit, 2), "tools_s": round(t_tools, 2),
                    "runs": len(runs), "cached_runs": sum(1 for r in runs if r.get("cached")),
                    "errors": sum(1 for r in runs if "error" in r)},
    }
    rep["timings"]["total_s"] = round(time.perf_counter() - t_start, 2)
    write_report(out, "area", rep, markdown(rep))
    rep["targets"] = targets(rep)
    rep["plots"] = plots(rep, out)
    rep["timings"]["total_s"] = round(time.perf_counter() - t_start, 2)
    write_report(out, "area", rep, markdown(rep))
    return rep


def proxy_ecp5(f: dict | None, proxy: str, count: float) -> dict | None:
    """ECP5 figures of ``count`` copies of the component whose figures are ``f``: the counts scaled,
    the Fmax kept, ``proxy`` saying so (see :class:`gen.design.Design`)."""
    if f is None or "error" in f:
        return f
    out = {k: (v * count if k in ADDITIVE_FPGA and v is not None else v) for k, v in f.items()}
    out["proxy"] = f"{count:g} x {proxy}"
    out.pop("seconds_synth", None)
    out.pop("seconds_pnr", None)
    return out


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


def parser(ap: argparse.ArgumentParser | None = None, prog: str | None = None) -> argparse.ArgumentParser:
    ap = ap or argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("--config", "-c", help="TOML config (default: the embedded default)")
    ap.add_argument("--out", "-o", default="build/reports", help="report directory (default: build/reports)")
    ap.add_argument("--work", default="build/area", help="Verilog, tool files and cache (default: build/area)")
    ap.add_argument("--designs", help="comma-separated design names (default: all)")
    ap.add_argument("--rows", type=int, default=AREA_ROWS,
                    help=f"rows R sharing the activation front end and the rescale unit in the per-row figures "
                         f"(default {AREA_ROWS}); the whole-engine runs use the config's rows")
    ap.add_argument("--no-fpga", action="store_true", help="skip ECP5 synthesis and place and route")
    ap.add_argument("--no-top", action="store_true", help="skip the whole-engine runs")
    ap.add_argument("--top-fpga", action="store_true",
                    help="also place and route every whole engine on ECP5 (off by default: the per-row figures "
                         "come from the components, and the whole engines were two fifths of a cold run's tool time)")
    ap.add_argument("--top-fpga-timeout", type=float, default=300.0,
                    help="with --top-fpga: seconds per tool for a whole engine on ECP5 before it is skipped (default 300)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per tool run otherwise (default 3600)")
    ap.add_argument("--freq", type=float, default=A.ECP5_FREQ_MHZ, help="nextpnr target frequency, MHz")
    add_job_options(ap)
    ap.add_argument("--no-format-costs", action="store_true",
                    help="skip the table of what each weight format costs (the bitmix row synthesised again "
                         "without each format, kind and code width; GE flow only)")
    ap.add_argument("--no-cache", action="store_true", help="measure everything again")
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return ap


#: Rows per engine in the per-row comparison: an array column shares one activation stream
#: across many output rows (BitMoD's arrays have 32-64 rows per column).
AREA_ROWS = 16


def main(argv=None, prog: str | None = None) -> int:
    return run_args(parser(prog=prog).parse_args(argv))


def run_args(args: argparse.Namespace) -> int:
    """Run with arguments parsed by :func:`parser`."""
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
    row_cfg = dataclasses.replace(cfg, rows=args.rows)
    designs = default_designs(row_cfg)
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
                top_fpga=args.top_fpga, top_fpga_timeout=args.top_fpga_timeout, timeout=args.timeout,
                freq_mhz=args.freq, scheduler=args.scheduler, workers=args.workers,
                use_cache=not args.no_cache, progress=not args.quiet,
                format_costs=None if args.no_format_costs else row_cfg)
    for d in rep["designs"]:
        r, f4 = d["row"], d["format_headline"]
        e = d["efficiency"].get(f4, {}) if f4 else {}
        print(f"{d['name']:24s} GE/row {fmt_value(r['ge']):>9s}  transistors/row {fmt_value(r['transistors']):>9s}  "
              f"depth {fmt_value(r['depth_max']):>4s}  LUT4/row {fmt_value(r['lut4']):>7s}  FF/row {fmt_value(r['ff']):>6s}  "
              f"Fmax {fmt_value(r['fmax_min_mhz'], 1):>6s} MHz  {f4 or '-'}: "
              f"{fmt_value(e.get('macs_per_cycle_per_kge'), 3)} MACs/cycle/kGE")
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
