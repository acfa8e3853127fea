"""The unified term representation: every weight as a few signed powers of two.

A weight code of format ``f`` has the integer value ``w_int`` in *format units*: the
element value is ``w_int * 2^-unit_exp(f)`` (E2M1 is in halves, E3M2 in sixteenths, ...).
``w_int`` is a sum of at most ``terms(f)`` terms ``±2^shift``; the bit-serial PE spends
one cycle per term and only shifts and adds.

* Symmetric INT: radix-4 Booth. Digit ``k`` of a ``b``-bit code (sign-extended to an even
  width) is ``d_k = -2*b[2k+1] + b[2k] + b[2k-1]`` in ``{0, ±1, ±2}``, the term is
  ``sign(d_k) * 2^(2k + (|d_k| == 2))``. INT3/4: 2 terms, INT6: 3, INT8: 4.
* Asymmetric INT: the code ``c`` in ``0..2^b-1`` enters as ``c - 2^(b-1)`` (its MSB
  inverted, a signed ``b``-bit value) and goes through the same Booth recoding; the
  ``+2^(b-1)`` returns in the zero-point correction ``(z - 2^(b-1)) * sum(A)`` made once per
  group.
* FP and BitMoD (FP3, FP4 E2M1, BitMoD FP3/FP4, FP6 E3M2/E2M3): sign-magnitude. A code's
  sign ``s``, ``E``-bit exponent field ``e`` and ``M``-bit mantissa ``m`` give
  ``|w_int| = sig * 2^x`` with ``sig = (e != 0) << M | m`` and ``x = max(e, 1) - 1``
  (:func:`fp_parts`); ``sig`` goes through the same radix-4 Booth recoding as an INT (a
  positive number: its digits read ``0sig``), every term is shifted by ``x`` and its sign
  flipped when ``s``. BitMoD's special value (the code of -0) is ``±sig * 2^x`` with ``sig``
  odd. Terms: FP3 1; FP4, BitMoD and E3M2 2 (``sig <= 7``); E2M3 3 (``sig <= 15``).

Terms are listed most significant first (digit ``terms - 1`` first); unused term slots and zero
digits are zero terms (no-ops). The RTL decoder (``rtl/decoder.py``) is built from this
structure (one Booth digit selector for every format) and checked against
:func:`decompose` exhaustively, so the hardware and the golden model share this single
definition.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from . import formats as F

#: Formats the hardware decoder can be built with.
HW_FORMATS = ("int3", "int4", "int6", "int8", "int3_asym", "int4_asym", "fp3", "fp4_e2m1", "bitmod3",
              "bitmod4", "fp6_e3m2", "fp6_e2m3")

BITMOD = {"bitmod4": "fp4", "bitmod3": "fp3"}


@dataclass(frozen=True)
class Term:
    sign: int   # 0: +, 1: -
    shift: int
    zero: bool = False

    @property
    def value(self) -> int:
        return 0 if self.zero else (-1) ** self.sign << self.shift


ZERO = Term(0, 0, True)


def check_hw_format(fmt: str) -> str:
    if fmt not in HW_FORMATS:
        raise ValueError(f"format {fmt!r} has no hardware decoder; decodable formats: {', '.join(HW_FORMATS)}")
    return fmt


def variants(fmt: str) -> list[F.ElementFormat]:
    """The element format(s) a code is read with, indexed by selector (one unless BitMoD)."""
    check_hw_format(fmt)
    if fmt in BITMOD:
        return F.bitmod_variants(BITMOD[fmt])
    return [F.get(fmt)]


def code_bits(fmt: str) -> int:
    return variants(fmt)[0].bits


def is_asym(fmt: str) -> bool:
    return fmt.endswith("_asym")


def is_booth(fmt: str) -> bool:
    return fmt.startswith("int")


@lru_cache(maxsize=None)
def unit_exp(fmt: str) -> int:
    """``u`` with every element value an integer multiple of ``2^-u`` (0 for INT)."""
    if is_booth(fmt):
        return 0
    u = 0
    for v in variants(fmt):
        for x in v.values.tolist():
            while x * 2 ** u != int(x * 2 ** u):
                u += 1
    return u


def booth_digits(value: int, bits: int) -> list[int]:
    """Radix-4 Booth digits (least significant first) of a ``bits``-wide two's-complement value."""
    n = (bits + 1) // 2
    width = 2 * n
    u = value & ((1 << width) - 1)        # sign-extended to an even width
    bit = lambda i: 0 if i < 0 else (u >> i) & 1  # noqa: E731
    return [-2 * bit(2 * k + 1) + bit(2 * k) + bit(2 * k - 1) for k in range(n)]


