"""Bit-accurate model of the bitmix engine's datapath (vectorized torch).

The RTL equals this model bit for bit. Per output row ``o`` and group ``g`` (``G``
consecutive inputs along K):

1. **Activations** (shared by all rows). FP16 mode: block floating point per group. For an
   fp16 ``x = (-1)^s 2^(e-15) (sig / 2^10)`` with ``sig = (e != 0) << 10 | frac`` and the
   effective exponent ``e' = max(e, 1)``, the group's block exponent is ``emax = max e'``
   (:func:`block_exponents`; the host sends it with the group's first activation beat) and
   the aligned mantissa is ``A = (-1)^s * ((sig << (W - 12)) >> (emax - e'))`` — a signed
   ``W``-bit integer (``W = act_bits``), the magnitude truncated toward zero. Then
   ``x ~= A * 2^ea`` with ``ea = emax - W - 13``. INT8 mode: ``A = x`` (an int8) and ``ea = 0``.
   The front end also forms ``S_A = sum(A)`` per group (for the zero-point correction).
2. **Weights** decode to ``w_int`` in format units (:mod:`sw.terms`): value ``w_int * 2^-u``
   (the RTL sums its radix-4 Booth terms; the sum is exact, so the term split does not matter here).
3. **Group partial sum** (exact integer): ``P = sum_j w_int_j * A_j``; for asymmetric INT
   ``P -= (z - 2^(b-1)) * S_A`` (``w_int = c - 2^(b-1)``, so ``P = sum (c - z) A``).
4. **Rescale** (one pipelined unit shared by the rows in the RTL, exact): the scale is ``(-1)^ss * sig_s * 2^es`` with
   fp16 ``sig_s = (e != 0) << 10 | frac, es = max(e, 1) - 25``; bf16 ``sig_s = (e != 0) << 7 |
   frac, es = max(e, 1) - 134``; e8m0 ``sig_s = 1, es = code - 127``. ``Q = P * sig_s``
   (signed), exponent ``E = ea + es - u``.
5. **Conversion**: ``q = fp32_RNE(Q * 2^E)`` (IEEE binary32, round half to even, subnormals
   kept, overflow to ±inf).
6. **Accumulation** across the groups of a row, in order: ``acc = +0.0`` then
   ``acc = fp32_add_RNE(acc, q_g)``. The result of the row is ``acc`` (fp32); a NaN (only
   from ``inf + -inf``, i.e. overflowing groups of both signs) is the canonical ``0x7FC00000``.

Error bound against the float reference ``y_ref = sum_j deq(w_j) * x_j`` (float64, same
quantized weights), held by ``tests/test_datapath.py``::

    |y - y_ref| <= sum_g 2^ea_g * |scale_g| * 2^-u * sum_{j in g} |w_int_j|   (truncation, FP16 mode)
                 + (n_groups + 1) * 2^-24 * 1.0001 * sum_g |Q_g 2^E_g|        (fp32 roundings)
                 + n_groups * 2^-149                                         (subnormal floor)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import terms as T
from .checks import as_float_tensor
from .quantized import QuantizedTensor, meta_to_groups, to_groups

ACT_MODES = ("fp16", "int8")
HW_SCALE_FORMATS = ("fp16", "bf16", "e8m0")
SCALE_SIG_BITS = {"fp16": 11, "bf16": 8, "e8m0": 1}


@dataclass
class Activations:
    """Aligned activations of one vector: ``A`` [K] int64, per group ``ea`` and ``S_A`` [K/G]."""

    A: torch.Tensor
    ea: torch.Tensor
    sum_A: torch.Tensor
    group_size: int


def fp16_fields(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sign, exponent field, fraction) of fp16 values, int64."""
    bits = x.to(torch.float16).view(torch.int16).to(torch.int64) & 0xFFFF
    return bits >> 15, (bits >> 10) & 0x1F, bits & 0x3FF


def block_exponents(x, group_size: int) -> torch.Tensor:
    """The block exponent ``emax = max(max(e, 1))`` of every group of fp16 activations (int64 [K/G]).

    The engine takes it with each group's first ``act`` beat: it is computed once per activation
    vector, upstream (e.g. by the unit that writes the vector), instead of buffering every group."""
    x = as_float_tensor(x, "x", allow_inf=False).to(torch.float16)
    if x.dim() != 1 or x.numel() % group_size:
        raise ValueError(f"x must be 1-D with a length divisible by group_size={group_size}, got {tuple(x.shape)}")
    _, e, _ = fp16_fields(x)
    return e.clamp(min=1).reshape(-1, group_size).amax(-1)


