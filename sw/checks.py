"""Input validation shared by the golden model.

Every public entry point of ``sw`` runs its tensors through these checks so that bad
input fails loudly with the parameter name and the offending position, never with a
silently wrong result.
"""
from __future__ import annotations

import numpy as np
import torch

#: Floating dtypes accepted for weights/activations. float64 is refused on purpose:
#: casting float64 straight to a low-bit grid and casting it through float32 differ
#: (double rounding), so the caller must choose explicitly with ``.float()``.
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _position(flat_index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat_index, shape)) if shape else ()


def as_float_tensor(x, name: str, *, allow_inf: bool = True) -> torch.Tensor:
    """Return ``x`` as a float32 tensor after checking dtype, emptiness and NaN.

    Raises ``TypeError`` for a non-tensor or a dtype outside :data:`FLOAT_DTYPES`
    and ``ValueError`` for an empty tensor or a NaN (with the count and the first
    position). ``±inf`` is kept (callers saturate it) unless ``allow_inf`` is False.
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        hint = " (call .float() first: casting float64 to a low-bit grid directly double-rounds)" \
            if x.dtype == torch.float64 else ""
        raise TypeError(f"{name} must have dtype float16, bfloat16 or float32, got {x.dtype}{hint}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    x = x.detach().to(torch.float32)
    nan = torch.isnan(x)
    if bool(nan.any()):
        flat = nan.reshape(-1)
        first = int(torch.nonzero(flat)[0])
        raise ValueError(
            f"{name} contains {int(flat.sum())} NaN value(s); the first is at index "
            f"{_position(first, tuple(x.shape))}")
    if not allow_inf:
        inf = torch.isinf(x)
        if bool(inf.any()):
            first = int(torch.nonzero(inf.reshape(-1))[0])
            raise ValueError(
                f"{name} contains {int(inf.sum())} infinite value(s); the first is at index "
                f"{_position(first, tuple(x.shape))}")
    return x


def as_code_tensor(codes, name: str, bits: int) -> torch.Tensor:
    """Return integer ``codes`` as an int64 tensor, checking dtype and the code range."""
    if isinstance(codes, np.ndarray):
        codes = torch.from_numpy(codes)
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of integer codes, got {type(codes).__name__}")
    if codes.dtype.is_floating_point or codes.dtype.is_complex or codes.dtype == torch.bool:
        raise TypeError(f"{name} must have an integer dtype (uint8 codes), got {codes.dtype}")
    codes = codes.to(torch.int64)
    if codes.numel():
        bad = (codes < 0) | (codes >= (1 << bits))
        if bool(bad.any()):
            first = int(torch.nonzero(bad.reshape(-1))[0])
            raise ValueError(
                f"{name} holds {int(bad.sum())} value(s) outside the {bits}-bit code range "
                f"0..{(1 << bits) - 1}; the first is {int(codes.reshape(-1)[first])} at index "
                f"{_position(first, tuple(codes.shape))}")
    return codes


def first_position(mask: torch.Tensor) -> tuple[int, ...]:
    """Index tuple of the first True element of ``mask``."""
    return _position(int(torch.nonzero(mask.reshape(-1))[0]), tuple(mask.shape))
