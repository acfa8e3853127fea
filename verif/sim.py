"""``bitmix sim`` (``make sim``): the engine testbenches on Icarus and Verilator.

Runs, per simulator, the whole engine under cocotb against ``sw.datapath`` (bit for bit):

* ``gemv``: every configured format (scale formats rotating), K >= 1024, more outputs
  than rows (not a multiple of R), random stalls on every stream, random and corner-case
  data, and a reset in the middle of a first GEMV;
* ``int8``: the same with an INT8-activation build of the engine;
* ``throughput``: K = 4096 GEMVs with no stalls: cycles against the ideal
  ``outputs/R x K/L x terms``.

The six runs (three per simulator) are independent jobs on :mod:`sw.jobs` (a local Dask cluster by
default, ``--scheduler`` for another).

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


PARTS = ("gemv", "int8", "throughput")


def run_part(cfg: EngineConfig, sim: str, root: Path, part: str, quick: bool = False, waves: bool = True) -> list:
    """One run of :data:`PARTS` on one simulator (the vectors are built here, on the worker)."""
    R = cfg.rows
    if part == "gemv":
        return run_engine(cfg, gemv_cases(cfg, 1024 if quick else 2048, 2 * R + 1), sim, root / f"engine_{sim}",
                          p_valid=0.7, p_ready=0.6, reset_case=True, waves=waves and sim == "icarus")
    if part == "int8":
        int8 = dataclasses.replace(cfg, act_mode="int8", act_bits=max(8, min(cfg.act_bits, 16)),
                                   name=cfg.name + "_int8")
        return run_engine(int8, gemv_cases(int8, 1024, 2 * R + 1, seed=100, kinds=("random",)), sim,
                          root / f"engine_int8_{sim}", p_valid=0.8, p_ready=0.8, waves=False)
    if part == "throughput":
        return run_engine(cfg, gemv_cases(cfg, 4096, 4 * R, kinds=("random",)), sim,
                          root / f"engine_tp_{sim}", waves=False)
    raise ValueError(f"part={part!r}: choose from {', '.join(PARTS)}")


def suite_jobs(cfg: EngineConfig, sim: str, root: Path, quick: bool = False, waves: bool = True) -> list:
    """The runs of one simulator as independent :class:`sw.jobs.Job` (named ``<sim>/<part>``)."""
    from sw.jobs import Job
    weight = {"gemv": 3.0, "int8": 1.0, "throughput": 2.0}
    return [Job(f"{sim}/{p}", run_part, (cfg, sim, root, p), dict(quick=quick, waves=waves), weight=weight[p])
            for p in PARTS]


def suite(cfg: EngineConfig, sims, root: Path, quick: bool = False, waves: bool = True,
          scheduler: str | None = None, workers: int | None = None) -> dict:
    """Every run of every simulator in ``sims`` on :mod:`sw.jobs` (a local Dask cluster by default);
    ``{sim: {"gemv": [...], "int8": [...], "throughput": [...], "seconds": ..., "failed": [...]}}``."""
    from sw.jobs import run
    jobs = [j for sim in sims for j in suite_jobs(cfg, sim, root, quick=quick, waves=waves)]
    t0 = time.perf_counter()
    done = run(jobs, scheduler=scheduler, workers=workers, desc="sim")
    seconds = time.perf_counter() - t0
    out: dict = {}
    for sim in sims:
        res: dict = {"seconds": seconds, "failed": []}
        for name in PARTS:
            r = done[f"{sim}/{name}"]
            if isinstance(r, dict) and "error" in r:
                res["failed"].append(f"{sim}/{name}: {r['error']}")
                r = []
            res[name] = r
        for r in res["throughput"]:
            r["efficiency"] = r["ideal"] / r["cycles"]
        out[sim] = res
    return out


def markdown(cfg: EngineConfig, results: dict) -> str:
    lines = [f"Engine '{cfg.name}': {cfg.rows} rows x {cfg.lanes} lanes, G={cfg.group_size}.", ""]
    for sim, res in results.items():
        lines += [f"### {sim}", "",
                  "| run | case | cycles | ideal | mismatches | res beats monitored | protocol violations |",
                  "|---|---|---|---|---|---|---|"]
        for run in ("gemv", "int8", "throughput"):
            for r in res[run]:
                eff = f" ({r['ideal'] / r['cycles']:.1%})" if run == "throughput" else ""
                lines.append(f"| {run} | {r['name']} | {r['cycles']}{eff} | {r['ideal']} | {r['mismatches']} "
                             f"| {r['beats']} | {r['violations']} |")
        lines.append("")
        lines += [f"**FAILED** {f}" for f in res.get("failed", [])]
        if res["throughput"]:
            lines += throughput_table(res["throughput"])
    return "\n".join(lines)


def throughput_table(rows: list[dict]) -> list[str]:
    """Per format, K = 4096 with no stalls: measured cycles against the cycle model (``sw.cycles``,
    exact) and the ideal (the PEs busy every cycle), and the weight stream's bits per weight."""
    from sw import terms as T
    from sw.weight_stream import stream_bits_per_weight
    out = ["", "Throughput, K = 4096, every stream always valid/ready (`sw.cycles` is the model; ideal = "
           "the PEs busy every cycle; target: at least 98% of ideal for every format):", "",
           "| format | terms | cycles | model | = model | ideal | % of ideal | weight-stream bits/weight |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fmt = r["name"].split("/")[0]
        out.append(f"| {fmt} | {T.terms(fmt)} | {r['cycles']} | {r.get('model')} | "
                   f"{'yes' if r['cycles'] == r.get('model') else 'NO'} | {r['ideal']} | "
                   f"{r['ideal'] / r['cycles']:.2%} | {stream_bits_per_weight(fmt)} |")
    out.append("")
    return out


def main(argv=None, prog: str = "bitmix sim") -> int:
    from sw.jobs import SCHEDULER_ENV
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    ap.add_argument("--config", "-c", help="TOML config (default: the embedded default)")
    ap.add_argument("--sim", nargs="+", default=["icarus", "verilator"], choices=["icarus", "verilator"])
    ap.add_argument("--quick", action="store_true", help="K=1024 instead of 2048 for the stall runs")
    ap.add_argument("--no-waves", action="store_true")
    ap.add_argument("--scheduler", help=f"'local' (default: a Dask LocalCluster), 'serial', or a Dask scheduler "
                                        f"address; default from ${SCHEDULER_ENV}")
    ap.add_argument("--workers", "-j", type=int, help="local cluster workers (default: the machine's cores)")
    args = ap.parse_args(argv)
    cfg = load(args.config)
    root = ROOT / "build" / "sim"
    print(f"[{', '.join(args.sim)}] engine testbenches ...", flush=True)
    t0 = time.perf_counter()
    results = suite(cfg, args.sim, root, quick=args.quick, waves=not args.no_waves, scheduler=args.scheduler,
                    workers=args.workers)
    bad = sum(r["mismatches"] for res in results.values() for run in ("gemv", "int8", "throughput") for r in res[run])
    failed = [f for res in results.values() for f in res["failed"]]
    print(f"done in {time.perf_counter() - t0:.0f} s, {bad} mismatches, {len(failed)} failed runs", flush=True)
    md = markdown(cfg, results)
    _, mdp = write_report(ROOT / "build" / "reports", "sim", {"config": cfg.to_dict(), "results": results,
                                                              "seconds": time.perf_counter() - t0}, md)
    print(md)
    print(f"waveforms: {root}/engine_<sim>/bitmix_engine.fst; report: {mdp}")
    return 1 if bad or failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