def align_fp16(x, group_size: int, act_bits: int, emax: torch.Tensor | None = None) -> Activations:
    """Block-floating-point alignment of fp16 activations (step 1 of the module docstring).

    ``emax`` (int64 [K/G], default :func:`block_exponents`) is the block exponent the host sends;
    a lane with ``e' > emax`` is not shifted (``shift = max(0, emax - e')``), as in the RTL."""
    if act_bits < 12:
        raise ValueError(f"act_bits={act_bits} must be >= 12 to hold an fp16 significand and a sign")
    if isinstance(x, torch.Tensor) and x.dtype != torch.float16:
        raise TypeError(f"x must be float16 in fp16 mode, got {x.dtype}")
    x = as_float_tensor(x, "x", allow_inf=False).to(torch.float16)
    if x.dim() != 1 or x.numel() % group_size:
        raise ValueError(f"x must be 1-D with a length divisible by group_size={group_size}, got {tuple(x.shape)}")
    s, e, f = fp16_fields(x)
    sig = torch.where(e != 0, 1 << 10, 0) | f
    eff = e.clamp(min=1)
    if emax is None:
        emax = eff.reshape(-1, group_size).amax(-1)
    else:
        emax = torch.as_tensor(emax, dtype=torch.int64).reshape(-1)
        if emax.numel() != x.numel() // group_size or bool(((emax < 0) | (emax > 31)).any()):
            raise ValueError(f"emax must hold one 5-bit block exponent per group ({x.numel() // group_size})")
    shift = (emax.repeat_interleave(group_size) - eff).clamp(min=0, max=62)
    mag = (sig << (act_bits - 12)) >> shift
    A = torch.where(s == 1, -mag, mag)
    return Activations(A=A, ea=emax - act_bits - 13, sum_A=A.reshape(-1, group_size).sum(-1),
                       group_size=group_size)


def align_int8(x, group_size: int) -> Activations:
    if not isinstance(x, torch.Tensor) or x.dtype != torch.int8:
        raise TypeError(f"x must be an int8 tensor in int8 mode, got {getattr(x, 'dtype', type(x))}")
    if x.dim() != 1 or x.numel() % group_size:
        raise ValueError(f"x must be 1-D with a length divisible by group_size={group_size}, got {tuple(x.shape)}")
    A = x.to(torch.int64)
    ng = x.numel() // group_size
    return Activations(A=A, ea=torch.zeros(ng, dtype=torch.int64), sum_A=A.reshape(-1, group_size).sum(-1),
                       group_size=group_size)


def align(x, mode: str, group_size: int, act_bits: int) -> Activations:
    if mode == "fp16":
        return align_fp16(x, group_size, act_bits)
    if mode == "int8":
        return align_int8(x, group_size)
    raise ValueError(f"act_mode={mode!r}; choose one of {', '.join(ACT_MODES)}")


