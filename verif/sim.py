"""``bitmix sim`` (``make sim``): the engine testbenches on Icarus and Verilator.

Runs, per simulator, the whole engine under cocotb against ``sw.datapath`` (bit for bit):

* ``gemv``: every configured format (scale formats rotating), K >= 1024, more outputs
  than rows (not a multiple of R), random stalls on every stream, random and corner-case
  data, and a reset in the middle of a first GEMV;
* ``int8``: the same with an INT8-activation build of the engine;
* ``throughput``: K = 4096 GEMVs with no stalls: cycles against the ideal
  ``outputs/R x K/L x terms``.

Waveforms (Icarus, FST: ``build/sim/engine_icarus/bitmix_engine.fst``) and logs stay under
``build/sim/``; the figures go to ``build/reports/sim.json``
and ``sim.md``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from gen.config import EngineConfig, load
from gen.elaborate import to_verilog
from sw.report_files import write_report

from .engine_vectors import case
from .runner import run_cocotb

ROOT = Path(__file__).resolve().parent.parent


def engine_verilog(cfg: EngineConfig, sim: str | None = None) -> str:
    """The engine's Verilog, the same text for every simulator (``sim`` is accepted and unused)."""
    from rtl.engine import Engine
    return to_verilog(Engine(cfg), "bitmix_engine")


def gemv_cases(cfg: EngineConfig, K: int, O: int, seed: int = 0, formats=None, kinds=("random", "corners")):
    out = []
    for i, fmt in enumerate(formats or cfg.formats):
        sf = cfg.scale_formats[i % len(cfg.scale_formats)]
        for j, kind in enumerate(kinds):
            out.append(case(cfg, fmt, sf, O, K, seed=seed + 10 * i + j, kind=kind))
    return out


def run_engine(cfg: EngineConfig, cases: list, sim: str, build_dir: Path, *, p_valid=1.0, p_ready=1.0,
               reset_case=False, waves=False, seed=1, verilog_text: str | None = None,
               power_up_seed: int | None = None) -> list[dict]:
    """Run the engine testbench; per case: cycles, ideal, mismatches, monitored ``res`` beats and
    protocol violations. ``power_up_seed`` (Verilator): random power-up state, see verif/runner.py."""
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    report_path = build_dir / "report.json"
    vec = {"cases": cases, "p_valid": p_valid, "p_ready": p_ready, "seed": seed, "rows": cfg.rows,
           "reset_case": reset_case}
    run_cocotb(verilog_text or engine_verilog(cfg, sim), "bitmix_engine", "test_engine", sim=sim,
               build_dir=build_dir, vectors=vec, waves=waves, extra_env={"BITMIX_REPORT": str(report_path)},
               power_up_seed=power_up_seed)
    return json.loads(report_path.read_text())


def suite(cfg: EngineConfig, sim: str, root: Path, quick: bool = False, waves: bool = True) -> dict:
    R = cfg.rows
    K = 1024 if quick else 2048
    res = {}
    t0 = time.perf_counter()
    res["gemv"] = run_engine(cfg, gemv_cases(cfg, K, 2 * R + 1), sim, root / f"engine_{sim}", p_valid=0.7,
                             p_ready=0.6, reset_case=True,
                             waves=waves and sim == "icarus")
    int8 = dataclasses.replace(cfg, act_mode="int8", act_bits=max(8, min(cfg.act_bits, 16)), name=cfg.name + "_int8")
    res["int8"] = run_engine(int8, gemv_cases(int8, 1024, 2 * R + 1, seed=100, kinds=("random",)), sim,
                             root / f"engine_int8_{sim}", p_valid=0.8, p_ready=0.8, waves=False)
    tp_formats = ([f for f in ("int4", "bitmod4", "fp6_e3m2", "fp6_e2m3", "int8", "fp3") if f in cfg.formats]
                  or list(cfg.formats[:1]))
    res["throughput"] = run_engine(cfg, gemv_cases(cfg, 4096, 4 * R, formats=tp_formats, kinds=("random",)),
                                   sim, root / f"engine_tp_{sim}", waves=False)
    for r in res["throughput"]:
        r["efficiency"] = r["ideal"] / r["cycles"]
    res["seconds"] = time.perf_counter() - t0
    return res


def markdown(cfg: EngineConfig, results: dict) -> str:
    lines = [f"Engine '{cfg.name}': {cfg.rows} rows x {cfg.lanes} lanes, G={cfg.group_size}.", ""]
    for sim, res in results.items():
        lines += [f"### {sim} ({res['seconds']:.0f} s)", "",
                  "| run | case | cycles | ideal | mismatches | res beats monitored | protocol violations |",
                  "|---|---|---|---|---|---|---|"]
        for run in ("gemv", "int8", "throughput"):
            for r in res[run]:
                eff = f" ({r['ideal'] / r['cycles']:.1%})" if run == "throughput" else ""
                lines.append(f"| {run} | {r['name']} | {r['cycles']}{eff} | {r['ideal']} | {r['mismatches']} "
                             f"| {r['beats']} | {r['violations']} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None, prog: str = "bitmix sim") -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    ap.add_argument("--config", "-c", help="TOML config (default: the embedded default)")
    ap.add_argument("--sim", nargs="+", default=["icarus", "verilator"], choices=["icarus", "verilator"])
    ap.add_argument("--quick", action="store_true", help="K=1024 instead of 2048 for the stall runs")
    ap.add_argument("--no-waves", action="store_true")
    args = ap.parse_args(argv)
    cfg = load(args.config)
    root = ROOT / "build" / "sim"
    results = {}
    for sim in args.sim:
        print(f"[{sim}] engine testbenches ...", flush=True)
        results[sim] = suite(cfg, sim, root, quick=args.quick, waves=not args.no_waves)
        bad = sum(r["mismatches"] for run in ("gemv", "int8", "throughput") for r in results[sim][run])
        print(f"[{sim}] done in {results[sim]['seconds']:.0f} s, {bad} mismatches", flush=True)
    md = markdown(cfg, results)
    _, mdp = write_report(ROOT / "build" / "reports", "sim", {"config": cfg.to_dict(), "results": results}, md)
    print(md)
    print(f"waveforms: {root}/engine_<sim>/bitmix_engine.fst; report: {mdp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
