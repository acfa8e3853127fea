"""Bit-exact models of the FP16 baselines (``rtl/baselines.py``), their float64 references
and error bounds.

Both baselines compute, per output row ``o`` with ``L`` lanes and ``S = K/L`` steps
(lane ``l`` of step ``s`` holds input ``k = s*L + l``):

1. weight ``w`` in fp16: the raw fp16 weight (:func:`fp16_mac_gemv`) or
   ``fp16_RNE(code * scale_g)`` (:func:`fp16_int8_gemv`; the int8 x fp16 product is exact
   in float32, so ``.to(torch.float16)`` of it is the single RNE rounding);
2. ``p = float32(w) * float32(x)``: exact (<= 22 significant bits, always an fp32 normal);
3. ``acc[l] = +0.0``; for ``s = 0..S-1``: ``acc[l] = fp32_add_RNE(acc[l], p[s*L + l])``;
4. lane reduction, a halving tree: while ``n > 1`` live sums: ``h = ceil(n/2)``,
   ``acc[l] = acc[l] + acc[l+h]`` for ``l < n-h`` (``acc[n-h..h-1]`` pass through); the
   result is ``acc[0]``;
5. any NaN is the canonical quiet NaN ``0x7FC00000`` (as the RTL's adder produces).

torch float32 addition on CPU is IEEE binary32 round-to-nearest-even with subnormals, so
these vectorised models equal the RTL bit for bit.

Error bounds against the float64 references (no overflow to inf assumed), with
``u = 2**-24`` and ``n = S - 1 + ceil(log2 L)`` (the most roundings any product meets on its
way to the result; the first add ``+0 + p`` is exact)::

    fp16 x fp16:  |y - sum_k w_k x_k|           <= gamma_n * sum_k |w_k x_k|
    fp16 x int8:  |y - sum_k (c_k s_k) x_k|     <= gamma_n * sum_k |w16_k x_k|
                                                 + sum_k |x_k| * (2**-11 |c_k s_k| + 2**-25)

with ``gamma_n = n u / (1 - n u)`` (Higham's bound for any summation tree of depth ``n``) and
``w16 = fp16_RNE(c s)``; the last term is the dequantization rounding (half an fp16 ulp:
relative ``2**-11`` for normals, absolute ``2**-25`` for subnormals).
"""
from __future__ import annotations

import torch

from .quantized import QuantizedTensor

__all__ = ["FP32_QNAN", "lane_reduce", "fp16_mac_gemv", "dequantize_int8_fp16", "fp16_int8_gemv",
           "reference_fp16", "reference_int8", "error_bound_fp16", "error_bound_int8", "reduction_levels",
           "int8_codes", "tile_cycles"]

FP32_QNAN = 0x7FC00000


def reduction_levels(lanes: int) -> int:
    """``ceil(log2 lanes)``: the cycles of the lane-reduction tree."""
    return max(0, (lanes - 1).bit_length())


def _check_lanes(K: int, lanes: int) -> None:
    if not isinstance(lanes, int) or lanes < 1:
        raise ValueError(f"lanes={lanes!r} must be a positive integer")
    if K % lanes:
        raise ValueError(f"K={K} is not a multiple of lanes={lanes}")


def _canonical_nan(y: torch.Tensor) -> torch.Tensor:
    nan = torch.tensor(FP32_QNAN, dtype=torch.int32).view(torch.float32)
    return torch.where(torch.isnan(y), nan, y)


