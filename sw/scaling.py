"""Per-group absmax scaling: the scale of a group, its rounding to a scale format, and the codes.

The building blocks every quantizer shares (element formats here, the group-format families in
:mod:`sw.bitmod`, :mod:`sw.mx`, :mod:`sw.nvfp4`): absmax over the finite elements, the scale rounded
to its format (an error where it overflows), codes of ``x / s`` with the element rounding, and the
two element-format quantizers (symmetric absmax and asymmetric INT).
"""
from __future__ import annotations

import torch

from .checks import first_position
from .formats import ElementFormat, get_scale_format
from .quantized import QuantizedTensor, from_groups, groups_to_meta, to_groups


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


def absmax_values(x: torch.Tensor, element: ElementFormat, g: int, axis: int, scale_format: str,
                  rounding: str) -> torch.Tensor | None:
    """``quantize_absmax(x, ...).dequantize()`` (float32) without building codes or checking them: the
    hot path of activation fake-quantization. ``x`` must be float32 and NaN-free; returns ``None`` when
    ``x`` holds ``±inf`` or a scale overflows ``scale_format`` (the caller then takes the checked path,
    which saturates or raises as :func:`quantize_absmax` does)."""
    if not bool(torch.isfinite(x).all()):
        return None
    xg = to_groups(x, axis, g)
    s = xg.abs().amax(-1) / element.qmax
    sf = get_scale_format(scale_format)
    if bool((s > sf.max).any()):
        return None
    s = sf.round(s).unsqueeze(-1)
    live = s > 0
    y = torch.where(live, xg / torch.where(live, s, 1.0), 0.0)     # +0 (not x's -0) where s == 0
    return from_groups(element._values_f32(y, rounding) * s, axis)


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