def scale_fields(scales: torch.Tensor, scale_format: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact ``(signed significand, exponent)`` with ``scale = sig * 2^exp``."""
    if scale_format == "fp16":
        s, e, f = fp16_fields(scales)
        sig, ex = torch.where(e != 0, 1 << 10, 0) | f, e.clamp(min=1) - 25
        bad = e == 31
    elif scale_format == "bf16":
        bits = scales.to(torch.bfloat16).view(torch.int16).to(torch.int64) & 0xFFFF
        s, e, f = bits >> 15, (bits >> 7) & 0xFF, bits & 0x7F
        sig, ex = torch.where(e != 0, 1 << 7, 0) | f, e.clamp(min=1) - 134
        bad = e == 255
    elif scale_format == "e8m0":
        code = torch.round(torch.log2(scales.to(torch.float64))).to(torch.int64) + 127
        if not torch.equal(torch.ldexp(torch.ones_like(scales, dtype=torch.float64), code - 127),
                           scales.to(torch.float64)):
            raise ValueError("scales are not exact e8m0 powers of two")
        s, sig, ex, bad = torch.zeros_like(code), torch.ones_like(code), code - 127, code == 255
    else:
        raise ValueError(f"scale_format={scale_format!r} has no hardware rescale; choose one of "
                         f"{', '.join(HW_SCALE_FORMATS)}")
    if bool(bad.any()):
        raise ValueError("scales hold inf/NaN, which the rescale unit does not support")
    return torch.where(s == 1, -sig, sig), ex


def weight_ints(q: QuantizedTensor, fmt: str) -> torch.Tensor:
    """``w_int`` [O, K] (int64) as the decoders produce it."""
    table = T.int_value_table(fmt)
    codes = q.codes.long()
    if q.selectors is not None:
        sel = q.selectors.long().repeat_interleave(q.group_size, dim=-1)
        return table[sel, codes]
    return table[0][codes]


def check_layout(q: QuantizedTensor, fmt: str, group_size: int) -> None:
    T.check_hw_format(fmt)
    if q.format != fmt:
        raise ValueError(f"quantized tensor has format {q.format!r}, the engine was told {fmt!r}")
    if q.codes.dim() != 2 or q.axis != 1:
        raise ValueError("the engine takes a 2-D [out, K] weight quantized along axis 1 (the default axis=-1)")
    if q.group_size != group_size:
        raise ValueError(f"weights use group_size={q.group_size}, the engine is built for {group_size}")
    if q.scale_format not in HW_SCALE_FORMATS:
        raise ValueError(f"scale_format={q.scale_format!r} has no hardware rescale; choose one of "
                         f"{', '.join(HW_SCALE_FORMATS)}")


def group_psums(q: QuantizedTensor, fmt: str, act: Activations) -> torch.Tensor:
    """``P`` [O, n_groups] int64, zero-point correction included."""
    w = weight_ints(q, fmt)
    G = act.group_size
    P = (to_groups(w, 1, G) * act.A.reshape(-1, G)).sum(-1)
    if q.zero_points is not None:
        bits = T.code_bits(fmt)
        P = P - (q.zero_points.long() - (1 << (bits - 1))) * act.sum_A
    return P


@dataclass
class GemvTrace:
    """Every intermediate of :func:`gemv`, for scoreboards and error analysis."""

    P: torch.Tensor        # [O, ng] int64
    Q: torch.Tensor        # [O, ng] int64
    E: torch.Tensor        # [O, ng] int64
    q32: torch.Tensor      # [O, ng] float32
    y: torch.Tensor        # [O] float32
    act: Activations


def gemv(q: QuantizedTensor, x, *, fmt: str | None = None, act_mode: str = "fp16", act_bits: int = 16,
         trace: bool = False):
    """``y = W x`` exactly as the engine computes it. Returns float32 [O] (or a trace)."""
    fmt = fmt or q.format
    check_layout(q, fmt, q.group_size)
    act = align(x, act_mode, q.group_size, act_bits)
    if act.A.numel() != q.codes.shape[1]:
        raise ValueError(f"x has {act.A.numel()} elements, the weights have K={q.codes.shape[1]}")
    P = group_psums(q, fmt, act)
    sig, es = scale_fields(meta_to_groups(q.scales, 1), q.scale_format)
    Q = P * sig
    E = act.ea.unsqueeze(0) + es - T.unit_exp(fmt)
    q32 = torch.ldexp(Q.to(torch.float64), E.to(torch.float64)).to(torch.float32)
    acc = torch.zeros(q32.shape[0], dtype=torch.float32)
    for g in range(q32.shape[1]):
        acc = acc + q32[:, g]
    acc = canonical_nan(acc)
    if trace:
        return GemvTrace(P=P, Q=Q, E=E, q32=q32, y=acc, act=act)
    return acc


CANONICAL_NAN = 0x7FC00000


def canonical_nan(y: torch.Tensor) -> torch.Tensor:
    """NaN results (only from inf + -inf) as the IEEE canonical quiet NaN ``0x7FC00000``, as the RTL."""
    nan = torch.tensor(CANONICAL_NAN, dtype=torch.int32).view(torch.float32)
    return torch.where(torch.isnan(y), nan, y)


def error_bound(q: QuantizedTensor, tr: GemvTrace, fmt: str | None = None) -> torch.Tensor:
    """The documented bound on ``|y - y_ref|`` per output (float64)."""
    fmt = fmt or q.format
    G = q.group_size
    absw = to_groups(weight_ints(q, fmt).abs(), 1, G).sum(-1).to(torch.float64)
    if q.zero_points is not None:   # |c - z| per element
        w = to_groups(weight_ints(q, fmt), 1, G) - (q.zero_points.long() - (1 << (T.code_bits(fmt) - 1))).unsqueeze(-1)
        absw = w.abs().sum(-1).to(torch.float64)
    sc = meta_to_groups(q.scales, 1).to(torch.float64).abs()
    trunc = (torch.ldexp(torch.ones_like(absw), tr.act.ea.to(torch.float64) - T.unit_exp(fmt)) * sc * absw).sum(-1)
    exact = torch.ldexp(tr.Q.to(torch.float64), tr.E.to(torch.float64)).abs().sum(-1)
    ng = tr.Q.shape[1]
    return trunc + (ng + 1) * 2.0 ** -24 * 1.0001 * exact + ng * 2.0 ** -149


def reference(q: QuantizedTensor, x) -> torch.Tensor:
    """Float64 reference ``dequantize(W) @ x``."""
    xv = x.to(torch.float64)
    return q.dequantize().to(torch.float64) @ xv
