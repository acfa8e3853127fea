"""Integer element formats.

* :class:`SymmetricInt` ``b`` bits: two's-complement codes for the levels
  ``-(2^(b-1)-1) .. 2^(b-1)-1``; the code ``2^(b-1)`` (i.e. ``-2^(b-1)``) is unused so the
  grid is symmetric and ``qmax = 2^(b-1)-1``. ``step`` scales every level (MXINT8 uses
  ``step = 2^-6``: levels ``k/64``).
* :class:`AsymmetricInt` ``b`` bits: unsigned levels ``0 .. 2^b-1``; the quantizer adds a
  per-group zero point.
"""
from __future__ import annotations

from .element import UNUSED, ElementFormat


class SymmetricInt(ElementFormat):
    def __init__(self, bits: int, *, step: float = 1.0, name: str | None = None, description: str = ""):
        if not 2 <= bits <= 8:
            raise ValueError(f"bits={bits} must be in 2..8")
        half = 1 << (bits - 1)
        table = [UNUSED if c == half else (c - (1 << bits) if c > half else c) * step for c in range(1 << bits)]
        super().__init__(name=name or f"int{bits}", bits=bits, table=table, kind="int",
                         description=description or f"two's complement, levels ±{half - 1}")
        self.step = step


class AsymmetricInt(ElementFormat):
    def __init__(self, bits: int, *, name: str | None = None, description: str = ""):
        if not 2 <= bits <= 8:
            raise ValueError(f"bits={bits} must be in 2..8")
        super().__init__(name=name or f"int{bits}_asym", bits=bits, table=[float(c) for c in range(1 << bits)],
                         kind="int", description=description or f"unsigned 0..{(1 << bits) - 1} with a zero point")
