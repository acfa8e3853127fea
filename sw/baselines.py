"""Bit-exact models of the FP16 baselines (``rtl/baselines.py``), their float64 references
and error bounds.

**FP16 x FP16 MAC** (:func:`fp16_mac_gemv`), per output row ``o`` with ``L`` lanes and
``S = K/L`` steps (lane ``l`` of step ``s`` holds input ``k = s*L + l``):

1. ``p = float32(w) * float32(x)``: exact (<= 22 significant bits, always an fp32 normal);
2. ``acc[l] = +0.0``; for ``s = 0..S-1``: ``acc[l] = fp32_add_RNE(acc[l], p[s*L + l])``;
3. lane reduction, a halving tree: while ``n > 1`` live sums: ``h = ceil(n/2)``,
   ``acc[l] = acc[l] + acc[l+h]`` for ``l < n-h`` (``acc[n-h..h-1]`` pass through); the
   result is ``acc[0]``;
4. any NaN is the canonical quiet NaN ``0x7FC00000`` (as the RTL's adder produces).

torch float32 addition on CPU is IEEE binary32 round-to-nearest-even with subnormals, so
these vectorised models equal the RTL bit for bit.

**FP16 x INT8** (:func:`fp16_int8_gemv`; ``fma_int8`` style: integer products, one scale
multiply per group), per group ``g`` of ``G`` inputs (``S = G/L`` steps) and ``F =
guard_bits`` (default :data:`GUARD_BITS`):

1. activation ``x = (-1)^sx sig 2^(e'-25)`` with ``e' = max(e, 1)``, ``sig = (e != 0) << 10 |
   frac`` (11 bits): ``sx_sig = ±sig`` (signed 12 bits); weight ``c`` (int8);
2. product ``p = c * sx_sig`` exactly (signed 19 bits, ``|p| <= 128 * 2047``), value
   ``p 2^(e'-25)``;
3. block exponent: ``m_s = max_l e'`` of step ``s``, ``E_s = max(E_{s-1}, m_s)`` (``E_0 =
   m_0``; a running maximum, so no group buffer is needed);
4. alignment: ``a = floor(p * 2^F / 2^(E_s - e'))`` (arithmetic right shift of ``p << F``),
   step sum ``T_s = sum_l a`` (exact);
5. block accumulator: ``P = T_0``, then ``P = floor(P / 2^(E_s - E_{s-1})) + T_s``; the group
   sum is ``P`` with unit ``2^ea``, ``ea = E_{S-1} - 25 - F``; ``|P| < G 2^(18+F)``
   (:func:`int8_psum_bits`);
6. rescale once per group (the shared rescale unit, ``sw.datapath`` steps 4-6): ``Q = P *
   sig_s`` (signed significand of the fp16 scale, ``es = max(e,1) - 25``), ``q =
   fp32_RNE(Q 2^(ea + es))``; ``y = +0.0``, ``y = fp32_add_RNE(y, q_g)`` over the groups;
   a NaN (only ``inf + -inf``) is ``0x7FC00000``.

Activations must be finite (as for the bitmix engine) and scales finite.

Error bounds against the float64 references (no overflow to inf assumed), with
``u = 2**-24``::

    fp16 x fp16:  |y - sum_k w_k x_k| <= gamma_n * sum_k |w_k x_k|,   n = S - 1 + ceil(log2 L)
    fp16 x int8:  |y - sum_k (c_k s_g) x_k| <= sum_g t_g + (u + gamma_m (1 + u)) sum_g v_g
                                               + (1 + gamma_m) n_groups 2**-149

with ``gamma_n = n u / (1 - n u)`` (Higham's bound for any summation tree of depth ``n``);
for FP16xINT8 ``m = n_groups - 1``, ``t_g = |s_g| (G + S - 1) 2^ea_g`` (each of the ``G``
alignments and ``S - 1`` accumulator shifts floors less than one unit ``2^ea_g`` of the
group's final exponent, which is the largest it had) and ``v_g = |s_g| sum_{k in g} |c_k x_k|
+ t_g`` (bounds ``|s_g P_g 2^ea_g|``); ``u`` for the rounding of each ``q_g``, ``2**-149`` for
a subnormal one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .datapath import fp16_fields, scale_fields
from .quantized import QuantizedTensor, meta_to_groups

__all__ = ["FP32_QNAN", "GUARD_BITS", "lane_reduce", "fp16_mac_gemv", "fp16_int8_gemv", "Int8Trace",
           "int8_psum_bits", "reference_fp16", "reference_int8", "error_bound_fp16", "error_bound_int8",
           "reduction_levels", "int8_codes", "tile_cycles", "int8_gemv_cycles"]

FP32_QNAN = 0x7FC00000
#: FP16xINT8: fraction bits kept below an aligned product's ``2^(E-25)`` unit.
GUARD_BITS = 8


def reduction_levels(lanes: int) -> int:
    """``ceil(log2 lanes)``: the cycles of the lane-reduction tree."""
    return max(0, (lanes - 1).bit_length())


def _check_lanes(K: int, lanes: int) -> None:
    if not isinstance(lanes, int) or lanes < 1:
        raise ValueError(f"lanes={lanes!r} must be a positive integer")
    if K % lanes:
        raise ValueError(f"K={K} is not a multiple of lanes={lanes}")


def _check_guard(guard_bits) -> None:
    if isinstance(guard_bits, bool) or not isinstance(guard_bits, int) or not 0 <= guard_bits <= 16:
        raise ValueError(f"guard_bits={guard_bits!r} must be an int in 0..16")


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


def int8_psum_bits(group_size: int, guard_bits: int = GUARD_BITS) -> int:
    """Width of the FP16xINT8 group sum ``P``: ``19 + guard_bits + ceil(log2 group_size)``.

    Every aligned product is a floor of ``p * 2**(F - d)`` with ``|p| <= 128 * 2047 < 2**18``,
    so ``|a| < 2**(18+F)``; a floor shift never grows a magnitude, so ``|P| < G * 2**(18+F)``.
    """
    return 19 + guard_bits + max(0, (group_size - 1).bit_length())


@dataclass
class Int8Trace:
    """Intermediates of :func:`fp16_int8_gemv` (``trace=True``)."""

    P: torch.Tensor        # [O, ng] int64 group sums
    E: torch.Tensor        # [ng] int64 group block exponents (max e' of the group)
    ea: torch.Tensor       # [ng] int64: P's unit is 2**ea, ea = E - 25 - F
    q32: torch.Tensor      # [O, ng] float32 rescaled group sums
    y: torch.Tensor        # [O] float32


def fp16_int8_gemv(q: QuantizedTensor, x: torch.Tensor, lanes: int, *, guard_bits: int = GUARD_BITS,
                   trace: bool = False):
    """``y = W x`` exactly as :class:`rtl.baselines.Fp16Int8Engine` computes it: float32 ``[O]``.

    ``q``: ``sw.quantize(w, "int8", scale_format="fp16")`` of a 2-D ``[O, K]`` weight (any
    ``group_size`` that is a multiple of ``lanes``); ``x``: finite float16 ``[K]``. The steps
    are those of the module docstring (FP16xINT8 part); ``trace=True`` returns an
    :class:`Int8Trace`.
    """
    _check_int8(q)
    _check_fp16(x, "x", 1)
    _check_guard(guard_bits)
    O, K = q.codes.shape
    if K != x.numel():
        raise ValueError(f"x has {x.numel()} elements, the weights have K={K}")
    G = q.group_size
    _check_lanes(G, lanes)
    if K % G:
        raise ValueError(f"K={K} is not a multiple of group_size={G}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x holds inf/NaN, which the FP16xINT8 baseline does not support (as the bitmix engine)")
    F, S, ng = guard_bits, G // lanes, K // G
    s, e, f = fp16_fields(x)
    ee = e.clamp(min=1)                                            # e' = max(e, 1)
    sig = torch.where(e != 0, 1 << 10, 0) | f
    sx = torch.where(s == 1, -sig, sig)                            # signed 12-bit significand
    p = int8_codes(q) * sx.unsqueeze(0)                            # exact 19-bit products [O, K]
    ee = ee.reshape(ng, S, lanes)
    E = torch.cummax(ee.amax(-1), dim=1).values                    # running block exponent [ng, S]
    d = (E.unsqueeze(-1) - ee).reshape(1, ng, S, lanes)
    a = torch.bitwise_right_shift(p.reshape(O, ng, S, lanes) << F, d)   # floor(p * 2**(F - d))
    T = a.sum(-1)                                                  # beat sums [O, ng, S]
    acc = T[:, :, 0]
    for st in range(1, S):
        acc = torch.bitwise_right_shift(acc, (E[:, st] - E[:, st - 1]).unsqueeze(0)) + T[:, :, st]
    Eg = E[:, -1]
    ea = Eg - 25 - F
    sig_s, es = scale_fields(meta_to_groups(q.scales, 1), "fp16")
    Q = acc * sig_s
    q32 = torch.ldexp(Q.to(torch.float64), (ea.unsqueeze(0) + es).to(torch.float64)).to(torch.float32)
    y = torch.zeros(O, dtype=torch.float32)
    for g in range(ng):
        y = y + q32[:, g]
    y = _canonical_nan(y)
    if trace:
        return Int8Trace(P=acc, E=Eg, ea=ea, q32=q32, y=y)
    return y


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


def error_bound_int8(q: QuantizedTensor, x: torch.Tensor, lanes: int, *,
                     guard_bits: int = GUARD_BITS) -> torch.Tensor:
    """The documented bound on ``|fp16_int8_gemv - reference_int8|`` per output (float64)."""
    tr = fp16_int8_gemv(q, x, lanes, guard_bits=guard_bits, trace=True)
    G = q.group_size
    S, ng = G // lanes, q.codes.shape[1] // G
    s = q.scales.to(torch.float64)                                         # [O, ng]
    cx = (int8_codes(q).to(torch.float64).abs() * x.to(torch.float64).abs()).reshape(-1, ng, G).sum(-1)
    lsb = torch.ldexp(torch.ones(ng, dtype=torch.float64), tr.ea.to(torch.float64))   # 2**ea_g
    trunc = s.abs() * (G + S - 1) * lsb                                    # [O, ng]
    v = s.abs() * cx + trunc                                               # >= |s_g P_g 2**ea_g|
    n = ng - 1
    u = 2.0 ** -24
    gam = n * u / (1 - n * u)
    return trunc.sum(-1) + (u + gam * (1 + u)) * v.sum(-1) + (1 + gam) * ng * 2.0 ** -149


def tile_cycles(K: int, lanes: int) -> int:
    """FP16 MAC: cycles of one tile without stalls: ``K/L`` MAC steps + the reduction + 1 command cycle."""
    return K // lanes + reduction_levels(lanes) + 1


def int8_gemv_cycles(tiles: int, K: int, lanes: int, rows: int) -> int:
    """FP16xINT8: cycles of ``tiles`` back-to-back tiles without stalls, from the first command
    to the last result: ``K/L`` steps + 1 command cycle per tile, then the last group's trip
    through the shared rescale unit (``rows + 6``). Valid when a group takes at least
    ``rows + 2`` steps (the unit's ``rows`` issue cycles, the hand-off register and its ready
    cycle; otherwise groups wait for the unit) and a tile at least ``rows + 6``.
    """
    return tiles * (K // lanes + 1) + rows + 6

