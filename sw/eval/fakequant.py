"""Fake quantization with a straight-through estimator, through the project's format registry.

``fake_quant(x, fmt, ...)``'s forward is exactly ``sw.quantize(x.detach(), fmt, ...).dequantize()``
(bit-equal, cast back to ``x.dtype``); its backward passes the incoming gradient unchanged (identity
STE, no clipping mask). Works for every element format (``sw.formats.names()`` and any
``fpN_eXmY``) and every group format (``sw.group_formats.names()``).

Two conveniences beyond ``sw.quantize`` (documented, used by the evaluation):

* fixed-block formats (MX: 32, NVFP4: 16) take their own block; ``group_size`` must then be that
  block or the default 128 (meaning "the format's own block");
* when ``group_size`` does not divide the axis length (SmolLM2's hidden size 576 = 4.5 x 128), the
  axis is zero-padded to a multiple of the group, quantized, and cut back: the last group is a
  partial group (GPTQ's convention). Zero padding does not change any group's absmax, zero point or
  BitMoD variant choice, so this equals quantizing the partial group on its own.
"""
from __future__ import annotations

import math

import torch

import sw
from sw import formats as F
from sw import group_formats as GF
from sw.formats import AsymmetricInt
from sw.quantize import DEFAULT_GROUP_SIZE, check_format, format_spec
from sw.scaling import absmax_values

__all__ = ["check_format", "fixed_block", "resolve_group", "quantize_dequant", "dequant_values", "fake_quant",
           "relative_mse", "sqnr_db"]


def fixed_block(fmt: str) -> int | None:
    """The block size a group format fixes (MX 32, NVFP4 16, from the registry), or None."""
    return format_spec(fmt).block


def resolve_group(fmt: str, group_size: int | None, k: int) -> tuple[int, int | None]:
    """``(g, group_size argument for sw.quantize)`` for a layer of ``k`` inputs.

    Fixed-block formats take their own block (``group_size`` must be that block or the default 128);
    ``None`` means one group over all ``k`` inputs.
    """
    block = fixed_block(fmt)
    if block is not None:
        if group_size not in (block, 128):
            raise ValueError(f"group_size={group_size!r} is not allowed for {fmt}: its block size is fixed at {block}")
        return block, DEFAULT_GROUP_SIZE
    if group_size is not None and (isinstance(group_size, bool) or not isinstance(group_size, int)
                                   or group_size <= 0):
        raise ValueError(f"group_size={group_size!r} must be a positive int or None")
    return (k if group_size is None else group_size), group_size


def quantize_dequant(x: torch.Tensor, fmt: str, group_size: int | None = 128, *, axis: int = -1,
                     scale_format: str | None = None) -> tuple[torch.Tensor, float]:
    """``sw.quantize(x, ...).dequantize()`` in ``x.dtype`` plus storage bits per element (metadata
    included, counted over the real, unpadded elements). No autograd graph."""
    x = x.detach()
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension (got a 0-d tensor)")
    ax = axis % x.dim()
    k = x.shape[ax]
    g, gs_arg = resolve_group(fmt, group_size, k)
    pad = (-k) % g
    xp = x
    if pad:
        shape = list(x.shape)
        shape[ax] = pad
        xp = torch.cat([x, x.new_zeros(shape)], dim=ax)
    q = sw.quantize(xp, fmt, gs_arg, scale_format=scale_format, axis=ax)
    d = q.dequantize()
    if pad:
        d = d.narrow(ax, 0, k)
    bpw = q.bits_per_weight
    if pad:   # element bits over real elements + metadata of all groups spread over the real elements
        el_bits = q.element.bits
        bpw = el_bits + (bpw - el_bits) * xp.numel() / x.numel()
    return d.to(x.dtype), bpw


def dequant_values(x: torch.Tensor, fmt: str, group_size: int | None = 128, *, axis: int = -1,
                   scale_format: str | None = None) -> torch.Tensor:
    """``quantize_dequant(...)[0]`` (the values only): symmetric element formats on finite input take
    :func:`sw.scaling.absmax_values` (no codes built or checked; about 4x faster on activations), every
    other case :func:`quantize_dequant`. Bit-equal either way (held by the tests)."""
    if (isinstance(fmt, str) and isinstance(x, torch.Tensor) and x.dim()
            and x.dtype in (torch.float32, torch.float16, torch.bfloat16) and GF.find(fmt) is None):
        try:
            el = F.get(fmt)
        except ValueError:
            el = None
        ax = axis % x.dim()
        k = x.shape[ax]
        if el is not None and el.kind != "scale" and not isinstance(el, AsymmetricInt) and (
                group_size is None or (isinstance(group_size, int) and not isinstance(group_size, bool)
                                       and group_size > 0 and k % group_size == 0)):
            v = absmax_values(x.detach().to(torch.float32), el, k if group_size is None else group_size, ax,
                              scale_format or "fp16", "nearest_even")
            if v is not None:
                return v.to(x.dtype)
    return quantize_dequant(x, fmt, group_size, axis=axis, scale_format=scale_format)[0]


class _FakeQuant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, fmt, group_size, axis, scale_format):
        return dequant_values(x, fmt, group_size, axis=axis, scale_format=scale_format)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None, None, None


def fake_quant(x: torch.Tensor, fmt: str, group_size: int | None = 128, *, axis: int = -1,
               scale_format: str | None = None) -> torch.Tensor:
    """Quantize-dequantize ``x`` to ``fmt`` (forward bit-equal to ``sw.quantize(...).dequantize()``),
    straight-through (identity) gradient. Groups of ``group_size`` run along ``axis``; ``None`` = one
    scale per slice along ``axis`` (per channel / per token)."""
    check_format(fmt)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor, got {type(x).__name__}")
    return _FakeQuant.apply(x, fmt, group_size, axis, scale_format)


def relative_mse(w: torch.Tensor, wq: torch.Tensor) -> float:
    """||w - wq||^2 / ||w||^2 (0 for an all-zero w)."""
    den = float(w.double().pow(2).sum())
    return float((w.double() - wq.double()).pow(2).sum()) / den if den else 0.0


def sqnr_db(w: torch.Tensor, wq: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio 10*log10(||w||^2 / ||w - wq||^2) in dB (inf if exact)."""
    r = relative_mse(w, wq)
    return math.inf if r == 0 else -10.0 * math.log10(r)
