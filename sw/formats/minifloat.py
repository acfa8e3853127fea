"""Sign|exponent|mantissa minifloats (ExMy) with the OCP conventions.

Value of a code ``s|e|m`` with ``E`` exponent and ``M`` mantissa bits and bias ``b``:

* normal (``e != 0``):   ``(-1)^s * 2^(e-b) * (1 + m/2^M)``
* subnormal (``e == 0``): ``(-1)^s * 2^(1-b) * (m/2^M)``

``specials`` says what the top of the code space means:

* ``"none"``  every code is finite (OCP FP4/FP6, and our default below 8 bits);
* ``"fn"``    only ``S.1..1.1..1`` is NaN (OCP FP8 E4M3, ``float8_e4m3fn``);
* ``"ieee"``  exponent all-ones is ``±inf`` (``m == 0``) or NaN (OCP FP8 E5M2).

The default bias is ``2^(E-1) - 1``. Codes follow the OCP bit layout, so a code viewed
as the matching ml_dtypes type decodes to the same value.
"""
from __future__ import annotations

import math

from .element import ElementFormat

SPECIALS = ("none", "fn", "ieee")


def default_specials(e: int, m: int) -> str:
    """OCP convention: sub-byte formats have no specials; 8-bit E>=5 is IEEE-like, else 'fn'."""
    if 1 + e + m < 8:
        return "none"
    return "ieee" if e >= 5 else "fn"


class MiniFloat(ElementFormat):
    """An ExMy minifloat. ``MiniFloat(2, 1)`` is OCP FP4 E2M1."""

    def __init__(self, e: int, m: int, *, bias: int | None = None, specials: str | None = None,
                 name: str | None = None, description: str = ""):
        if not isinstance(e, int) or not isinstance(m, int) or e < 1 or m < 0:
            raise ValueError(f"exponent bits e={e!r} must be an int >= 1 and mantissa bits m={m!r} an int >= 0")
        if 1 + e + m > 8:
            raise ValueError(f"e={e}, m={m} gives {1 + e + m} bits; element formats hold at most 8 bits")
        specials = specials or default_specials(e, m)
        if specials not in SPECIALS:
            raise ValueError(f"specials={specials!r}; choose one of {', '.join(SPECIALS)}")
        self.e, self.m = e, m
        self.bias = (1 << (e - 1)) - 1 if bias is None else bias
        self.specials = specials
        bits = 1 + e + m
        table = [self._value(code) for code in range(1 << bits)]
        super().__init__(name=name or f"fp{bits}_e{e}m{m}", bits=bits, table=table, kind="fp",
                         description=description or f"E{e}M{m}, bias {self.bias}, specials {specials}")

    def _value(self, code: int) -> float:
        e, m = self.e, self.m
        sign = -1.0 if code >> (e + m) & 1 else 1.0
        ef = code >> m & ((1 << e) - 1)
        mf = code & ((1 << m) - 1)
        top = (1 << e) - 1
        if self.specials == "ieee" and ef == top:
            return sign * math.inf if mf == 0 else math.nan
        if self.specials == "fn" and ef == top and mf == (1 << m) - 1:
            return math.nan
        if ef == 0:
            return sign * math.ldexp(mf, 1 - self.bias - m)
        return sign * math.ldexp((1 << m) + mf, ef - self.bias - m)

    @property
    def emax(self) -> int:
        """Unbiased exponent of the largest normal (the MX spec's ``emax_elem``)."""
        return math.frexp(self.max)[1] - 1
