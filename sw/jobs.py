"""Independent jobs on Dask: the one job engine of every report (area, sweep, simulation).

:func:`run` takes named jobs (a module-level function and its arguments, so they pickle) and runs
them on

* ``"local"`` (the default): a ``distributed.LocalCluster`` of one single-threaded worker process
  per core (at most one per job), started and stopped here: nothing to set up;
* ``"serial"``: in this process, one after the other, in order (no Dask; for debugging and for the
  test that holds a cluster run equal to a serial one);
* an address (``tcp://host:8786``): an existing Dask cluster (``dask scheduler`` + ``dask worker``,
  or ``dask-jobqueue``'s ``SLURMCluster``) whose workers have the project installed and, for the
  result caches to be shared, the same file system.

The scheduler comes from the ``scheduler`` argument, else the ``BITMIX_SCHEDULER`` environment
variable, else ``"local"``. A job that raises is retried once; a job whose worker dies is rerun
on another worker as Dask's ``distributed.scheduler.allowed-failures`` allows (3 by default: a
death also counts against the jobs that were queued on that worker), then ``KilledWorker``. If it fails
again its result is ``{"error": "<type>: <message>"}`` under its name, never dropped: callers
report failures by name. Results come back as ``{name: result}`` in the jobs' order, whatever order
they finished in, so a report is the same whoever ran it. A tqdm bar shows progress on stderr.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

#: Environment variable naming the default scheduler (``serial``, ``local`` or an address).
SCHEDULER_ENV = "BITMIX_SCHEDULER"


@dataclass(frozen=True)
class Job:
    """One unit of work: ``fn(*args, **kwargs)`` under a unique ``name``; ``weight`` orders submission
    (heaviest first, so long jobs do not start last)."""
    name: str
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    weight: float = 1.0


def scheduler_from(scheduler: str | None) -> str:
    """The scheduler to use: the argument, else ``$BITMIX_SCHEDULER``, else ``"local"``."""
    s = scheduler or os.environ.get(SCHEDULER_ENV) or "local"
    if s not in ("serial", "local") and "://" not in s:
        raise ValueError(f"scheduler={s!r}: use 'serial', 'local' or a Dask scheduler address such as "
                         f"'tcp://host:8786'")
    return s


def add_options(ap) -> None:
    """``--scheduler`` and ``--workers`` on an ``argparse`` parser: the same on every verb that runs jobs."""
    ap.add_argument("--scheduler", default=None, metavar="ADDRESS",
                    help=f"where the jobs run: 'local' (a Dask LocalCluster, one worker per core; the default), "
                         f"'serial' (in this process), or a Dask scheduler address such as tcp://host:8786 "
                         f"(default: ${SCHEDULER_ENV}, else local)")
    ap.add_argument("--workers", "--jobs", "-j", type=int, default=None, dest="workers",
                    help="worker processes of the local cluster (default: one per core)")


def _call(job: Job):
    return job.fn(*job.args, **job.kwargs)


def _failed(e: BaseException) -> dict:
    return {"error": f"{type(e).__name__}: {e}"}


def run(jobs: list[Job], *, scheduler: str | None = None, workers: int | None = None, desc: str = "jobs",
        progress: bool = True, retries: int = 1) -> dict[str, Any]:
    """Run ``jobs``; return ``{job.name: result}`` in the order of ``jobs`` (see the module docstring).

    ``workers`` caps the local cluster's worker processes (default: the machine's cores).
    """
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"job names must be unique; repeated: {', '.join(dup)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers={workers!r} must be a positive integer")
    sched = scheduler_from(scheduler)
    if not jobs:
        return {}
    from tqdm import tqdm
    bar = tqdm(total=len(jobs), desc=desc, unit="job", disable=not progress, file=sys.stderr)
    order = sorted(jobs, key=lambda j: -j.weight)
    results: dict[str, Any] = {}
    try:
        if sched == "serial":
            for j in order:
                for _ in range(retries + 1):
                    try:
                        results[j.name] = _call(j)
                        break
                    except Exception as e:      # retried, then reported by name
                        results[j.name] = _failed(e)
                bar.set_postfix_str(j.name, refresh=False)
                bar.update(1)
        else:
            _run_dask(order, sched, workers, retries, results, bar)
    finally:
        bar.close()
    return {n: results[n] for n in names}


def _run_dask(order: list[Job], sched: str, workers: int | None, retries: int, results: dict, bar) -> None:
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if sched == "local":
        n = max(1, min(workers or os.cpu_count() or 1, len(order)))
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
        client = Client(cluster)
    else:
        client = Client(sched)
    try:
        futures = {client.submit(_call, j, key=f"{j.name}-{time.time_ns()}", pure=False, retries=retries): j
                   for j in order}
        for fut in as_completed(futures):
            j = futures[fut]
            try:
                results[j.name] = fut.result()
            except Exception as e:              # failed twice (or its worker died twice)
                results[j.name] = _failed(e)
            bar.set_postfix_str(j.name, refresh=False)
            bar.update(1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
