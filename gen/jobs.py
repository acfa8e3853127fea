"""Synthesis and place-and-route runs as jobs: one :class:`Job` per (component, flow), run with a
result cache keyed by the Verilog's hash (:class:`gen.cache.Cache`) and a progress bar.

A failed job is a result (``{"error": message}``), reported by name by the area and sweep reports,
never dropped; a timed-out one is cached with its limit and rerun only when the limit is raised.
"""
from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from . import area as A
from .cache import Cache, cached


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


def run_jobs(jobs: list[Job], cache: Cache | None, workers: int = 2, desc: str = "synthesis",
             progress: bool = True) -> dict:
    """Run ``jobs`` (at most ``workers`` tool processes at once, longest first) with a tqdm bar.
    Returns ``{job.key: result}``; a failed job gives ``{"error": message}`` (``"timeout": True``
    when it ran out of time; such a result is cached as well and reused while the limit is not raised)."""
    from tqdm import tqdm

    def one(job: Job) -> dict:
        t0 = time.perf_counter()
        out = cached(cache, job.path, job.top, job.flow, job.options, job.run, timeout=job.timeout)
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
