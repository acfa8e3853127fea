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

import functools
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
            lut = variant_luts(tuple(self.variants))
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

    def requantize(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """``x`` on this tensor's grid: the values of :meth:`recode`'s codes (float32, ``x``'s shape).

        ``requantize(original)`` equals :meth:`dequantize` (the same codes). For error-feedback
        rounding (GPTQ) the values change between the choice of the metadata and of the codes.
        """
        return self.decode_at(self.recode(x, start), start)

    def _positions(self, x: torch.Tensor, start: int) -> torch.Tensor:
        nd = self.codes.dim()
        if self.axis != nd - 1:
            raise ValueError(f"requantize: the group axis is {self.axis}; it must be the last axis ({nd - 1})")
        if not isinstance(x, torch.Tensor) or x.dim() != nd or tuple(x.shape[:-1]) != tuple(self.codes.shape[:-1]):
            raise ValueError(f"requantize: x must have shape {tuple(self.codes.shape[:-1])} + (n,), got "
                             f"{tuple(getattr(x, 'shape', ()))}")
        n, k = x.shape[-1], self.codes.shape[-1]
        if not isinstance(start, int) or start < 0 or start + n > k:
            raise ValueError(f"requantize: start={start!r} with {n} positions runs past the {k} of the group axis")
        return torch.arange(start, start + n) // self.group_size

    def recode(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Codes (uint8) of ``x`` under the scales, zero points and BitMoD variants already fixed,
        chosen again with ``rounding``. ``x`` (the shape of ``codes`` but for its last axis) holds
        positions ``start .. start + x.shape[-1] - 1`` of the group axis, which must be the last; each
        takes the metadata of the group it falls in."""
        gi = self._positions(x, start)
        s = self.scales[..., gi].to(torch.float32)
        y = x.to(torch.float32)
        if self.tensor_scale is not None:                 # NVFP4's two-level order of operations
            y = y * ((1.0 / torch.tensor(self.tensor_scale, dtype=torch.float32)) / s)
        else:
            y = torch.where(s > 0, y / torch.where(s > 0, s, 1.0), 0.0)
        if self.zero_points is not None:
            y = y + self.zero_points[..., gi].to(torch.float32)
        if self.selectors is None:
            codes = self.element._encode_f32(y, self.rounding)
        else:
            codes = _encode_selected(self.variants, self.selectors[..., gi].long(), y, self.rounding)
        if self.tensor_scale is None:       # a group of scale 0 holds the code of 0 (as sw.scaling)
            dead = ~(s > 0)
            if bool(dead.any()):
                zero = int(self.element.grid_codes[(self.element.values == 0).nonzero()[0, 0]])
                codes = torch.where(dead, torch.tensor(zero, dtype=torch.uint8), codes)
        return codes

    def decode_at(self, codes: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Values (float32) of ``codes`` at positions ``start ..`` of the group axis (see :meth:`recode`)."""
        gi = self._positions(codes, start)
        c = codes.long()
        if self.selectors is None:
            vals = self.element.decode(c)
        else:
            lut = variant_luts(tuple(self.variants))
            vals = lut[self.selectors[..., gi].long(), c]
        if self.zero_points is not None:
            vals = vals - self.zero_points[..., gi].to(torch.float32)
        s = self.scales[..., gi].to(torch.float32)
        if self.tensor_scale is not None:
            s = s * torch.tensor(self.tensor_scale, dtype=torch.float32)
        return vals * s

    def __repr__(self) -> str:
        return (f"QuantizedTensor({self.format}, shape={tuple(self.shape)}, group_size={self.group_size}, "
                f"scale_format={self.scale_format}, bits_per_weight={self.bits_per_weight:.4f})")


@functools.lru_cache(maxsize=None)
def variant_luts(variants: tuple) -> torch.Tensor:
    """The variants' decode tables stacked, ``[len(variants), 2**bits]`` (float32), built once per tuple."""
    return torch.stack([v.decode_lut for v in variants])


@functools.lru_cache(maxsize=None)
def _variant_tables(variants: tuple, rounding: str):
    """The variants' encoder tables stacked, one row per variant, padded to the longest (midpoints with
    +inf, so a padded slot is never chosen), or None when one variant is not a midpoint grid."""
    if any(v._int_lo is not None or v.midpoints.numel() == 0 for v in variants):
        return None
    m = max(v.midpoints.numel() for v in variants)
    mids = torch.full((len(variants), m), float("inf"))
    tie = torch.zeros(len(variants), m, dtype=torch.bool)
    codes = torch.zeros(len(variants), m + 1, dtype=torch.uint8)
    vals = torch.zeros(len(variants), m + 1)
    for i, v in enumerate(variants):
        n = v.midpoints.numel()
        mids[i, :n], tie[i, :n] = v.midpoints, v._tie_up[rounding]
        codes[i, :n + 1], vals[i, :n + 1] = v.grid_codes, v.values
    last = torch.tensor([v.midpoints.numel() - 1 for v in variants])
    neg0 = torch.tensor([-1 if v.neg_zero_code is None else v.neg_zero_code for v in variants])
    return mids, tie, codes, vals, last, neg0


def _encode_selected(variants: tuple, sel: torch.Tensor, y: torch.Tensor, rounding: str) -> torch.Tensor:
    """Codes of ``y`` (float32), each element under ``variants[sel]``: the codes each variant's own
    encoder gives (same midpoints, tie rules and signed zero), in one batched search over per-element
    midpoint rows instead of one encode per variant (GPTQ's column loop calls this 4x less work)."""
    tab = _variant_tables(tuple(variants), rounding)
    if tab is None or y.numel() > 65536:       # large tensors: the per-variant encoders (chunked, threaded)
        codes = torch.zeros(y.shape, dtype=torch.uint8)
        for i, v in enumerate(variants):
            codes = torch.where(sel == i, v._encode_f32(y, rounding), codes)
        return codes
    mids, tie_up, gcodes, vals, last, neg0 = tab
    shape = y.shape
    x = y.reshape(-1, 1).contiguous()
    s = sel.expand(shape).reshape(-1)
    rows = mids[s]
    idx = torch.searchsorted(rows, x, side="left")
    at = torch.minimum(idx, last[s].unsqueeze(1))
    idx = idx + ((rows.gather(1, at) == x) & tie_up[s].gather(1, at))
    codes = gcodes[s].gather(1, idx)[:, 0]
    nz = neg0[s]
    is0 = (vals[s].gather(1, idx)[:, 0] == 0) & torch.signbit(x[:, 0]) & (nz >= 0)
    codes = torch.where(is0, nz.clamp_min(0).to(torch.uint8), codes)
    return codes.reshape(shape)
