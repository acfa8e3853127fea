"""Synthesis and place-and-route runs as jobs: one :class:`ToolJob` per (component, flow), run on the
project's job engine (:mod:`sw.jobs`: a local Dask cluster by default, or a given scheduler) with a
result cache keyed by the Verilog's hash (:class:`gen.cache.Cache`; workers sharing a file system
share it).

A failed tool run is a result (``{"error": message}``), reported by name by the area and sweep
reports, never dropped; a timed-out one is cached with its limit and rerun only when the limit is
raised. A job whose worker fails outright is retried once by the job engine.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from sw import jobs as J

from . import area as A
from .cache import Cache, cached


@dataclass
class ToolJob:
    key: tuple                  # (design, component, flow)
    flow: str                   # "asic" or "ecp5"
    path: Path
    top: str
    timeout: float | None
    options: dict = field(default_factory=dict)
    weight: float = 1.0         # for longest-first scheduling

    @property
    def name(self) -> str:
        return "/".join(str(k) for k in self.key)

    def run(self) -> dict:
        if self.flow == "asic":
            parts = tuple(self.options.get("parts", A.ASIC_PARTS))
            return A.asic_metrics(self.path, self.top, parts, timeout=self.timeout)
        if self.flow == "ecp5":
            return A.fpga_ecp5(self.path, self.top, freq_mhz=self.options.get("freq_mhz", A.ECP5_FREQ_MHZ),
                               timeout=self.timeout, nodsp=self.options.get("nodsp", True))
        raise ValueError(f"flow={self.flow!r}: choose 'asic' or 'ecp5'")


def add_job_options(ap) -> None:
    """``--scheduler`` and ``--workers``, the same on every verb that runs jobs (:func:`sw.jobs.add_options`)."""
    J.add_options(ap)


def run_tool_job(job: ToolJob, cache: Cache | None) -> dict:
    """One tool run through the cache, with its wall time (a job-engine task: module level, picklable)."""
    t0 = time.perf_counter()
    out = cached(cache, job.path, job.top, job.flow, job.options, job.run, timeout=job.timeout)
    out["wall_seconds"] = round(time.perf_counter() - t0, 2)
    return out


def run_jobs(jobs: list[ToolJob], cache: Cache | None, *, scheduler: str | None = None, workers: int | None = None,
             desc: str = "synthesis", progress: bool = True, extra: list | None = None) -> dict:
    """Run ``jobs`` (longest first) on the job engine; ``{job.key: result}``. A job whose worker failed
    twice gives ``{"error": ...}`` like a failed tool run. ``extra``: other :class:`sw.jobs.Job` to run
    on the same engine at the same time, their results under their names."""
    extra = list(extra or ())
    out = J.run([J.Job(j.name, run_tool_job, (j, cache), weight=j.weight) for j in jobs] + extra,
                scheduler=scheduler, workers=workers, desc=desc, progress=progress)
    return {**{j.key: out[j.name] for j in jobs}, **{e.name: out[e.name] for e in extra}}
