"""``make bench``: throughput of the golden-model quantizers (measured, never asserted).

Quantizes one 4096x4096 fp16 matrix (seeded normal values) to each configuration,
``--repeat`` times after one warm-up, and reports the best and median wall time and the
throughput in weights per second, with the machine and tool versions. Writes
``build/reports/bench_sw.json`` and ``build/reports/bench_sw.md``.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
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


def run(rows: int = 4096, cols: int = 4096, repeat: int = 5, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g).to(torch.float16)
    results = []
    for label, fmt, gs in CONFIGS:
        kwargs = {} if fmt.startswith(("mx", "nv")) else {"group_size": gs}
        quantize(w, fmt, **kwargs)  # warm-up
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            q = quantize(w, fmt, **kwargs)
            times.append(time.perf_counter() - t0)
        best, med = min(times), statistics.median(times)
        results.append({"config": label, "format": fmt, "group_size": q.group_size,
                        "bits_per_weight": q.bits_per_weight, "best_s": best, "median_s": med,
                        "mweights_per_s": w.numel() / best / 1e6})
    return {"matrix": [rows, cols], "dtype": "float16", "repeat": repeat, "machine": machine(),
            "results": results}


def markdown(rep: dict) -> str:
    m = rep["machine"]
    lines = [f"Quantizing a {rep['matrix'][0]}x{rep['matrix'][1]} {rep['dtype']} matrix, best of "
             f"{rep['repeat']} after a warm-up. Machine: {m['cpu']}, {m['cores']} cores, "
             f"torch {m['torch']} ({m['torch_threads']} threads), Python {m['python']}.", "",
             "| config | bits/weight | best (s) | median (s) | Mweights/s |", "|---|---|---|---|---|"]
    for r in rep["results"]:
        lines.append(f"| {r['config']} | {r['bits_per_weight']:.4f} | {r['best_s']:.3f} | {r['median_s']:.3f} "
                     f"| {r['mweights_per_s']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None, prog: str = "bitmix bench") -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default="build/reports")
    args = ap.parse_args(argv)
    rep = run(repeat=args.repeat)
    md = markdown(rep)
    js, mdp = write_report(args.out, "bench_sw", rep, md)
    print(md)
    print(f"written: {js}, {mdp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
