"""The learnable weight quantizer shared by AdaQuant and QAT: :class:`LearnedQuantizer`.

A weight ``W`` ``[out, in]`` quantized to a registered format, with two learnable parameters
(AdaQuant calibrates them per layer on an output MSE, :mod:`sw.eval.adaquant`; QAT trains them by
distillation, :mod:`sw.eval.qat`):

* the weight, as a continuous perturbation of the RTN starting point in units of the group's step:
  ``W' = W + u * D`` (``u`` = the group's RTN dequantization scale, ``D`` starts at 0), quantized in the
  forward with a straight-through estimator (STE);
* the per-group scale, as ``s = s0 * exp(t)`` (``t`` starts at 0), rounded to the format's scale
  format in the forward (STE), so the deployed scale is a real ``fp16`` / ``bf16`` / ``e4m3`` value.

:class:`LearnedQuantizer` is that quantizer. Its forward at initialisation equals
``sw.quantize(w, ...).dequantize()`` bit for bit (tested for several formats), because it performs
the same float32 operations: ``y = w / s (+ zp)``, grid rounding with the element's own encoder
(tie rule, saturation), ``(v - zp) * s``. STE (defined here, tested exactly): the gradient of the
grid rounding w.r.t. ``y`` is 1 where ``lo <= y <= hi`` (``lo``/``hi`` = the group's smallest and
largest grid value) and 0 outside (clipped elements: they no longer move the weight, and their
scale gradient is the clipped grid value, as in LSQ). So with ``y = w/s`` inside the range,
``dQ/dw = 1`` and ``dQ/ds = round(y) - y``.

Per format family:

* element formats (int, asymmetric int, minifloats, flint4, single BitMoD variants): weight + scale;
  the asymmetric int's integer zero point is kept at its RTN value (the weights and the scale move
  around it; a learned zero point would have to be rounded to an integer anyway);
* ``bitmod3`` / ``bitmod4``: the per-group variant is chosen by ``sw.quantize`` at init (lowest RTN
  MSE) and then kept fixed; the scale is learned for that variant's grid;
* ``nvfp4``: the E4M3 block scale is learned (rounded to E4M3, clamped to [2^-6, 448] as NVFP4 does);
  the fp32 tensor scale stays at its RTN value;
* MX (``mxfp4``, ``mxfp6_*``, ``mxfp8_*``, ``mxint8``): **weights only**. The E8M0 scale is a power of
  two: the only moves are x2 / /2, which a continuous proxy either never triggers or triggers as a
  jump that doubles the step of 32 weights at once; the OCP floor rule is kept.

Deployment: :meth:`LearnedQuantizer.deploy` re-quantizes the learned weight with the learned scales
and returns a real :class:`sw.QuantizedTensor` (codes, scales in the scale format, selectors, zero
points, tensor scale); its ``dequantize()`` is exactly the weight the model gets. When
``in_features`` is not a multiple of the group (SmolLM2: 576 = 4.5 x 128) the weight is zero-padded
to full groups, as :func:`sw.eval.fakequant.quantize_dequant` does (the padding stays zero).
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

import sw
from sw import nvfp4
from sw.formats import SymmetricInt, get_scale_format

from .fakequant import check_format, resolve_group


def _uniform_step(element) -> float | None:
    """The step of an integer grid (``SymmetricInt`` incl. MXINT8's k/64, ``AsymmetricInt``), else None."""
    if element.kind != "int" and not isinstance(element, SymmetricInt):
        return None
    v = element.values
    d = v[1:] - v[:-1]
    step = float(d[0])
    return step if bool((d == step).all()) and math.log2(step).is_integer() else None


def _grid_round(element, y: torch.Tensor, rounding: str) -> torch.Tensor:
    """Nearest grid value of ``y`` (float32), with ``element``'s tie rule and saturation.

    Integer grids with round-half-even take a fast path (``torch.round`` is RNE, the step is a power
    of two so ``y / step`` is exact, and the code LSB of these grids is the integer's parity); it is
    bit-identical to the table encoder (tested). Everything else goes through the table encoder.
    """
    step = _uniform_step(element) if rounding == "nearest_even" else None
    if step is not None:
        return torch.clamp(torch.round(y / step), element.min / step, element.max / step) * step
    return element.decode_lut[element._encode_f32(y.contiguous(), rounding).long()]


def _grid_codes(element, y: torch.Tensor, rounding: str) -> torch.Tensor:
    return element._encode_f32(y.contiguous(), rounding)


class _QuantSTE(torch.autograd.Function):
    """``(delta, s) -> dequantized weight`` in groups, with the STE of the module docstring written
    out by hand (one fused forward, two products in the backward: ~3x fewer memory passes than
    autograd through the individual operations)."""

    @staticmethod
    def forward(ctx, delta, s, quant):
        with torch.no_grad():
            y = quant._scaled(quant.w0 + quant.unit * delta, s)
            q = quant._round(y)
            inside = (y >= quant.lo.unsqueeze(-1)) & (y <= quant.hi.unsqueeze(-1))
            out = quant._dequant(q, s)
        ctx.save_for_backward(inside, y, q)
        ctx.quant = quant
        return out

    @staticmethod
    def backward(ctx, g):
        inside, y, q = ctx.saved_tensors
        quant = ctx.quant
        gi = g * inside
        g_delta = gi * quant.unit
        if quant.pad:
            g_delta = g_delta * quant.mask
        g_s = None
        if ctx.needs_input_grad[1]:
            # d out / d s = (q - zp) - inside * (y - zp)  [nvfp4: s_t * (q - inside * y)]
            if quant.kind == "nvfp4":
                r = (q - y * inside) * quant.tensor_scale
            elif quant.zp is not None:
                zp = quant.zp.unsqueeze(-1)
                r = (q - zp) - (y - zp) * inside
            else:
                r = q - y * inside
            g_s = (g * r).sum(-1)
        return g_delta, g_s, None


class LearnedQuantizer(nn.Module):
    """Weight quantizer with a learnable weight perturbation and learnable per-group scales.

    ``forward()`` returns the quantized weight ``[out, in]`` (differentiable through the STE);
    at initialisation it equals ``sw.quantize(w, fmt, group_size, scale_format=...).dequantize()``
    (with zero padding to full groups) bit for bit. ``learn_scale`` is ignored (forced off) for MX
    formats, see the module docstring. ``deploy()`` gives the :class:`sw.QuantizedTensor`.
    """

    def __init__(self, weight: torch.Tensor, fmt: str, group_size: int | None = 128,
                 scale_format: str | None = None, learn_scale: bool = True):
        super().__init__()
        check_format(fmt)
        if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or not weight.is_floating_point():
            raise ValueError(f"weight must be a 2-D float tensor [out, in], got "
                             f"{getattr(weight, 'shape', type(weight).__name__)}")
        w = weight.detach().to(torch.float32)
        out_f, k = w.shape
        g, gs_arg = resolve_group(fmt, group_size, k)
        pad = (-k) % g
        wp = torch.cat([w, w.new_zeros(out_f, pad)], 1) if pad else w
        qt = sw.quantize(wp, fmt, gs_arg, scale_format=scale_format)
        self.fmt, self.k, self.g, self.pad = fmt, k, g, pad
        self.qt0 = qt
        kind = sw.format_spec(fmt).kind     # element, asym, or the group format's family
        self.kind = "absmax" if kind == "element" else kind
        self.learn_scale = bool(learn_scale) and self.kind != "mx"
        ng = wp.shape[1] // g
        s0 = qt.scales.to(torch.float32).reshape(out_f, ng)
        self.register_buffer("w0", wp.reshape(out_f, ng, g).clone())
        self.register_buffer("s0", s0.clone())
        ts = 1.0 if qt.tensor_scale is None else qt.tensor_scale
        self.tensor_scale = qt.tensor_scale
        unit = s0 * torch.tensor(ts, dtype=torch.float32) if qt.tensor_scale is not None else s0
        self.register_buffer("unit", unit.unsqueeze(-1).clone())
        mask = torch.ones(1, 1, wp.shape[1])
        if pad:
            mask[..., k:] = 0
        self.register_buffer("mask", mask.reshape(1, ng, g))
        self.register_buffer("zp", None if qt.zero_points is None else
                             qt.zero_points.to(torch.float32).reshape(out_f, ng).clone())
        self.register_buffer("sel", None if qt.selectors is None else qt.selectors.long().reshape(out_f, ng))
        lo = torch.tensor([float(v.min) for v in qt.variants])
        hi = torch.tensor([float(v.max) for v in qt.variants])
        if self.sel is None:
            self.register_buffer("lo", lo[0].expand(out_f, ng).clone())
            self.register_buffer("hi", hi[0].expand(out_f, ng).clone())
        else:
            self.register_buffer("lo", lo[self.sel])
            self.register_buffer("hi", hi[self.sel])
        self.delta = nn.Parameter(torch.zeros(out_f, ng, g))
        self.log_scale = nn.Parameter(torch.zeros(out_f, ng), requires_grad=self.learn_scale)
        self.sf = get_scale_format(qt.scale_format)

    # ------------------------------------------------------------------ pieces
    def weight(self) -> torch.Tensor:
        """The continuous (pre-quantization) weight in groups ``[out, n_groups, g]``."""
        return self.w0 + self.unit * self.delta * self.mask

    def scale(self) -> torch.Tensor:
        """Per-group scale in the scale format (STE through the scale rounding); ``[out, n_groups]``.
        Groups whose RTN scale is 0 (all-zero groups) keep 0."""
        if not self.learn_scale:
            return self.s0
        s = self.s0 * torch.exp(self.log_scale)
        if self.kind == "nvfp4":
            s = s.clamp(nvfp4.E4M3_MIN_NORMAL, nvfp4.E4M3_MAX)
        else:
            s = s.clamp(self.sf.min_positive, self.sf.max)
        with torch.no_grad():
            r = self.sf.round(s.detach())
        s = s + (r - s).detach()
        return torch.where(self.s0 > 0, s, self.s0)

    def _scaled(self, w: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """``y`` = the value the element encoder sees, in sw.quantize's exact operation order."""
        if self.kind == "nvfp4":
            inv = 1.0 / torch.tensor(self.tensor_scale, dtype=torch.float32)
            return w * (inv / s).unsqueeze(-1)
        live = s > 0
        y = w / torch.where(live, s, torch.ones_like(s)).unsqueeze(-1)
        if self.zp is not None:
            y = y + self.zp.unsqueeze(-1)
        return y

    def _round(self, y: torch.Tensor) -> torch.Tensor:
        """Grid values of ``y`` per group (the group's BitMoD variant where there is one)."""
        r = self.qt0.rounding
        if self.sel is None:
            return _grid_round(self.qt0.element, y, r)
        out = torch.empty_like(y)
        for i, v in enumerate(self.qt0.variants):
            m = self.sel == i
            if bool(m.any()):
                out[m] = _grid_round(v, y[m], r)
        return out

    def _dequant(self, q: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """``(q - zp) * s`` (NVFP4: ``q * fp32(s_b * s_t)``); a zero scale gives 0."""
        if self.zp is not None:
            q = q - self.zp.unsqueeze(-1)
        if self.kind == "nvfp4":
            s = s * torch.tensor(self.tensor_scale, dtype=torch.float32)
        return q * s.unsqueeze(-1)

    def forward(self) -> torch.Tensor:
        s = self.scale()
        wq = _QuantSTE.apply(self.delta, s, self)
        return wq.reshape(wq.shape[0], -1)[:, :self.k]

    @torch.no_grad()
    def deploy(self) -> sw.QuantizedTensor:
        """Re-quantize the learned weight with the learned (format-rounded) scales: a real
        ``sw.QuantizedTensor`` of the padded ``[out, n_groups * g]`` weight whose ``dequantize()``
        (cut to ``in_features``) equals :meth:`forward`."""
        s = self.scale().detach()
        y = self._scaled(self.weight().detach(), s)
        r = self.qt0.rounding
        if self.sel is None:
            codes = _grid_codes(self.qt0.element, y, r)
        else:
            codes = torch.empty(y.shape, dtype=torch.uint8)
            for i, v in enumerate(self.qt0.variants):
                m = self.sel == i
                if bool(m.any()):
                    codes[m] = _grid_codes(v, y[m], r)
        if self.kind != "nvfp4":   # a zero scale stores the element's zero code (sw.quantize's rule)
            zero_code = torch.tensor([int(v.grid_codes[(v.values == 0).nonzero()[0, 0]])
                                      for v in self.qt0.variants], dtype=torch.uint8)
            zc = zero_code[self.sel] if self.sel is not None else zero_code[0].expand(s.shape)
            codes = torch.where((s > 0).unsqueeze(-1), codes, zc.unsqueeze(-1))
        out_f = codes.shape[0]
        return dataclasses.replace(self.qt0, codes=codes.reshape(out_f, -1).contiguous(),
                                   scales=s.reshape(self.qt0.scales.shape).clone())

    def deployed_weight(self) -> torch.Tensor:
        """``deploy().dequantize()`` cut back to ``[out, in_features]``."""
        return self.deploy().dequantize()[:, :self.k].contiguous()


def is_representable(qt: sw.QuantizedTensor) -> bool:
    """True when every code is a valid code of its group's variant and every scale is a value of
    the scale format (so ``qt`` is a storable instance of its format)."""
    try:
        qt.element_values()
    except ValueError:
        return False
    sf = get_scale_format(qt.scale_format)
    s = qt.scales.to(torch.float32)
    if not torch.equal(sf.round(s), s):
        return False
    if qt.zero_points is not None:
        zp = qt.zero_points.to(torch.float32)
        if bool((zp < 0).any() or (zp > (1 << qt.element.bits) - 1).any()):
            return False
    return True
