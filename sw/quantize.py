"""``sw.quantize``: one entry point for every element and group format.

``fmt`` is either an element format from :mod:`sw.formats` (absmax scale per group;
zero point per group for ``*_asym``) or a group format:

==============  =====================================================================
``bitmod4``     per group the FP4 BitMoD variant (ER+, ER-, EA+, EA-) with the lowest MSE
``bitmod3``     the same over the FP3 variants; ties go to the earlier variant
``mxfp4``       OCP MX: block 32, E8M0 shared scale, E2M1 elements
``mxfp6_e2m3``  ... E2M3 elements;  ``mxfp6_e3m2``: E3M2;  ``mxfp8_e4m3``: E4M3
``mxint8``      ... 8-bit symmetric integer elements ``k/64``, ``|k| <= 127``
``nvfp4``       block 16, E4M3 block scale, fp32 tensor scale, E2M1 elements
==============  =====================================================================

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

import torch

from . import formats as F
from .checks import as_float_tensor, first_position
from .formats import AsymmetricInt, ElementFormat, check_rounding, get_scale_format
from .quantized import QuantizedTensor, groups_to_meta, to_groups, from_groups


class _Default(int):
    def __repr__(self) -> str:
        return "128"


#: Sentinel default for ``group_size``: 128, or the block size a group format fixes.
DEFAULT_GROUP_SIZE = _Default(128)


def group_format_names() -> list[str]:
    from . import bitmod, mx, nvfp4
    return [*bitmod.FAMILIES, *mx.MX_FORMATS, *nvfp4.NVFP4_FORMATS]


def quantize(w, fmt: str, group_size: int | None = DEFAULT_GROUP_SIZE, *, scale_format: str | None = None,
             rounding: str = "nearest_even", axis: int = -1, mx_scale_rule: str = "floor",
             tensor_scale: bool = True) -> QuantizedTensor:
    """Quantize ``w`` to ``fmt``; groups of ``group_size`` run along ``axis``.

    Parameters
    ----------
    w: float16/bfloat16/float32 tensor (NaN is an error; ``±inf`` saturates).
    fmt: an element format name (``sw.formats.names()``) or a group format name
        (``sw.quantize.group_format_names()``).
    group_size: elements per scale along ``axis``; ``None`` means one scale per output
        channel (the whole axis). Must divide the axis length. MX formats fix 32 and
        NVFP4 16 (passing another value is an error).
    scale_format: ``fp16`` (default), ``bf16``, ``e8m0``, ``e4m3`` or ``fp32``. MX
        formats use ``e8m0`` and NVFP4 ``e4m3`` (+ an fp32 tensor scale).
    rounding: element tie rule (``sw.formats.ROUNDINGS``).
    mx_scale_rule: MX shared-exponent rule, ``floor`` (OCP spec) or ``rceil``.
    tensor_scale: NVFP4 only: use the two-level scheme with an fp32 tensor scale.
    """
    from . import bitmod, mx, nvfp4

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

    if fmt in mx.MX_FORMATS or fmt in nvfp4.NVFP4_FORMATS:
        block = mx.BLOCK if fmt in mx.MX_FORMATS else nvfp4.BLOCK
        fixed_scale = "e8m0" if fmt in mx.MX_FORMATS else "e4m3"
        if group_size is not DEFAULT_GROUP_SIZE and group_size != block:
            raise ValueError(f"group_size={group_size} is not allowed for {fmt}: its block size is fixed at {block}")
        if scale_format not in (None, fixed_scale):
            raise ValueError(f"scale_format={scale_format!r} is not allowed for {fmt}: it uses {fixed_scale}")
        g = _check_group(block, k, axis)
        if fmt in mx.MX_FORMATS:
            return mx.quantize_mx(x, fmt, axis, rounding, mx_scale_rule)
        return nvfp4.quantize_nvfp4(x, fmt, axis, rounding, tensor_scale)

    g = _check_group(k if group_size is None else group_size, k, axis)
    scale_format = scale_format or "fp16"
    get_scale_format(scale_format)
    if fmt in bitmod.FAMILIES:
        return bitmod.quantize_bitmod(x, fmt, g, axis, scale_format, rounding)
    try:
        element = F.get(fmt)
    except ValueError:
        raise ValueError(f"unknown format {fmt!r}; known element formats: {', '.join(F.names())}; group formats: "
                         f"{', '.join(group_format_names())}; any ExMy minifloat as 'fpN_eXmY'") from None
    if element.kind == "scale":
        raise ValueError(f"fmt={fmt!r} is a scale format, not an element format")
    if isinstance(element, AsymmetricInt):
        return quantize_asymmetric(x, element, fmt, g, axis, scale_format, rounding)
    return quantize_absmax(x, element, fmt, g, axis, scale_format, rounding)


def variants_for(fmt: str) -> tuple[ElementFormat, ...]:
    """The element format(s) behind a format name (BitMoD: the four variants in selector order)."""
    from . import bitmod, mx, nvfp4
    if fmt in bitmod.FAMILIES:
        return tuple(F.bitmod_variants(bitmod.FAMILIES[fmt]))
    if fmt in mx.MX_FORMATS:
        return (mx.element_format(fmt),)
    if fmt in nvfp4.NVFP4_FORMATS:
        return (F.get(nvfp4.NVFP4_FORMATS[fmt]),)
    return (F.get(fmt),)


def _check_group(group_size, k: int, axis: int) -> int:
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size <= 0:
        raise ValueError(f"group_size={group_size!r} must be a positive int or None")
    if k % group_size:
        raise ValueError(f"group_size={group_size} does not divide the length {k} of axis {axis}; "
                         f"pad the tensor or choose a divisor of {k}")
    return int(group_size)


# ----------------------------------------------------------------------------- helpers
def finite_amax(xg: torch.Tensor) -> torch.Tensor:
    """Per-group max |x| over the finite elements, with the infinite-only check."""
    inf = torch.isinf(xg)
    amax = torch.where(inf, 0.0, xg.abs()).amax(-1)
    if bool(inf.any()):
        bad = inf.any(-1) & (amax == 0)
        if bool(bad.any()):
            raise ValueError(f"group {first_position(bad)} (in [..., group] order) has no finite non-zero "
                             f"element but contains inf: no scale can be derived for it")
    return amax


def round_scale(s: torch.Tensor, scale_format: str) -> torch.Tensor:
    """Round float32 scales to ``scale_format``; error where they overflow it."""
    sf = get_scale_format(scale_format)
    over = s > sf.max
    if bool(over.any()):
        pos = first_position(over)
        raise ValueError(f"scale {float(s[pos]):.6g} of group {pos} (in [..., group] order) exceeds the "
                         f"largest {scale_format} value {sf.max:g}; use a wider scale_format (bf16 or fp32)")
    return sf.round(s)


def encode_scaled(element: ElementFormat, xg: torch.Tensor, s: torch.Tensor, rounding: str,
                  offset: torch.Tensor | None = None) -> torch.Tensor:
    """Codes of ``xg / s (+ offset)``, code of 0 wherever ``s == 0``."""
    live = s > 0
    y = xg / torch.where(live, s, 1.0).unsqueeze(-1)
    if offset is not None:
        y = y + offset.unsqueeze(-1)
    codes = element._encode_f32(y, rounding)
    zero = int(element.grid_codes[(element.values == 0).nonzero()[0, 0]])
    return torch.where(live.unsqueeze(-1), codes, torch.tensor(zero, dtype=torch.uint8))


def quantize_absmax(x, element, name, g, axis, scale_format, rounding) -> QuantizedTensor:
    xg = to_groups(x, axis, g)
    s = round_scale(finite_amax(xg) / element.qmax, scale_format)
    codes = encode_scaled(element, xg, s, rounding)
    return QuantizedTensor(format=name, variants=(element,), codes=from_groups(codes, axis),
                           scales=groups_to_meta(s, axis), group_size=g, axis=axis,
                           scale_format=scale_format, rounding=rounding)


def quantize_asymmetric(x, element, name, g, axis, scale_format, rounding) -> QuantizedTensor:
    """Affine INT: range [min(x, 0), max(x, 0)] onto codes 0..2^b-1, integer zero point.

    The range always includes 0 so that 0 is exactly representable (GPTQ's rule).
    """
    xg = to_groups(x, axis, g)
    finite_amax(xg)   # raises for a group whose only non-zero elements are infinite
    inf = torch.isinf(xg)
    lo = torch.where(inf, 0.0, xg).amin(-1).clamp(max=0)
    hi = torch.where(inf, 0.0, xg).amax(-1).clamp(min=0)
    top = float((1 << element.bits) - 1)
    s = round_scale((hi - lo) / top, scale_format)
    live = s > 0
    zp = torch.where(live, torch.round(-lo / torch.where(live, s, 1.0)), 0.0).clamp(0, top)
    codes = encode_scaled(element, xg, s, rounding, offset=zp)
    return QuantizedTensor(format=name, variants=(element,), codes=from_groups(codes, axis),
                           scales=groups_to_meta(s, axis), group_size=g, axis=axis,
                           scale_format=scale_format, rounding=rounding,
                           zero_points=groups_to_meta(zp.to(torch.uint8), axis))
