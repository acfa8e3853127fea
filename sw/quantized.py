"""The quantized tensor: codes plus the metadata that gives them meaning.

Layout: groups run along ``axis`` (the reduction / input-channel axis, the last axis of
an ``nn.Linear`` weight ``[out, in]``). ``codes`` has the shape of the original tensor;
``scales``, ``selectors`` and ``zero_points`` have that shape with ``axis`` shrunk to
the number of groups. Value of element ``j`` of group ``g``::

    v = variant[selector[g]].decode(code[j])          # BitMoD (else the element format)
    v = v - zero_point[g]                              # asymmetric INT
    x = v * scale[g]                                   # float32
    x = v * float32(scale[g] * tensor_scale)          # NVFP4

With fp16, bf16, e4m3 and e8m0 scales every product above is exact in float32 (a <=8-bit
significand times a <=11-bit one); with ``fp32`` scales and for NVFP4's combined scale
``float32(scale * tensor_scale)`` the product is rounded once (float32 RNE).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .formats import ElementFormat, get_scale_format


def to_groups(x: torch.Tensor, axis: int, group_size: int) -> torch.Tensor:
    """``[..., K, ...]`` (K along ``axis``) -> ``[..., n_groups, group_size]`` with ``axis`` moved last."""
    x = x.movedim(axis, -1)
    return x.reshape(*x.shape[:-1], x.shape[-1] // group_size, group_size)


def from_groups(x: torch.Tensor, axis: int) -> torch.Tensor:
    """Inverse of :func:`to_groups`."""
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1]).movedim(-1, axis)


def groups_to_meta(m: torch.Tensor, axis: int) -> torch.Tensor:
    """Per-group metadata ``[..., n_groups]`` back into the tensor's axis order."""
    return m.movedim(-1, axis)


def meta_to_groups(m: torch.Tensor, axis: int) -> torch.Tensor:
    return m.movedim(axis, -1)


@dataclass(eq=False)
class QuantizedTensor:
    """Result of :func:`sw.quantize`. See the module docstring for the value rule."""

    format: str
    variants: tuple[ElementFormat, ...]
    codes: torch.Tensor
    scales: torch.Tensor
    group_size: int
    axis: int
    scale_format: str
    rounding: str
    selectors: torch.Tensor | None = None
    zero_points: torch.Tensor | None = None
    tensor_scale: float | None = None

    @property
    def element(self) -> ElementFormat:
        """The element format (for BitMoD: the ER+ variant; see ``variants``)."""
        return self.variants[0]

    @property
    def shape(self) -> torch.Size:
        return self.codes.shape

    @property
    def n_groups(self) -> int:
        return self.scales.numel()

    @property
    def bits_per_weight(self) -> float:
        """Storage bits per weight, metadata (scale, selector, zero point, tensor scale) included."""
        meta = get_scale_format(self.scale_format).bits
        if self.selectors is not None:
            meta += 2
        if self.zero_points is not None:
            meta += self.element.bits
        bpw = self.element.bits + meta / self.group_size
        if self.tensor_scale is not None:
            bpw += 32 / self.codes.numel()
        return bpw

    def element_values(self) -> torch.Tensor:
        """Decoded element values (before zero point and scale), original layout, float32."""
        c = to_groups(self.codes.long(), self.axis, self.group_size)
        if self.selectors is not None:
            lut = torch.stack([v.decode_lut for v in self.variants])
            sel = meta_to_groups(self.selectors.long(), self.axis).unsqueeze(-1).expand_as(c)
            vals = lut[sel, c]
        else:
            vals = self.element.decode(c)
        return from_groups(vals, self.axis)

    def dequantize(self) -> torch.Tensor:
        """Float32 tensor of the represented values, in the original shape."""
        vals = to_groups(self.element_values(), self.axis, self.group_size)
        if self.zero_points is not None:
            vals = vals - meta_to_groups(self.zero_points, self.axis).unsqueeze(-1).to(torch.float32)
        s = meta_to_groups(self.scales, self.axis)
        if self.tensor_scale is not None:
            s = s * torch.tensor(self.tensor_scale, dtype=torch.float32)
        return from_groups(vals * s.unsqueeze(-1), self.axis)

    def __repr__(self) -> str:
        return (f"QuantizedTensor({self.format}, shape={tuple(self.shape)}, group_size={self.group_size}, "
                f"scale_format={self.scale_format}, bits_per_weight={self.bits_per_weight:.4f})")
