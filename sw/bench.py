"""``make bench``: throughput of the golden-model quantizers (measured, never asserted).

Quantizes one 4096x4096 fp16 matrix (seeded normal values) to each configuration,
``--repeat`` times after one warm-up, and reports the best and median wall time and the
throughput in weights per second, with the machine and tool versions; then the same again with
one competing CPU-bound process (a busy loop on one core, started and stopped by the bench) and
the slowdown ratio (median under load / median idle). Targets: bitmod4 at most 1.0 s idle and at
most 2x that under the competing process. Writes ``build/reports/bench_sw.json`` and
``build/reports/bench_sw.md``.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from . import quantize
from .report_files import write_report

CONFIGS = [
    ("bitmod4 g128", "bitmod4", 128),
    ("int4 g128", "int4", 128),
    ("fp6_e3m2 per-channel", "fp6_e3m2", None),
    ("mxfp4 (block 32)", "mxfp4", 32),
    ("nvfp4 (block 16)", "nvfp4", 16),
    ("bitmod3 g128", "bitmod3", 128),
    ("int4_asym g128", "int4_asym", 128),
]


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}


def _time(w, fmt, kwargs, repeat):
    quantize(w, fmt, **kwargs)  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        q = quantize(w, fmt, **kwargs)
        times.append(time.perf_counter() - t0)
    return q, times


class CompetingLoad:
    """A CPU-bound busy loop in a separate process (one core) for the duration of a ``with`` block."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def run(rows: int = 4096, cols: int = 4096, repeat: int = 5, seed: int = 0, load: bool = True) -> dict:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g).to(torch.float16)
    results = []
    for label, fmt, gs in CONFIGS:
        kwargs = {} if fmt.startswith(("mx", "nv")) else {"group_size": gs}
        q, times = _time(w, fmt, kwargs, repeat)
        best, med = min(times), statistics.median(times)
        r = {"config": label, "format": fmt, "group_size": q.group_size, "bits_per_weight": q.bits_per_weight,
             "best_s": best, "median_s": med, "mweights_per_s": w.numel() / best / 1e6}
        if load:
            with CompetingLoad():
                _, lt = _time(w, fmt, kwargs, repeat)
            r.update(loaded_best_s=min(lt), loaded_median_s=statistics.median(lt),
                     slowdown=statistics.median(lt) / med)
        results.append(r)
    return {"matrix": [rows, cols], "dtype": "float16", "repeat": repeat, "machine": machine(),
            "load_average_before": os.getloadavg()[0], "results": results}


def targets(rep: dict) -> list[dict]:
    """bitmod4: at most 1.0 s idle (median), at most 2x that with one competing process."""
    r = next((r for r in rep["results"] if r["format"] == "bitmod4"), None)
    if r is None:
        return []
    out = [{"target": "bitmod4 idle <= 1.0 s", "value": r["median_s"], "met": r["median_s"] <= 1.0}]
    if "slowdown" in r:
        out.append({"target": "bitmod4 under one competing process <= 2x idle", "value": r["slowdown"],
                    "met": r["slowdown"] <= 2.0})
    return out


def markdown(rep: dict) -> str:
    m = rep["machine"]
    loaded = any("slowdown" in r for r in rep["results"])
    lines = [f"Quantizing a {rep['matrix'][0]}x{rep['matrix'][1]} {rep['dtype']} matrix, best and median of "
             f"{rep['repeat']} after a warm-up, idle" + (" and with one competing CPU-bound process" if loaded else "")
             + f". Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
             f"Python {m['python']}; load average before the run {rep.get('load_average_before', 0):.2f}.", ""]
    head = "| config | bits/weight | best (s) | median (s) | Mweights/s |"
    rule = "|---|---|---|---|---|"
    if loaded:
        head += " loaded median (s) | slowdown |"
        rule += "---|---|"
    lines += [head, rule]
    for r in rep["results"]:
        row = (f"| {r['config']} | {r['bits_per_weight']:.4f} | {r['best_s']:.3f} | {r['median_s']:.3f} "
               f"| {r['mweights_per_s']:.1f} |")
        if "slowdown" in r:
            row += f" {r['loaded_median_s']:.3f} | {r['slowdown']:.2f}x |"
        lines.append(row)
    t = targets(rep)
    if t:
        lines += ["", "| target | measured | met |", "|---|---|---|"]
        lines += [f"| {x['target']} | {x['value']:.2f} | {'yes' if x['met'] else 'NO'} |" for x in t]
    return "\n".join(lines) + "\n"


def main(argv=None, prog: str = "bitmix bench") -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default="build/reports")
    ap.add_argument("--no-load", action="store_true", help="skip the runs with a competing process")
    args = ap.parse_args(argv)
    rep = run(repeat=args.repeat, load=not args.no_load)
    md = markdown(rep)
    js, mdp = write_report(args.out, "bench_sw", rep, md)
    print(md)
    print(f"written: {js}, {mdp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
