"""``sw.quantize``: one entry point for every element and group format.

``fmt`` is either an element format from :mod:`sw.formats` (absmax scale per group;
zero point per group for ``*_asym``) or a group format from :mod:`sw.group_formats` (BitMoD
mixtures, OCP MX, NVFP4; ``python -m sw.catalog`` lists them all).
:func:`format_spec` describes any format name the same way for every consumer.

Absmax scale of a group: ``s = amax / qmax`` in float32, rounded to ``scale_format``;
codes are ``encode(x / s)`` in float32 with the element rounding ``rounding`` and
saturation. So ``dequantize`` gives exactly what the hardware sees, and each code is
optimal for the *stored* scale. Edge cases (documented behaviour):

* ``±inf`` elements saturate to the largest code of their sign; the group scale is
  computed from the finite elements (a group whose only non-zero elements are infinite
  is an error);
* a group whose stored scale is zero (all-zero group, or a scale underflowing the scale
  format) gets code 0 (value 0) everywhere;
* a scale above the scale format's maximum is an error naming the group, not a silent
  saturation: pick a wider ``scale_format``.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import formats as F
from . import group_formats as GF
from .checks import as_float_tensor
from .formats import AsymmetricInt, ElementFormat, check_rounding, get_scale_format
from .quantized import QuantizedTensor
from .scaling import quantize_absmax, quantize_asymmetric


class _Default(int):
    def __repr__(self) -> str:
        return "128"


#: Sentinel default for ``group_size``: 128, or the block size a group format fixes.
DEFAULT_GROUP_SIZE = _Default(128)


def group_format_names() -> list[str]:
    """Every registered group format (:func:`sw.group_formats.names`)."""
    return GF.names()


@dataclass(frozen=True)
class FormatSpec:
    """What a format name means, for every consumer: element or group format alike.

    ``kind`` is ``"element"``, ``"asym"`` (asymmetric INT, a zero point per group) or the group
    format's family (``"bitmod"``, ``"mx"``, ``"nvfp4"``). ``block``/``scale_format`` are what the
    format fixes (``None``: the caller's choice, default 128 and ``fp16``).
    """
    name: str
    kind: str
    variants: tuple[ElementFormat, ...]
    block: int | None = None
    scale_format: str | None = None
    selector_bits: int = 0
    zero_point_bits: int = 0
    tensor_scale_bits: int = 0

    @property
    def element(self) -> ElementFormat:
        return self.variants[0]

    @property
    def bits(self) -> int:
        """Element bits."""
        return self.element.bits

    def bits_per_weight(self, group_size: int | None = 128, scale_format: str | None = None, *,
                        in_features: int | None = None, numel: int | None = None) -> float:
        """Exact storage bits per weight, metadata included (as ``QuantizedTensor.bits_per_weight``).

        ``group_size=None`` means one group per output channel and needs ``in_features``; a fixed
        block and scale format override ``group_size``/``scale_format``. The tensor scale (NVFP4)
        adds ``tensor_scale_bits / numel`` when ``numel`` is given.
        """
        g = self.block if self.block is not None else (in_features if group_size is None else group_size)
        if isinstance(g, bool) or not isinstance(g, int) or g <= 0:
            raise ValueError(f"group_size={group_size!r} must be a positive int (or None with in_features given)")
        sf = self.scale_format or scale_format or "fp16"
        meta = get_scale_format(sf).bits + self.selector_bits + self.zero_point_bits
        extra = self.tensor_scale_bits / numel if numel and self.tensor_scale_bits else 0.0
        return self.bits + meta / g + extra


def _unknown(fmt, name: str) -> ValueError:
    return ValueError(f"{name}={fmt!r} is not a known format; element formats: {', '.join(F.names())}; "
                      f"group formats: {', '.join(GF.names())}; any ExMy minifloat as 'fpN_eXmY'")


def format_spec(fmt: str, name: str = "fmt") -> FormatSpec:
    """The :class:`FormatSpec` of a format name; errors name the parameter ``name``."""
    if not isinstance(fmt, str):
        raise TypeError(f"{name} must be a format name (str), got {type(fmt).__name__}")
    gf = GF.find(fmt)
    if gf is not None:
        return FormatSpec(fmt, gf.family, tuple(gf.variants()), gf.block, gf.scale_format,
                          gf.selector_bits, 0, gf.tensor_scale_bits)
    try:
        element = F.get(fmt)
    except ValueError:
        raise _unknown(fmt, name) from None
    if element.kind == "scale":
        raise ValueError(f"{name}={fmt!r} is a scale format, not an element format")
    if isinstance(element, AsymmetricInt):
        return FormatSpec(fmt, "asym", (element,), zero_point_bits=element.bits)
    return FormatSpec(fmt, "element", (element,))


def check_format(fmt, name: str = "fmt") -> str:
    """Return ``fmt`` if it names a registered element or group format; else raise naming ``name``."""
    format_spec(fmt, name)
    return fmt


def quantize(w, fmt: str, group_size: int | None = DEFAULT_GROUP_SIZE, *, scale_format: str | None = None,
             rounding: str = "nearest_even", axis: int = -1, mx_scale_rule: str = "floor",
             tensor_scale: bool = True) -> QuantizedTensor:
    """Quantize ``w`` to ``fmt``; groups of ``group_size`` run along ``axis``.

    Parameters
    ----------
    w: float16/bfloat16/float32 tensor (NaN is an error; ``±inf`` saturates).
    fmt: an element format name (``sw.formats.names()``) or a group format name
        (``sw.group_formats.names()``).
    group_size: elements per scale along ``axis``; ``None`` means one scale per output
        channel (the whole axis). Must divide the axis length. MX formats fix 32 and
        NVFP4 16 (passing another value is an error).
    scale_format: ``fp16`` (default), ``bf16``, ``e8m0``, ``e4m3`` or ``fp32``. MX
        formats use ``e8m0`` and NVFP4 ``e4m3`` (+ an fp32 tensor scale).
    rounding: element tie rule (``sw.formats.ROUNDINGS``).
    mx_scale_rule: MX shared-exponent rule, ``floor`` (OCP spec) or ``rceil``.
    tensor_scale: NVFP4 only: use the two-level scheme with an fp32 tensor scale.
    """
    x = as_float_tensor(w, "w")
    check_rounding(rounding)
    if not isinstance(fmt, str):
        raise TypeError(f"fmt must be a format name (str), got {type(fmt).__name__}")
    if x.dim() == 0:
        raise ValueError("w must have at least one dimension (got a 0-d tensor)")
    if not -x.dim() <= axis < x.dim():
        raise ValueError(f"axis={axis} is out of range for w with {x.dim()} dimension(s)")
    axis = axis % x.dim()
    k = x.shape[axis]

    gf = GF.find(fmt)
    if gf is not None and gf.block is not None:
        if group_size is not DEFAULT_GROUP_SIZE and group_size != gf.block:
            raise ValueError(f"group_size={group_size} is not allowed for {fmt}: its block size is fixed at {gf.block}")
        group_size = gf.block
    if gf is not None and gf.scale_format is not None:
        if scale_format not in (None, gf.scale_format):
            raise ValueError(f"scale_format={scale_format!r} is not allowed for {fmt}: it uses {gf.scale_format}")
    g = _check_group(k if group_size is None else group_size, k, axis)
    scale_format = scale_format or (gf.scale_format if gf is not None and gf.scale_format else "fp16")
    get_scale_format(scale_format)
    if gf is not None:
        return gf.kernel(x, fmt, g, axis, scale_format, rounding,
                         {"mx_scale_rule": mx_scale_rule, "tensor_scale": tensor_scale})
    try:
        element = F.get(fmt)
    except ValueError:
        raise ValueError(f"unknown format {fmt!r}; known element formats: {', '.join(F.names())}; group formats: "
                         f"{', '.join(GF.names())}; any ExMy minifloat as 'fpN_eXmY'") from None
    if element.kind == "scale":
        raise ValueError(f"fmt={fmt!r} is a scale format, not an element format")
    if isinstance(element, AsymmetricInt):
        return quantize_asymmetric(x, element, fmt, g, axis, scale_format, rounding)
    return quantize_absmax(x, element, fmt, g, axis, scale_format, rounding)


def variants_for(fmt: str) -> tuple[ElementFormat, ...]:
    """The element format(s) behind a format name (BitMoD: the four variants in selector order)."""
    gf = GF.find(fmt)
    return tuple(gf.variants()) if gf is not None else (F.get(fmt),)


def _check_group(group_size, k: int, axis: int) -> int:
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size <= 0:
        raise ValueError(f"group_size={group_size!r} must be a positive int or None")
    if k % group_size:
        raise ValueError(f"group_size={group_size} does not divide the length {k} of axis {axis}; "
                         f"pad the tensor or choose a divisor of {k}")
    return int(group_size)