def fp_fields(fmt: str) -> tuple[int, int, int]:
    """``(code bits, mantissa bits M, exponent bits E)`` of a sign-magnitude (FP/BitMoD) format."""
    if is_booth(check_hw_format(fmt)):
        raise ValueError(f"{fmt} is an INT format, not sign-magnitude")
    v = variants(fmt)[0]
    base = getattr(v, "base", v)          # a BitMoD variant: its FP base format's fields
    return v.bits, base.m, base.e


def fp_parts(fmt: str, code: int, selector: int = 0) -> tuple[int, int, int]:
    """``(s, sig, x)`` of a sign-magnitude code: ``w_int = (-1)^s * sig * 2^x``.

    From the code's fields (module docstring); BitMoD's special value (the code of -0) has the
    odd ``sig`` and the ``x`` of its value."""
    b, mb, _ = fp_fields(fmt)
    s, mag = code >> (b - 1), code & ((1 << (b - 1)) - 1)
    if fmt in BITMOD and s and not mag:
        w = int_value(fmt, code, selector)
        x = (abs(w) & -abs(w)).bit_length() - 1
        return int(w < 0), abs(w) >> x, x
    e, m = mag >> mb, mag & ((1 << mb) - 1)
    return s, (int(e != 0) << mb) | m, max(e, 1) - 1


@lru_cache(maxsize=None)
def terms(fmt: str) -> int:
    """Terms (cycles) per weight of ``fmt``."""
    if is_booth(fmt):
        return (code_bits(fmt) + 1) // 2
    # Booth digits of a positive sig: ceil((bits(sig) + 1) / 2)
    return max((fp_parts(fmt, c, sel)[1].bit_length() + 2) // 2
               for sel in range(len(variants(fmt))) for c in range(1 << code_bits(fmt)))


def int_value(fmt: str, code: int, selector: int = 0) -> int:
    """``w_int`` of ``code`` (for asymmetric INT: ``code - 2^(b-1)``)."""
    v = variants(fmt)[selector]
    if is_asym(fmt):
        return code - (1 << (v.bits - 1))
    val = float(v.decode(torch.tensor([code]))[0])
    return int(val * 2 ** unit_exp(fmt))


def decompose(fmt: str, code: int, selector: int = 0) -> list[Term]:
    """The ``terms(fmt)`` terms of ``code``, most significant first, zero-padded."""
    t = terms(fmt)
    v = variants(fmt)[selector]
    if not bool(v.valid_codes[code]) and not is_asym(fmt):
        # unused codes (INT's -2^(b-1)) decode as their two's-complement value in hardware
        pass
    if is_booth(fmt):
        w = int_value(fmt, code, selector) if is_asym(fmt) else _twos(code, v.bits)
        digits = booth_digits(w, v.bits)
        out = [ZERO if d == 0 else Term(int(d < 0), 2 * k + (abs(d) == 2)) for k, d in enumerate(digits)]
        return list(reversed(out))
    sgn, sig, x = fp_parts(fmt, code, selector)
    digits = booth_digits(sig, 2 * t)     # sig < 2^(2t-1): read as a positive 2t-bit value
    out = [ZERO if d == 0 else Term(sgn ^ int(d < 0), 2 * k + (abs(d) == 2) + x) for k, d in enumerate(digits)]
    return list(reversed(out))


def _twos(code: int, bits: int) -> int:
    return code - (1 << bits) if code >> (bits - 1) else code


@lru_cache(maxsize=None)
def max_shift(fmt: str) -> int:
    return max(t.shift for s in range(len(variants(fmt))) for c in range(1 << code_bits(fmt))
               for t in decompose(fmt, c, s) if not t.zero)


@lru_cache(maxsize=None)
def max_abs_int(fmt: str) -> int:
    """Largest ``|w_int|`` the decoder can produce (every code, every selector)."""
    return max(abs(sum(t.value for t in decompose(fmt, c, s)))
               for s in range(len(variants(fmt))) for c in range(1 << code_bits(fmt)))


def term_table(fmt: str) -> list[list[list[Term]]]:
    """``[selector][code] -> terms`` of every code."""
    return [[decompose(fmt, c, s) for c in range(1 << code_bits(fmt))] for s in range(len(variants(fmt)))]


def int_value_table(fmt: str) -> torch.Tensor:
    """``[selectors, 2^bits]`` int64 tensor of ``w_int`` per (selector, code) as the decoder sums it."""
    return torch.tensor([[sum(t.value for t in decompose(fmt, c, s)) for c in range(1 << code_bits(fmt))]
                         for s in range(len(variants(fmt)))], dtype=torch.int64)
