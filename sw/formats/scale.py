"""Scale formats: how a per-group (or per-channel, per-block) scale is stored.

=========  ====  =====================================================================
name       bits  rounding of a float32 scale ``s``
=========  ====  =====================================================================
``fp32``   32    exact (reference; not a hardware format)
``fp16``   16    IEEE binary16, round-half-even (``torch`` cast)
``bf16``   16    bfloat16, round-half-even (``torch`` cast)
``e4m3``   8     OCP FP8 E4M3, round-half-even, subnormals kept
``e8m0``   8     OCP E8M0 power of two ``2^(c-127)``, nearest in the linear domain with
                 ties up (ml_dtypes ``float8_e8m0fnu``, except that ml_dtypes gives code 1
                 for float32 subnormals in (2^-127, 1.5*2^-127)); code 255 is NaN
=========  ====  =====================================================================

:meth:`ScaleFormat.to_bits` gives the raw stored bits (the memory image),
:meth:`ScaleFormat.from_bits` inverts it.
"""
from __future__ import annotations

import math

import torch

from .element import ElementFormat
from .minifloat import MiniFloat


def e8m0() -> ElementFormat:
    table = [math.ldexp(1.0, c - 127) for c in range(255)] + [math.nan]
    return ElementFormat(name="e8m0", bits=8, table=table, kind="scale", default_rounding="nearest_up",
                         description="OCP MX shared scale: 2^(code-127), code 255 = NaN")


class ScaleFormat:
    """A storage format for scales. Instances live in :data:`SCALE_FORMATS`."""

    def __init__(self, name: str, bits: int, *, dtype: torch.dtype | None = None,
                 element: ElementFormat | None = None):
        self.name, self.bits, self._dtype, self._element = name, bits, dtype, element
        if element is not None:
            self.max = element.max
            self.min_positive = element.min_positive
        else:
            info = torch.finfo(dtype)
            self.max = float(info.max)
            self.min_positive = float(info.smallest_normal) * (2.0 ** -(info.bits - 1 - _exp_bits(dtype)))

    def round(self, s: torch.Tensor) -> torch.Tensor:
        """Round non-negative float32 scales to this format (float32 result)."""
        if self._element is not None:
            return self._element.decode_lut[self._element._encode_f32(s, self._element.default_rounding).long()]
        return s.to(self._dtype).to(torch.float32)

    def to_bits(self, s: torch.Tensor) -> torch.Tensor:
        """Raw stored bits of scales already in this format (int64, ``bits`` wide)."""
        if self._element is not None:
            return self._element._encode_f32(s.to(torch.float32), self._element.default_rounding).to(torch.int64)
        view = {32: torch.int32, 16: torch.int16}[self.bits]
        return s.to(self._dtype).view(view).to(torch.int64) & ((1 << self.bits) - 1)

    def from_bits(self, b: torch.Tensor) -> torch.Tensor:
        b = b.to(torch.int64)
        if self._element is not None:
            return self._element.decode(b)
        view = {32: torch.int32, 16: torch.int16}[self.bits]
        signed = torch.where(b >= 1 << (self.bits - 1), b - (1 << self.bits), b)
        return signed.to(view).view(self._dtype).to(torch.float32)

    def __repr__(self) -> str:
        return f"<ScaleFormat {self.name}: {self.bits} bits, max {self.max:g}>"


def _exp_bits(dtype: torch.dtype) -> int:
    return {torch.float32: 8, torch.float16: 5, torch.bfloat16: 8}[dtype]


def _build() -> dict[str, ScaleFormat]:
    return {
        "fp32": ScaleFormat("fp32", 32, dtype=torch.float32),
        "fp16": ScaleFormat("fp16", 16, dtype=torch.float16),
        "bf16": ScaleFormat("bf16", 16, dtype=torch.bfloat16),
        "e4m3": ScaleFormat("e4m3", 8, element=MiniFloat(4, 3, name="fp8_e4m3")),
        "e8m0": ScaleFormat("e8m0", 8, element=e8m0()),
    }


SCALE_FORMATS: dict[str, ScaleFormat] = _build()


def get_scale_format(name: str) -> ScaleFormat:
    if isinstance(name, ScaleFormat):
        return name
    try:
        return SCALE_FORMATS[name]
    except (KeyError, TypeError):
        raise ValueError(f"scale_format={name!r} is not a scale format; known: {', '.join(SCALE_FORMATS)}") from None
