"""OCP Microscaling (MX v1.0) formats: blocks of 32 along the reduction axis, one E8M0
shared scale ``X = 2^e`` per block, elements ``P_i`` with value ``X * P_i``.

Shared exponent (``mx_scale_rule``):

* ``floor`` (the spec's §6.3 rule, default): ``e = floor(log2(amax)) - emax_elem``; a block
  whose amax lies in the top binade above the element max saturates (spec behaviour).
* ``rceil`` (NVIDIA's hardware rule): the smallest ``e`` with ``2^e * max_elem >= amax``,
  computed exactly (no float ``log2``), so no element saturates.

``e`` is clamped to [-127, 127]; an all-zero block gets ``e = -127`` (code 0) and zero
elements. Elements are ``encode(x / 2^e)`` (exact power-of-two division) with the element
rounding (default RNE) and saturation. MXINT8 elements are ``k/64`` with ``|k| <= 127``
(microxcaling's convention; ``-128`` is never produced), ``emax_elem = 0``.
"""
from __future__ import annotations

import math

import torch

from . import formats as F
from .group_formats import GroupFormat, register
from .quantized import QuantizedTensor, from_groups, groups_to_meta, to_groups
from .scaling import encode_scaled, finite_amax

BLOCK = 32
#: MX format -> its element format (``mxint8_element`` is built here, not in the element registry).
MX_FORMATS = {
    "mxfp4": "fp4_e2m1",
    "mxfp6_e2m3": "fp6_e2m3",
    "mxfp6_e3m2": "fp6_e3m2",
    "mxfp8_e4m3": "fp8_e4m3",
    "mxfp8_e5m2": "fp8_e5m2",
    "mxint8": "mxint8_element",
}
SCALE_RULES = ("floor", "rceil")
_DESCRIPTIONS = {"mxfp4": "OCP MX: E2M1 elements, block 32, E8M0 scale (floor rule; rceil option)",
                 "mxint8": "OCP MX: INT8 elements k/64, k in -127..127, block 32, E8M0 scale"}


def element_format(fmt: str) -> F.ElementFormat:
    name = MX_FORMATS[fmt]
    if name == "mxint8_element":
        return _mxint8_element()
    return F.get(name)


_MXINT8 = None


def _mxint8_element() -> F.ElementFormat:
    global _MXINT8
    if _MXINT8 is None:
        _MXINT8 = F.SymmetricInt(8, step=2.0 ** -6, name="mxint8_element",
                                 description="MXINT8 element: k/64, |k| <= 127")
    return _MXINT8


def emax_elem(element: F.ElementFormat) -> int:
    """Exponent of the element's largest normal (E2M1: 2, E3M2: 4, E4M3: 8, INT8: 0)."""
    return math.frexp(element.qmax)[1] - 1


def shared_exponent(amax: torch.Tensor, element: F.ElementFormat, rule: str) -> torch.Tensor:
    """Unbiased E8M0 exponent per block (int64), clamped to [-127, 127]."""
    if rule not in SCALE_RULES:
        raise ValueError(f"mx_scale_rule={rule!r}; choose one of {', '.join(SCALE_RULES)}")
    live = amax > 0
    if rule == "floor":
        e = torch.frexp(torch.where(live, amax, 1.0)).exponent.to(torch.int64) - 1 - emax_elem(element)
    else:
        a = amax.to(torch.float64)
        q = element.qmax
        e = torch.ceil(torch.log2(torch.where(live, a, 1.0) / q)).to(torch.int64)
        # exact correction of the float log2: smallest e with 2^e * q >= amax
        qs = torch.full(e.shape, q, dtype=torch.float64)
        e = torch.where(torch.ldexp(qs, e - 1) >= a, e - 1, e)
        e = torch.where(torch.ldexp(qs, e) < a, e + 1, e)
    return torch.where(live, e, -127).clamp(-127, 127)


def quantize_mx(x, fmt, g, axis, scale_format, rounding, options) -> QuantizedTensor:
    """MX kernel of the registry (``g`` is the block, ``scale_format`` e8m0; ``options["mx_scale_rule"]``)."""
    rule = options.get("mx_scale_rule", "floor")
    element = element_format(fmt)
    xg = to_groups(x, axis, BLOCK)
    e = shared_exponent(finite_amax(xg), element, rule)
    s = torch.ldexp(torch.ones_like(e, dtype=torch.float32), e.to(torch.int32))
    codes = encode_scaled(element, xg, s, rounding)
    return QuantizedTensor(format=fmt, variants=(element,), codes=from_groups(codes, axis),
                           scales=groups_to_meta(s, axis), group_size=BLOCK, axis=axis,
                           scale_format="e8m0", rounding=rounding)


for _name, _element in MX_FORMATS.items():
    _desc = _DESCRIPTIONS.get(_name, f"OCP MX: {_element.split('_')[-1].upper()} elements, block 32, E8M0 scale")
    register(GroupFormat(_name, "mx", _desc, variants=lambda n=_name: (element_format(n),), kernel=quantize_mx,
                         block=BLOCK, scale_format="e8m0"))
