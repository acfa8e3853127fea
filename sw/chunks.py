"""Chunked work on the CPU that keeps its speed when other processes take cores.

The quantizers do many small elementwise torch operations per chunk of a tensor. With torch's
intra-op parallelism every operation is split across all threads and ends at a barrier, so when
another process holds a core, every operation waits for the descheduled thread (measured here:
bitmod4 on a 4096x4096 matrix 0.74 s idle, 2.1 s with one CPU-bound process beside it).
:func:`for_chunks` instead runs whole chunks on a pool of Python threads, each chunk's operations
single-threaded (torch releases the GIL inside operations): a thread that loses its core only delays
its own chunk while the others take the remaining ones, and there is no barrier per operation.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable

import torch

_LOCK = threading.Lock()


def for_chunks(n: int, size: int, fn: Callable[[int, int], None], threads: int | None = None) -> None:
    """Call ``fn(start, stop)`` for the chunks ``[0, size), [size, 2 size), ...`` of ``range(n)``.

    ``fn`` writes its results into preallocated outputs (no return value). Chunks run on ``threads``
    Python threads (default: torch's intra-op thread count) with torch's intra-op threads set to 1
    for the duration (restored after); with one chunk or one thread the loop runs inline.
    """
    if size <= 0:
        raise ValueError(f"size={size} must be positive")
    bounds = [(s, min(s + size, n)) for s in range(0, n, size)]
    threads = torch.get_num_threads() if threads is None else threads
    if len(bounds) <= 1 or threads <= 1:
        for a, b in bounds:
            fn(a, b)
        return
    with _LOCK:                      # one chunked job at a time owns the thread setting
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(max_workers=min(threads, len(bounds))) as pool:
                for f in [pool.submit(fn, a, b) for a, b in bounds]:
                    f.result()
        finally:
            torch.set_num_threads(before)


@contextmanager
def torch_threads(n: int):
    """Run the body with torch's intra-op thread count set to ``n`` (restored after). For loops of
    many small operations (GPTQ's column loop: ~20 operations on one column each): split over two
    threads, each such operation waits at a barrier, 50x slower when another process holds a core."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} must be a positive int")
    with _LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)
