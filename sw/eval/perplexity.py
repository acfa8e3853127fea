"""Token perplexity with the GPTQ / BitMoD protocol.

Non-overlapping windows of ``window`` tokens (stride = window, the incomplete tail is dropped),
``labels = inputs`` so each window scores its ``window - 1`` next-token predictions, no KV cache,
PPL = exp(mean token NLL over all scored tokens). Every result carries the protocol fields.
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn


def check_ids(ids, name: str = "ids") -> torch.Tensor:
    """``ids`` must be an integer tensor of shape [1, N]."""
    if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name} must be an integer torch.Tensor of shape [1, N], got "
                        f"{getattr(ids, 'dtype', type(ids).__name__)}")
    if ids.dim() != 2 or ids.shape[0] != 1:
        raise ValueError(f"{name} must have shape [1, N], got {tuple(ids.shape)}")
    return ids.long()


def window_count(n_tokens: int, window: int, max_windows: int | None = None) -> int:
    """Number of full non-overlapping windows used for ``n_tokens`` tokens."""
    n = n_tokens // window
    return n if max_windows is None else min(n, max_windows)


@torch.no_grad()
def perplexity(model: nn.Module, ids: torch.Tensor, window: int = 2048, max_windows: int | None = None,
               progress: bool = True) -> dict:
    """Perplexity of ``model`` on ``ids`` ([1, N]); see the module docstring for the protocol.

    Returns ``{"ppl", "nll" (mean per scored token), "tokens" (scored tokens = windows*(window-1)),
    "windows", "window", "stride", "seconds"}``.
    """
    from tqdm.auto import tqdm
    ids = check_ids(ids)
    if isinstance(window, bool) or not isinstance(window, int) or window < 2:
        raise ValueError(f"window={window!r} must be an int >= 2")
    if max_windows is not None and (not isinstance(max_windows, int) or max_windows < 1):
        raise ValueError(f"max_windows={max_windows!r} must be a positive int or None")
    n = window_count(ids.shape[1], window, max_windows)
    if n == 0:
        raise ValueError(f"ids has {ids.shape[1]} tokens, fewer than one window of window={window}")
    t0 = time.perf_counter()
    total = 0.0
    for i in tqdm(range(n), desc="perplexity", disable=not progress, leave=False):
        chunk = ids[:, i * window:(i + 1) * window]
        logits = model(input_ids=chunk, use_cache=False).logits
        total += float(F.cross_entropy(logits[0, :-1].float(), chunk[0, 1:], reduction="sum"))
    tokens = n * (window - 1)
    nll = total / tokens
    return {"ppl": math.exp(nll), "nll": nll, "tokens": tokens, "windows": n, "window": window,
            "stride": window, "seconds": time.perf_counter() - t0}
