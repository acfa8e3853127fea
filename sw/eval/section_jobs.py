"""Evaluation sections as jobs on the project's job engine (:mod:`sw.jobs`).

``bitmix eval`` runs its sections one after the other in its own process by default. With
``--scheduler local`` (a Dask ``LocalCluster``, one single-threaded worker process per core) or a
scheduler address (an existing Dask cluster whose workers have the project installed and see the
same file system), every section is a job: a worker builds the evaluation context once (model,
text, slices; the float reference is the one the submitting process measured, passed in, so every
section compares against the same figure), runs the section, writes its plots into the shared
report directory and returns the :class:`sw.eval.context.Section`. Sections do not share the
context's memo across workers, so a figure two sections both need is measured twice, once in
each. A section that raises becomes an error section (as in process); a worker that dies is
retried by the job engine, then its section is reported as failed by name.

Heaviest sections are submitted first (:data:`SECTION_WEIGHTS`, their share of the full preset's
run time measured here) so the longest do not start last.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sw import jobs as J

from .context import EvalContext, Section

__all__ = ["ContextSpec", "SECTION_WEIGHTS", "context_for", "run_section_job", "run_sections", "run_report_jobs"]

#: Seconds each section took in the full preset here (README, "Accuracy"): the submission order.
SECTION_WEIGHTS = {"reference": 0.0, "weight_formats": 628.0, "fp6": 188.0, "act_kv": 492.0, "studies": 475.0,
                   "minilm": 73.0, "speed": 49.0, "adaquant_sweep": 1500.0, "adaquant": 1093.0, "gptq": 1000.0, "allocate": 876.0,
                   "qat": 996.0}


@dataclass(frozen=True)
class ContextSpec:
    """What a worker needs to rebuild the submitting process's :class:`EvalContext`."""
    preset: str
    out_dir: str
    seed: int = 0
    cache_dir: str | None = None
    tiny: bool = False
    threads: int | None = None
    reference: dict = field(default_factory=dict, compare=False, hash=False)
    params: dict = field(default_factory=dict, compare=False, hash=False)    # ``--set`` overrides

    @classmethod
    def of(cls, ctx: EvalContext, cache_dir=None, threads: int | None = None) -> "ContextSpec":
        return cls(preset=ctx.preset.name, out_dir=str(ctx.out_dir), seed=ctx.seed,
                   cache_dir=None if cache_dir is None else str(cache_dir), tiny=ctx.tiny, threads=threads,
                   reference=dict(ctx.reference), params={k: dict(v) for k, v in ctx.params.items()})

    def key(self) -> tuple:
        return (self.preset, self.out_dir, self.seed, self.cache_dir, self.tiny)


#: contexts built in this process, by :meth:`ContextSpec.key` (a worker builds each once)
_CONTEXTS: dict[tuple, EvalContext] = {}


def context_for(spec: ContextSpec) -> EvalContext:
    """The context ``spec`` describes, built once per process."""
    k = spec.key()
    if k not in _CONTEXTS:
        if spec.tiny:
            from .context import tiny_context
            ctx = tiny_context(Path(spec.out_dir), spec.seed)
        else:
            from .context import build_context
            ctx = build_context(spec.preset, spec.out_dir, spec.seed, progress=False, cache_dir=spec.cache_dir,
                                reference=spec.reference or None)
        ctx.progress = False
        _CONTEXTS[k] = ctx
    _CONTEXTS[k].params = {s: dict(v) for s, v in spec.params.items()}
    return _CONTEXTS[k]


def run_section_job(spec: ContextSpec, key: str) -> Section:
    """One section in this process (a job-engine task: module level, picklable)."""
    import torch

    from .report import run_section
    if spec.threads:
        torch.set_num_threads(spec.threads)
    return run_section(context_for(spec), key)


def run_sections(ctx: EvalContext, keys: list[str], *, scheduler: str | None, workers: int | None = None,
                 cache_dir=None, threads: int | None = None, progress: bool = True) -> list[Section]:
    """``keys`` as jobs on ``scheduler`` (see the module docstring); the sections in ``keys``' order.
    ``threads``: torch threads per worker (default: the machine's cores over the local workers, at least 1)."""
    import os
    if threads is None and J.scheduler_from(scheduler) != "serial":
        n = workers or os.cpu_count() or 1
        threads = max(1, (os.cpu_count() or 1) // max(1, min(n, len(keys))))
    spec = ContextSpec.of(ctx, cache_dir, threads)
    _CONTEXTS.setdefault(spec.key(), ctx)        # in this process (serial runs) the caller's context serves
    jobs = [J.Job(k, run_section_job, (spec, k), weight=SECTION_WEIGHTS.get(k, 0.0)) for k in keys]
    out = J.run(jobs, scheduler=scheduler, workers=workers, desc="eval", progress=progress)
    sections = []
    for k in keys:
        s = out[k]
        if isinstance(s, dict):             # the job itself failed twice (e.g. its worker died)
            s = Section(k, k, f"**Error (job failed)**: {s.get('error')}", [], [], {"error": s.get("error")}, 0.0)
        sections.append(s)
    return sections


def run_report_jobs(ctx: EvalContext, keys: list[str] | None = None, setup_seconds: float = 0.0, *,
                    scheduler: str | None, workers: int | None = None, cache_dir=None,
                    threads: int | None = None) -> tuple[dict, bool]:
    """:func:`sw.eval.report.run_report` with the sections as jobs on ``scheduler``; the report is written
    once they are all back. Returns (json doc, all ok)."""
    import time

    from .report import parse_sections, write_report
    t0 = time.perf_counter()
    sections = run_sections(ctx, parse_sections(keys), scheduler=scheduler, workers=workers, cache_dir=cache_dir,
                            threads=threads, progress=ctx.progress)
    doc = write_report(ctx, sections, time.perf_counter() - t0 + setup_seconds, setup_seconds)
    return doc, not doc["errors"]
