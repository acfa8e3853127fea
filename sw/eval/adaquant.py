"""AdaQuant (Hubara et al., ICML'21 / CalibTIP) and bias correction for every registered format.

Per decoder ``nn.Linear`` the calibration minimises ``mean((X W^T - X Q(W')^T)^2)`` over cached
calibration inputs ``X`` (the inputs of the layer captured with forward hooks while the calibration
slice runs through the model), by Adam on:

* the weight, as a continuous perturbation of the RTN starting point in units of the group's step:
  ``W' = W + u * D`` (``u`` = the group's RTN dequantization scale, ``D`` starts at 0), quantized in the
  forward with a straight-through estimator (STE);
* the per-group scale, as ``s = s0 * exp(t)`` (``t`` starts at 0), rounded to the format's scale
  format in the forward (STE), so the deployed scale is a real ``fp16`` / ``bf16`` / ``e4m3`` value;
* optionally a bias (``learn_bias``; off by default, see below).

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

Capture modes (:func:`walk_blocks`): ``parallel`` -- every layer's inputs come from the float model;
``sequential`` -- the inputs come from the model whose preceding *blocks* are already quantized
(re-captured block by block; inside a block every linear sees its block's float-weight inputs).
The target is always the float layer's output on the float model's inputs, so a sequential layer
also learns to compensate the error of the layers before it (CalibTIP's choice).

Bias: SmolLM2's linears have none. AdaQuant learns no bias by default (the deployed model then has
exactly the float model's structure); ``learn_bias=True`` adds an fp32 bias initialised at 0.
Bias correction (:func:`bias_correction`, the classic cheap baseline, also available after AdaQuant)
sets ``b = mean_tokens(Y_float - X Q(W)^T)`` per output channel, so it adds an fp32 bias vector.

A layer whose final calibration MSE is not below RTN's keeps the RTN result ("keep best"), so
AdaQuant never returns a layer worse than RTN on its calibration data.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

import sw
from sw import mx, nvfp4
from sw.formats import AsymmetricInt, SymmetricInt, get_scale_format
from sw.quantize import DEFAULT_GROUP_SIZE

from .fakequant import check_format, fixed_block
from .hooks import QuantSpec, decoder_linears, weights_restored

MODES = ("parallel", "sequential")
METHODS = ("rtn", "bias_correction", "adaquant")

PRESETS: dict[str, dict] = {
    # smoke: tiny_context unit runs; quick: ~6 min on 2 uncontended cores; full: ~30 min.
    # eval_windows: perplexity windows for this section (None = the context preset's).
    "smoke": dict(formats=["int4", "int3"], calib_tokens=256, seq_len=64, steps=10, batch_tokens=64,
                  lr_w=5e-3, lr_s=5e-4, modes=["parallel", "sequential"], bias_correct_after=False,
                  eval_windows=None),
    "quick": dict(formats=["int4", "int3"], calib_tokens=1024, seq_len=512, steps=6, batch_tokens=128,
                  lr_w=5e-3, lr_s=5e-4, modes=["parallel", "sequential"], bias_correct_after=False,
                  eval_windows=None),
    "full": dict(formats=["int4", "int3", "bitmod3"], calib_tokens=4096, seq_len=512, steps=30,
                 batch_tokens=256, lr_w=5e-3, lr_s=5e-4, modes=["parallel", "sequential"],
                 bias_correct_after=False, eval_windows=8),
}


# ============================================================================= the quantizer
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
        block = fixed_block(fmt)
        if block is not None:
            if group_size not in (block, 128):
                raise ValueError(f"group_size={group_size!r} is not allowed for {fmt}: its block is {block}")
            g, gs_arg = block, DEFAULT_GROUP_SIZE
        else:
            if group_size is not None and (isinstance(group_size, bool) or not isinstance(group_size, int)
                                           or group_size <= 0):
                raise ValueError(f"group_size={group_size!r} must be a positive int or None")
            g, gs_arg = (k if group_size is None else group_size), group_size
        pad = (-k) % g
        wp = torch.cat([w, w.new_zeros(out_f, pad)], 1) if pad else w
        qt = sw.quantize(wp, fmt, gs_arg, scale_format=scale_format)
        self.fmt, self.k, self.g, self.pad = fmt, k, g, pad
        self.qt0 = qt
        self.kind = ("mx" if fmt in mx.MX_FORMATS else "nvfp4" if fmt in nvfp4.NVFP4_FORMATS else
                     "asym" if isinstance(qt.element, AsymmetricInt) else "bitmod" if qt.selectors is not None
                     else "absmax")
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


# ============================================================================= one layer
@dataclass
class LayerResult:
    """Outcome for one linear: the deployed weight (``[out, in]`` float32), the bias to add (or None),
    the :class:`sw.QuantizedTensor` (padded to full groups), calibration output MSEs."""
    name: str
    weight: torch.Tensor
    bias: torch.Tensor | None
    qtensor: sw.QuantizedTensor | None
    mse_rtn: float
    mse: float
    seconds: float = 0.0
    kept_rtn: bool = False

    @property
    def ratio(self) -> float:
        return self.mse / self.mse_rtn if self.mse_rtn > 0 else 1.0


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} must be one of {', '.join(MODES)}")
    return mode


@torch.no_grad()
def output_mse(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, y: torch.Tensor,
               chunk: int = 4096) -> float:
    """``mean((x w^T + b - y)^2)`` over all tokens and outputs, in chunks (float64 accumulation)."""
    tot = 0.0
    for i in range(0, x.shape[0], chunk):
        tot += float((F.linear(x[i:i + chunk], w, b) - y[i:i + chunk]).double().pow(2).sum())
    return tot / (x.shape[0] * y.shape[1])


@torch.no_grad()
def correction_bias(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor:
    """The bias that zeroes the mean output error over the tokens: ``(b or 0) + mean(y - (x w^T + b))``."""
    err = (y.double() - F.linear(x, w, b).double()).mean(0)
    base = torch.zeros(w.shape[0], dtype=torch.float64) if b is None else b.double()
    return (base + err).to(torch.float32)


def calibrate_linear(weight: torch.Tensor, x: torch.Tensor, y: torch.Tensor, fmt: str, *,
                     group_size: int | None = 128, scale_format: str | None = None, bias: torch.Tensor | None = None,
                     steps: int = 100, batch_tokens: int = 512, lr_w: float = 1e-2, lr_s: float = 1e-3,
                     lr_b: float = 1e-3, learn_scale: bool = True, learn_bias: bool = False, seed: int = 0,
                     name: str = "") -> tuple[LearnedQuantizer, torch.Tensor | None, float, float, bool]:
    """AdaQuant on one linear: minimise ``mean((x Q(W')^T + b - y)^2)`` with Adam.

    ``x`` ``[M, in]`` inputs, ``y`` ``[M, out]`` float targets, ``bias`` the layer's own bias (kept
    fixed unless ``learn_bias``; with ``learn_bias`` and no bias, a zero-initialised one is learned).
    Batches of ``batch_tokens`` rows are drawn with a generator seeded by ``seed``.
    Returns ``(quantizer, bias, mse_rtn, mse_final, kept_rtn)``; if the final MSE is not below RTN's,
    the quantizer is reset to its RTN state (and the bias to its start) and ``kept_rtn`` is True.
    """
    if steps < 0 or batch_tokens <= 0:
        raise ValueError(f"steps={steps} must be >= 0 and batch_tokens={batch_tokens} > 0")
    if x.dim() != 2 or y.dim() != 2 or x.shape[0] != y.shape[0] or x.shape[1] != weight.shape[1] \
            or y.shape[1] != weight.shape[0]:
        raise ValueError(f"x {tuple(x.shape)} / y {tuple(y.shape)} do not match weight {tuple(weight.shape)}")
    x, y = x.detach(), y.detach()
    q = LearnedQuantizer(weight, fmt, group_size, scale_format, learn_scale=learn_scale)
    b0 = None if bias is None else bias.detach().to(torch.float32).clone()
    b = b0
    if learn_bias:
        b = nn.Parameter(torch.zeros(weight.shape[0]) if b0 is None else b0.clone())
    with torch.no_grad():
        mse_rtn = output_mse(x, q(), b0, y)
    groups = [{"params": [q.delta], "lr": lr_w}]
    if q.learn_scale:
        groups.append({"params": [q.log_scale], "lr": lr_s})
    if learn_bias:
        groups.append({"params": [b], "lr": lr_b})
    if steps:
        opt = torch.optim.Adam(groups)
        gen = torch.Generator().manual_seed(seed)
        m = x.shape[0]
        nb = min(batch_tokens, m)
        for _ in range(steps):
            idx = torch.randint(0, m, (nb,), generator=gen)
            loss = F.mse_loss(F.linear(x[idx], q(), b), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        b_fin = None if b is None else b.detach().clone()
        mse = output_mse(x, q.deployed_weight(), b_fin, y)
        kept = not mse < mse_rtn
        if kept:
            q.delta.zero_()
            q.log_scale.zero_()
            b_fin, mse = b0, mse_rtn
    return q, b_fin, mse_rtn, mse, kept


# ============================================================================= capture
class _Stop(Exception):
    pass


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The decoder layers (``model.model.layers`` of a Llama-style causal LM)."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        raise ValueError("model must be a causal LM with model.model.layers (Llama-style decoder blocks)")
    return layers


def calib_batch(ids: torch.Tensor, seq_len: int, tokens: int | None = None) -> torch.Tensor:
    """``ids`` ``[1, N]`` -> ``[B, seq_len]`` (the first ``tokens`` tokens, default all, whole sequences)."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.shape[0] != 1:
        raise ValueError(f"ids must be a [1, N] token tensor, got {getattr(ids, 'shape', type(ids).__name__)}")
    n = ids.shape[1] if tokens is None else min(tokens, ids.shape[1])
    if seq_len <= 1 or n < seq_len:
        raise ValueError(f"seq_len={seq_len} must be > 1 and fit in the {n} calibration tokens")
    b = n // seq_len
    return ids[0, :b * seq_len].reshape(b, seq_len).long()


@torch.no_grad()
def block_inputs(model: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Hidden states entering the first decoder block and the keyword arguments the model passes to
    every block (mask, position embeddings...), captured with a forward pre-hook."""
    blocks = decoder_blocks(model)
    got = {}

    def hook(mod, args, kwargs):
        got["h"] = args[0] if args else kwargs["hidden_states"]
        got["kw"] = {k: v for k, v in kwargs.items() if k != "hidden_states"}
        raise _Stop

    h = blocks[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        model(input_ids=batch, use_cache=False)
    except _Stop:
        pass
    finally:
        h.remove()
    return got["h"].detach(), got["kw"]


def block_linears(block: nn.Module) -> dict[str, nn.Linear]:
    """The ``nn.Linear`` modules of one block by local name (``self_attn.q_proj``...), forward order."""
    return {n: m for n, m in block.named_modules() if isinstance(m, nn.Linear)}


@torch.no_grad()
def run_block(block: nn.Module, h: torch.Tensor, kwargs: dict, capture: bool = True):
    """Run one block; returns ``(output, {local linear name: input [tokens, in]})``."""
    xs, handles = {}, []
    if capture:
        for n, m in block_linears(block).items():
            handles.append(m.register_forward_hook(
                lambda mod, args, out, n=n: xs.__setitem__(n, args[0].detach().reshape(-1, args[0].shape[-1]))))
    try:
        out = block(h, **kwargs)
    finally:
        for hd in handles:
            hd.remove()
    out = out[0] if isinstance(out, tuple) else out
    return out, xs


@dataclass
class BlockInputs:
    """What :func:`walk_blocks` yields for block ``index``: its linears (full names), the float
    model's inputs ``x_float`` (targets are computed from them) and the inputs ``x`` the calibration
    uses (equal to ``x_float`` in parallel mode), both by full linear name."""
    index: int
    block: nn.Module
    names: dict[str, str]              # local name -> full name
    x_float: dict[str, torch.Tensor]
    x: dict[str, torch.Tensor]


def walk_blocks(model: nn.Module, ids: torch.Tensor, mode: str = "parallel", seq_len: int = 512,
                tokens: int | None = None, prefix: str = "model.layers") -> Iterator[BlockInputs]:
    """Generator over decoder blocks with their captured linear inputs.

    The caller may replace the block's weights (with their quantized version) before asking for
    the next block: in ``sequential`` mode the quantized stream then runs through the *modified*
    block, so block ``i+1``'s inputs come from quantized blocks ``0..i``; in ``parallel`` mode all
    inputs come from the float stream, computed before the caller touches the block. The first
    block's inputs are identical in both modes. The model is not restored here (the caller owns it).
    """
    _check_mode(mode)
    batch = calib_batch(ids, seq_len, tokens)
    blocks = decoder_blocks(model)
    h_fp, kw = block_inputs(model, batch)
    h_q = h_fp
    for i, blk in enumerate(blocks):
        local = list(block_linears(blk))
        names = {n: f"{prefix}.{i}.{n}" for n in local}
        nxt_fp, x_fp = run_block(blk, h_fp, kw)
        x_fp = {names[n]: v for n, v in x_fp.items()}
        x_used = x_fp if (mode == "parallel" or i == 0) else \
            {names[n]: v for n, v in run_block(blk, h_q, kw)[1].items()}
        yield BlockInputs(i, blk, names, x_fp, x_used)
        if mode == "sequential":
            h_q = run_block(blk, h_q, kw, capture=False)[0]
        h_fp = nxt_fp


# ============================================================================= whole model
@dataclass
class Calibration:
    """Per-layer results of :func:`calibrate` plus the run's settings and timing."""
    method: str
    mode: str
    fmt: str | Mapping
    layers: dict[str, LayerResult] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0

    def mse_ratio(self) -> float:
        """Geometric mean over layers of (calibration output MSE / RTN's)."""
        r = [lr.ratio for lr in self.layers.values() if lr.mse_rtn > 0]
        return math.exp(sum(math.log(max(v, 1e-30)) for v in r) / len(r)) if r else 1.0

    def summary(self) -> dict:
        return {"method": self.method, "mode": self.mode, "layers": len(self.layers),
                "mse_ratio_geomean": self.mse_ratio(),
                "kept_rtn": sum(lr.kept_rtn for lr in self.layers.values()),
                "seconds": self.seconds, **self.settings}


def _plan(model: nn.Module, fmt: str | Mapping[str, str | None]) -> dict[str, str | None]:
    names = list(decoder_linears(model))
    if isinstance(fmt, str):
        check_format(fmt)
        return {n: fmt for n in names}
    if not isinstance(fmt, Mapping):
        raise TypeError(f"fmt must be a format name or a mapping linear name -> format, got {type(fmt).__name__}")
    unknown = [n for n in fmt if n not in names]
    if unknown:
        raise ValueError(f"fmt names unknown linear(s) {unknown[:3]}; names look like {names[0]!r}")
    return {n: fmt.get(n) for n in names}


def calibrate(model: nn.Module, ids: torch.Tensor, fmt: str | Mapping[str, str | None], *,
              method: str = "adaquant", mode: str = "parallel", group_size: int | None = 128,
              scale_format: str | None = None, seq_len: int = 512, tokens: int | None = None, steps: int = 100,
              batch_tokens: int = 512, lr_w: float = 1e-2, lr_s: float = 1e-3, learn_scale: bool = True,
              learn_bias: bool = False, bias_correct_after: bool = False, seed: int = 0,
              progress: bool = True) -> Calibration:
    """Calibrate every decoder linear of ``model`` on ``ids`` (``[1, N]``; ``tokens`` caps N).

    ``fmt``: one format for all linears, or a mapping linear name -> format (None = stays float).
    ``method``: ``rtn`` (plain sw.quantize), ``bias_correction`` (RTN + mean-shift bias), or
    ``adaquant`` (+ ``bias_correct_after``). ``mode``: ``parallel`` or ``sequential`` capture.
    The model is left exactly as it was; load the result with :func:`calibrated`.
    """
    from tqdm.auto import tqdm
    if method not in METHODS:
        raise ValueError(f"method={method!r} must be one of {', '.join(METHODS)}")
    _check_mode(mode)
    plan = _plan(model, fmt)
    settings = dict(group_size=group_size, scale_format=scale_format, seq_len=seq_len,
                    tokens=int(calib_batch(ids, seq_len, tokens).numel()), seed=seed)
    if method == "adaquant":
        settings.update(steps=steps, batch_tokens=batch_tokens, lr_w=lr_w, lr_s=lr_s, learn_scale=learn_scale,
                        learn_bias=learn_bias, bias_correct_after=bias_correct_after)
    cal = Calibration(method, mode, fmt, settings=settings)
    t0 = time.perf_counter()
    bar = tqdm(total=sum(f is not None for f in plan.values()), desc=f"{method} {mode}", disable=not progress,
               leave=False)
    with _structure_restored(model):
        for blk in walk_blocks(model, ids, mode, seq_len, tokens):
            mods = block_linears(blk.block)
            for local, full in blk.names.items():
                f = plan.get(full)
                if f is None:
                    continue
                lin = mods[local]
                t1 = time.perf_counter()
                x, x_fp = blk.x[full], blk.x_float[full]
                with torch.no_grad():
                    y = F.linear(x_fp, lin.weight, lin.bias)
                res = _calibrate_one(full, lin, x, y, f, method, group_size, scale_format, steps, batch_tokens,
                                     lr_w, lr_s, learn_scale, learn_bias, bias_correct_after, seed)
                res.seconds = time.perf_counter() - t1
                cal.layers[full] = res
                bar.update(1)
                bar.set_postfix_str(f"{full.split('layers.')[-1]} mse x{res.ratio:.3f}")
            if mode == "sequential":   # the quantized stream runs through this block's deployed weights
                _load_block(blk, cal)
    bar.close()
    cal.seconds = time.perf_counter() - t0
    return cal


def _calibrate_one(name, lin, x, y, fmt, method, group_size, scale_format, steps, batch_tokens, lr_w, lr_s,
                   learn_scale, learn_bias, bias_correct_after, seed) -> LayerResult:
    b = None if lin.bias is None else lin.bias.detach()
    if method == "adaquant":
        q, b_new, mse_rtn, mse, kept = calibrate_linear(
            lin.weight, x, y, fmt, group_size=group_size, scale_format=scale_format, bias=b, steps=steps,
            batch_tokens=batch_tokens, lr_w=lr_w, lr_s=lr_s, learn_scale=learn_scale, learn_bias=learn_bias,
            seed=seed, name=name)
    else:
        q = LearnedQuantizer(lin.weight, fmt, group_size, scale_format, learn_scale=False)
        b_new, kept = b, False
        mse_rtn = mse = output_mse(x, q.deployed_weight(), b, y)
    qt = q.deploy()
    w = qt.dequantize()[:, :q.k].contiguous()
    if method == "bias_correction" or (method == "adaquant" and bias_correct_after):
        b_new = correction_bias(x, w, b_new, y)
        mse = output_mse(x, w, b_new, y)
    return LayerResult(name, w, b_new, qt, mse_rtn, mse, kept_rtn=kept)


@torch.no_grad()
def _set_linear(lin: nn.Linear, w: torch.Tensor, b: torch.Tensor | None) -> None:
    lin.weight.copy_(w)
    if b is not None:
        if lin.bias is None:
            lin.bias = nn.Parameter(b.clone(), requires_grad=False)
        else:
            lin.bias.copy_(b)


def _load_block(blk: BlockInputs, cal: Calibration) -> None:
    mods = block_linears(blk.block)
    for local, full in blk.names.items():
        if full in cal.layers:
            _set_linear(mods[local], cal.layers[full].weight, cal.layers[full].bias)


@contextmanager
def _structure_restored(model: nn.Module):
    """Restore every decoder linear's weight/bias values bit-exactly and remove biases added inside."""
    lin = decoder_linears(model)
    had_bias = {n: m.bias is not None for n, m in lin.items()}
    with weights_restored(model):
        try:
            yield model
        finally:
            for n, m in lin.items():
                if not had_bias[n] and m.bias is not None:
                    m.bias = None


@contextmanager
def calibrated(model: nn.Module, cal: Calibration):
    """Context manager: load ``cal``'s deployed weights (and biases) into ``model``; on exit the model
    is exactly as before (weights restored bit-exactly, added biases removed)."""
    lin = decoder_linears(model)
    missing = [n for n in cal.layers if n not in lin]
    if missing:
        raise ValueError(f"cal names linear(s) the model does not have: {missing[:3]}")
    with _structure_restored(model):
        for n, r in cal.layers.items():
            _set_linear(lin[n], r.weight, r.bias)
        yield model


# ============================================================================= report section
def _ppl_loaded(ctx, cal: Calibration, windows: int | None = None) -> dict:
    with calibrated(ctx.model, cal):
        r = ctx.ppl(None, model=ctx.model, windows=windows)
    return r


def recovered_fraction(ppl_rtn: float, ppl_x: float, ppl_ref: float) -> float | None:
    """Fraction of RTN's perplexity increase that method ``x`` recovers: (rtn - x) / (rtn - ref)."""
    d = ppl_rtn - ppl_ref
    return None if d <= 0 else (ppl_rtn - ppl_x) / d


def section(ctx, preset: str | None = None, params: Mapping | None = None):
    """Report section: RTN, bias correction, AdaQuant parallel and sequential (and, in the full
    preset, AdaQuant + bias correction) for the preset's formats at g128; perplexity, calibration
    output-MSE ratio vs RTN, fraction of RTN's perplexity increase recovered, target check."""
    from .context import Section, Table
    p = dict(PRESETS[preset or ctx.preset.name])
    if params:
        p.update(params)
    t0 = time.perf_counter()
    win = p.get("eval_windows")
    ref = ctx.reference_for(win)["ppl"]
    calib = dict(seq_len=p["seq_len"], tokens=p["calib_tokens"], seed=ctx.seed, progress=ctx.progress)
    ada = dict(steps=p["steps"], batch_tokens=p["batch_tokens"], lr_w=p["lr_w"], lr_s=p["lr_s"])
    rows, data = [], {"params": p, "reference_ppl": ref, "formats": {}}
    verdicts = []
    for f in p["formats"]:
        spec = QuantSpec(weight=f, group_size=128)
        rtn = ctx.ppl(spec, windows=win)
        runs = {"RTN": {"ppl": rtn["ppl"], "mse_ratio": 1.0, "seconds": 0.0}}
        plan = [("bias correction", dict(method="bias_correction", mode="parallel"))]
        plan += [(f"AdaQuant {m}", dict(method="adaquant", mode=m, **ada)) for m in p["modes"]]
        if p.get("bias_correct_after"):
            plan.append(("AdaQuant sequential + BC", dict(method="adaquant", mode="sequential",
                                                          bias_correct_after=True, **ada)))
        for label, kw in plan:
            cal = calibrate(ctx.model, ctx.calib_ids, f, group_size=128, **calib, **kw)
            r = _ppl_loaded(ctx, cal, win)
            runs[label] = {"ppl": r["ppl"], "mse_ratio": cal.mse_ratio(), "seconds": cal.seconds,
                           "eval_seconds": r["seconds"], "summary": cal.summary()}
        for label, v in runs.items():
            v["recovered"] = recovered_fraction(rtn["ppl"], v["ppl"], ref) if label != "RTN" else 0.0
            rows.append([f"{f} g128", label, v["ppl"], 100.0 * (v["ppl"] / ref - 1.0), v["mse_ratio"],
                         v["recovered"], v["seconds"]])
        ada_runs = [(v["recovered"] if v["recovered"] is not None else -math.inf, k, v["mse_ratio"])
                    for k, v in runs.items() if k.startswith("AdaQuant")]
        best = max(ada_runs) if ada_runs else (-math.inf, "none", 1.0)
        met = best[0] >= 1 / 3
        verdicts.append((f, met, best))
        data["formats"][f] = runs
    tab = Table("AdaQuant vs RTN and bias correction (weights only, g128, perplexity on the evaluation slice)",
                ["format", "method", "PPL", "Δ vs float %", "calib MSE / RTN (geo-mean)",
                 "RTN increase recovered", "calib s"], rows)
    text = _section_text(ctx, p, ctx.reference_for(win), verdicts)
    data["targets"] = {f: {"met": met, "best_method": b[1], "recovered": None if b[0] == -math.inf else b[0],
                           "mse_ratio": b[2]} for f, met, b in verdicts}
    return Section(key="adaquant", title="AdaQuant layer-wise calibration", text=text, tables=[tab], data=data,
                   seconds=time.perf_counter() - t0)


def _section_text(ctx, p, reference: dict, verdicts) -> str:
    ref = reference["ppl"]
    lines = [
        f"Protocol: every decoder linear is calibrated on {p['calib_tokens']} tokens of the calibration "
        f"slice (disjoint from the evaluation slice) in sequences of {p['seq_len']}; inputs captured with "
        f"forward hooks. AdaQuant: Adam, {p['steps']} steps per layer on batches of {p['batch_tokens']} "
        f"tokens, lr {p['lr_w']} on the weight perturbation (in units of the group step) and {p['lr_s']} on "
        f"the log group scale (rounded to the scale format, fp16, in the forward; STE), seed {ctx.seed}; no bias learned "
        f"(SmolLM2's linears have none); a layer that ends worse than RTN on its calibration data keeps "
        f"RTN. Parallel: inputs from the float model; sequential: from the model with the preceding "
        f"blocks already calibrated. Bias correction: RTN plus an fp32 bias = mean output shift per "
        f"channel on the calibration data (parallel capture). Deployed weights are re-quantized "
        f"with the learned scales into a real `sw.QuantizedTensor` (checked in the tests).",
        f"Perplexity: {reference['windows']} non-overlapping windows of {reference['window']} tokens of the "
        f"evaluation slice. Float reference PPL {ref:.3f}. Recovered = (PPL_RTN - PPL_method) / (PPL_RTN - PPL_float).",
        "Target: AdaQuant recovers at least a third of RTN's perplexity increase at g128.",
    ]
    for f, met, (frac, label, ratio) in verdicts:
        frac_s = "n/a (RTN is not worse than float)" if frac == -math.inf else f"{100 * frac:.1f} %"
        why = "" if met else (
            f" Why: with this preset's budget ({p['steps']} Adam steps per layer on {p['calib_tokens']} "
            f"calibration tokens) the layers reach only {ratio:.2f}x RTN's output MSE (geometric mean); "
            f"per-layer MSE gains do not add up to the same perplexity gain because the errors of the 210 "
            f"layers compound through the network (the sequential mode targets this).")
        lines.append(f"- {f} g128: **{'met' if met else 'missed'}** -- best: {label}, recovers {frac_s} "
                     f"of RTN's increase, calibration MSE {ratio:.3f}x RTN.{why}")
    return "\n\n".join(lines)