def lane_reduce(p: torch.Tensor, lanes: int) -> torch.Tensor:
    """Steps 3-5 of the module docstring: float32 products ``[O, K]`` -> float32 ``[O]``."""
    if p.dtype != torch.float32 or p.dim() != 2:
        raise TypeError(f"products must be a 2-D float32 tensor, got {p.dtype} {tuple(p.shape)}")
    O, K = p.shape
    _check_lanes(K, lanes)
    p = p.reshape(O, K // lanes, lanes)
    acc = torch.zeros(O, lanes, dtype=torch.float32)
    for s in range(K // lanes):
        acc = acc + p[:, s]
    n = lanes
    while n > 1:
        h = (n + 1) // 2
        acc = torch.cat([acc[:, :n - h] + acc[:, h:n], acc[:, n - h:h]], dim=1)
        n = h
    return _canonical_nan(acc[:, 0].contiguous())


def _check_fp16(t, name: str, dim: int) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or t.dtype != torch.float16:
        raise TypeError(f"{name} must be a float16 tensor, got {getattr(t, 'dtype', type(t).__name__)}")
    if t.dim() != dim:
        raise ValueError(f"{name} must be {dim}-D, got shape {tuple(t.shape)}")
    return t


def fp16_mac_gemv(w: torch.Tensor, x: torch.Tensor, lanes: int) -> torch.Tensor:
    """``y = W x`` exactly as :class:`rtl.baselines.Fp16MacEngine` computes it.

    ``w`` float16 ``[O, K]``, ``x`` float16 ``[K]`` (any values: subnormals, infinities and
    NaNs follow IEEE); returns float32 ``[O]``.
    """
    _check_fp16(w, "w", 2)
    _check_fp16(x, "x", 1)
    if w.shape[1] != x.numel():
        raise ValueError(f"x has {x.numel()} elements, w has K={w.shape[1]}")
    return lane_reduce(w.float() * x.float().unsqueeze(0), lanes)


def _check_int8(q: QuantizedTensor) -> None:
    if not isinstance(q, QuantizedTensor):
        raise TypeError(f"q must be a QuantizedTensor (sw.quantize(w, 'int8')), got {type(q).__name__}")
    if q.format != "int8":
        raise ValueError(f"the FP16xINT8 baseline takes int8 weights, got format {q.format!r}")
    if q.scale_format != "fp16":
        raise ValueError(f"the FP16xINT8 baseline takes fp16 group scales, got scale_format={q.scale_format!r}")
    if q.codes.dim() != 2 or q.axis not in (1, -1):
        raise ValueError("the baseline takes a 2-D [out, K] weight quantized along axis 1 (the default axis=-1)")


def int8_codes(q: QuantizedTensor) -> torch.Tensor:
    """Signed int8 values ``[O, K]`` (int64) of the two's complement codes."""
    c = q.codes.to(torch.int64) & 0xFF
    return torch.where(c >= 128, c - 256, c)


def dequantize_int8_fp16(q: QuantizedTensor) -> torch.Tensor:
    """``fp16_RNE(code * scale)`` ``[O, K]`` float16: what each lane's dequantizer produces."""
    _check_int8(q)
    s = q.scales.to(torch.float32).repeat_interleave(q.group_size, dim=1)
    return (int8_codes(q).to(torch.float32) * s).to(torch.float16)     # exact product, one RNE


def fp16_int8_gemv(q: QuantizedTensor, x: torch.Tensor, lanes: int) -> torch.Tensor:
    """``y = W x`` exactly as :class:`rtl.baselines.Fp16Int8Engine` computes it: float32 ``[O]``."""
    w16 = dequantize_int8_fp16(q)
    _check_fp16(x, "x", 1)
    if w16.shape[1] != x.numel():
        raise ValueError(f"x has {x.numel()} elements, the weights have K={w16.shape[1]}")
    return lane_reduce(w16.float() * x.float().unsqueeze(0), lanes)


def reference_fp16(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Float64 ``W x`` (every product and sum of fp16 inputs is exact enough: the reference)."""
    return w.to(torch.float64) @ x.to(torch.float64)


def reference_int8(q: QuantizedTensor, x: torch.Tensor) -> torch.Tensor:
    """Float64 ``dequantize(W) x`` with the *exact* dequantized weights ``code * scale``."""
    _check_int8(q)
    s = q.scales.to(torch.float64).repeat_interleave(q.group_size, dim=1)
    return (int8_codes(q).to(torch.float64) * s) @ x.to(torch.float64)


def _gamma(K: int, lanes: int) -> float:
    n = K // lanes - 1 + reduction_levels(lanes)
    u = 2.0 ** -24
    return n * u / (1 - n * u)


def error_bound_fp16(w: torch.Tensor, x: torch.Tensor, lanes: int) -> torch.Tensor:
    """The documented bound on ``|fp16_mac_gemv - reference_fp16|`` per output (float64)."""
    absp = (w.to(torch.float64).abs() * x.to(torch.float64).abs()).sum(-1)
    return _gamma(w.shape[1], lanes) * absp


def error_bound_int8(q: QuantizedTensor, x: torch.Tensor, lanes: int) -> torch.Tensor:
    """The documented bound on ``|fp16_int8_gemv - reference_int8|`` per output (float64)."""
    w16 = dequantize_int8_fp16(q).to(torch.float64)
    ax = x.to(torch.float64).abs()
    s = q.scales.to(torch.float64).repeat_interleave(q.group_size, dim=1)
    exact = (int8_codes(q).to(torch.float64) * s).abs()
    deq = ((exact * 2.0 ** -11 + 2.0 ** -25) * ax).sum(-1)
    return _gamma(w16.shape[1], lanes) * (w16.abs() * ax).sum(-1) + deq


def tile_cycles(K: int, lanes: int) -> int:
    """Cycles of one tile without stalls: ``K/L`` MAC steps + the reduction + 1 command cycle."""
    return K // lanes + reduction_levels(lanes) + 1

