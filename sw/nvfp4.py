"""NVFP4: E2M1 elements in blocks of 16, an E4M3 scale per block, an fp32 tensor scale.

Two-level scheme (default, ``tensor_scale=True``; bit-exact with torchao 0.18's
``nvfp4`` when given a per-tensor scale):

* ``s_t = amax(tensor) / (448 * 6)`` in fp32 (1.0 for an all-zero tensor);
* ``s_b = E4M3_RNE(clamp((amax(block) / 6) / s_t, 2^-6, 448))``: block scales are floored
  at E4M3's smallest normal, so an all-zero block gets ``2^-6`` and zero elements;
* elements ``E2M1_RNE(x * ((1 / s_t) / s_b))`` with saturation (for a tensor so tiny that
  ``1 / s_t`` overflows float32, ``x / (s_t * s_b)`` computed in float64);
* value ``e * fp32(s_b * s_t)``.

Single-level (``tensor_scale=False``): ``s_b = E4M3_RNE(amax(block) / 6)`` with E4M3
subnormals allowed, a zero block gets scale 0, and a block scale above 448 is an error.
"""
from __future__ import annotations

import torch

from . import formats as F
from .group_formats import GroupFormat, register
from .quantized import QuantizedTensor, from_groups, groups_to_meta, to_groups
from .scaling import encode_scaled, finite_amax, round_scale

BLOCK = 16
NVFP4_FORMATS = {"nvfp4": "fp4_e2m1"}
E4M3_MAX = 448.0
E4M3_MIN_NORMAL = 2.0 ** -6


def quantize_nvfp4(x, fmt, g, axis, scale_format, rounding, options) -> QuantizedTensor:
    """NVFP4 kernel of the registry (``g`` is the block 16; ``options["tensor_scale"]``)."""
    tensor_scale = options.get("tensor_scale", True)
    element = F.get(NVFP4_FORMATS[fmt])
    xg = to_groups(x, axis, BLOCK)
    amax_b = finite_amax(xg)
    e4m3 = F.get_scale_format("e4m3")
    if tensor_scale:
        amax_t = amax_b.max()
        s_t = (amax_t / (E4M3_MAX * element.qmax)) if float(amax_t) > 0 else torch.tensor(1.0)
        s_t = s_t.to(torch.float32)
        s_b = e4m3.round(((amax_b / element.qmax) / s_t).clamp(E4M3_MIN_NORMAL, E4M3_MAX))
        inv = 1.0 / s_t
        if bool(torch.isfinite(inv)):
            y = xg * ((inv / s_b).unsqueeze(-1))          # torchao's exact operation order
        else:   # s_t is a float32 subnormal whose reciprocal overflows: divide in float64 instead
            y = (xg.double() / (s_t.double() * s_b.double()).unsqueeze(-1)).float()
        codes = element._encode_f32(y, rounding)
        ts = float(s_t)
    else:
        s_b = round_scale(amax_b / element.qmax, "e4m3")
        codes = encode_scaled(element, xg, s_b, rounding)
        ts = None
    return QuantizedTensor(format=fmt, variants=(element,), codes=from_groups(codes, axis),
                           scales=groups_to_meta(s_b, axis), group_size=BLOCK, axis=axis,
                           scale_format="e4m3", rounding=rounding, tensor_scale=ts)


for _name, _element in NVFP4_FORMATS.items():
    register(GroupFormat(_name, "nvfp4", "E2M1 elements, block 16, E4M3 block scale + fp32 tensor scale",
                         variants=lambda e=_element: (F.get(e),), kernel=quantize_nvfp4, block=BLOCK,
                         scale_format="e4m3", tensor_scale_bits=32))
