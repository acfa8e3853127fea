"""Quantizing a causal LM in place: weight formats, per-token activation and KV quantization.

* :class:`QuantSpec` says what to quantize; :func:`apply_weights` replaces every decoder
  ``nn.Linear`` weight by its quantize-dequantize image (RTN through ``sw.quantize``, groups along
  ``in_features``); :class:`weights_restored` snapshots and restores the weights bit-exactly.
* :func:`attach_act_kv` adds forward hooks:
  - activations: a forward pre-hook on every decoder linear quantizes its input **per token**
    (one scale over the last, hidden dimension) -- LLM-QAT's placement at every quantized linear;
  - KV: a forward hook on ``k_proj`` and ``v_proj`` quantizes their outputs **per token over the full
    K/V hidden size (all KV heads together)**, i.e. before RoPE, as LLM-QAT does.

Activation/KV scales are stored in fp16 (``sw.quantize``'s default ``scale_format``), as the
hardware's per-group metadata is; fp16 never overflows for per-token scales of these models
(|x| would need to exceed 65504 x qmax) and tokens that are entirely zero get zero codes.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .fakequant import check_format, dequant_values, fake_quant, fixed_block, quantize_dequant

FLOAT_BITS = 16.0   # storage of a layer left in float, for bits_per_weight averages (fp16 deployment)


@dataclass(frozen=True)
class QuantSpec:
    """What to quantize. Errors name the offending field.

    weight: format for every decoder ``nn.Linear`` weight (None = keep float);
    group_size: weight groups along ``in_features`` (None = one scale per output channel);
    scale_format: weight scale format (None = ``sw.quantize``'s default, fp16);
    layer_formats: per-layer override, linear name (as in :func:`decoder_linears`) -> format or None;
    act: per-token activation format at every decoder linear's input;
    kv: per-token K and V format right after ``k_proj`` / ``v_proj`` (before RoPE);
    include_head: also quantize ``lm_head`` (untied from the embedding while quantized).
    """
    weight: str | None = None
    group_size: int | None = 128
    scale_format: str | None = None
    layer_formats: Mapping[str, str | None] | None = None
    act: str | None = None
    kv: str | None = None
    include_head: bool = False

    def __post_init__(self):
        for field in ("weight", "act", "kv"):
            v = getattr(self, field)
            if v is not None:
                check_format(v, field)
        gs = self.group_size
        if gs is not None and (isinstance(gs, bool) or not isinstance(gs, int) or gs <= 0):
            raise ValueError(f"group_size={gs!r} must be a positive int or None")
        if self.scale_format is not None:
            from sw.formats import get_scale_format
            try:
                get_scale_format(self.scale_format)
            except (ValueError, KeyError) as e:
                raise ValueError(f"scale_format={self.scale_format!r} is not a scale format: {e}") from None
        if self.layer_formats is not None:
            if not isinstance(self.layer_formats, Mapping):
                raise TypeError(f"layer_formats must be a mapping name -> format, got {type(self.layer_formats).__name__}")
            for k, v in self.layer_formats.items():
                if v is not None:
                    check_format(v, f"layer_formats[{k!r}]")
        if not isinstance(self.include_head, bool):
            raise TypeError(f"include_head must be a bool, got {type(self.include_head).__name__}")

    @property
    def quantizes_weights(self) -> bool:
        return self.weight is not None or bool(self.layer_formats) and any(
            v is not None for v in self.layer_formats.values()) or False

    def label(self) -> str:
        """Short human label, e.g. ``"W bitmod4 g128 · A int8 · KV int4"``; ``"float"`` for nothing."""
        parts = []
        if self.layer_formats:
            parts.append("W mixed" + (f" (default {self.weight})" if self.weight else ""))
        elif self.weight:
            parts.append(f"W {self.weight}")
        if parts:
            block = fixed_block(self.weight) if self.weight else None
            if block is None:
                parts[0] += " per-channel" if self.group_size is None else f" g{self.group_size}"
            if self.scale_format:
                parts[0] += f" ({self.scale_format} scale)"
            if self.include_head:
                parts[0] += " +head"
        if self.act:
            parts.append(f"A {self.act}")
        if self.kv:
            parts.append(f"KV {self.kv}")
        return " · ".join(parts) if parts else "float"


def decoder_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """Every ``nn.Linear`` of the decoder stack (``lm_head`` excluded), named as in
    ``model.named_modules()``, in forward order (per layer q, k, v, o, gate, up, down for Llama)."""
    out = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear) and name.split(".")[-1] != "lm_head"}
    if not out:
        raise ValueError("model has no nn.Linear layers to quantize")
    return out


def _head(model: nn.Module) -> nn.Linear | None:
    h = getattr(model, "lm_head", None)
    return h if isinstance(h, nn.Linear) else None


def quantize_weight(w: torch.Tensor, fmt: str, group_size: int | None = 128,
                    scale_format: str | None = None) -> torch.Tensor:
    """RTN ``sw.quantize`` of an ``nn.Linear`` weight along ``in_features`` (axis -1), dequantized;
    same dtype and shape as ``w`` (a partial last group when ``group_size`` does not divide it)."""
    check_format(fmt)
    return quantize_dequant(w, fmt, group_size, axis=-1, scale_format=scale_format)[0]


def layer_plan(model: nn.Module, spec: QuantSpec) -> dict[str, str | None]:
    """Format per decoder linear (None = float) that ``spec`` asks for; unknown override names raise."""
    lin = decoder_linears(model)
    plan = {n: spec.weight for n in lin}
    if spec.layer_formats:
        unknown = [n for n in spec.layer_formats if n not in lin]
        if unknown:
            raise ValueError(f"layer_formats names unknown linear(s) {unknown[:3]}; known names look like "
                             f"{next(iter(lin))!r}")
        plan.update(spec.layer_formats)
    return plan


@torch.no_grad()
def apply_weights(model: nn.Module, spec: QuantSpec, progress: bool = True) -> dict:
    """Quantize the decoder linears' weights in place per ``spec`` (RTN).

    Returns ``{"layers": number quantized, "seconds", "bits_per_weight": storage average over all
    decoder linear weights (float layers count 16 bits), "per_layer": {name: bits or None}}``.
    Use inside :class:`weights_restored` to get the float model back.
    """
    from tqdm.auto import tqdm
    t0 = time.perf_counter()
    lin = decoder_linears(model)
    plan = layer_plan(model, spec)
    bits, count, n = 0.0, 0, 0
    per_layer = {}
    items = [(name, lin[name], fmt) for name, fmt in plan.items()]
    for name, m, fmt in tqdm(items, desc=f"quantize {spec.label()}", disable=not progress, leave=False):
        if fmt is None:
            bits += FLOAT_BITS * m.weight.numel()
            per_layer[name] = None
        else:
            wq, bpw = quantize_dequant(m.weight, fmt, spec.group_size, axis=-1, scale_format=spec.scale_format)
            m.weight.copy_(wq)
            bits += bpw * m.weight.numel()
            per_layer[name] = bpw
            n += 1
        count += m.weight.numel()
    head = _head(model)
    if spec.include_head and head is not None and spec.weight is not None:
        wq, _ = quantize_dequant(head.weight, spec.weight, spec.group_size, axis=-1, scale_format=spec.scale_format)
        head.weight = nn.Parameter(wq, requires_grad=head.weight.requires_grad)   # unties from the embedding
        n += 1
    return {"layers": n, "seconds": time.perf_counter() - t0, "bits_per_weight": bits / count,
            "per_layer": per_layer}


class Handle:
    """Removable set of hooks; ``remove()`` is idempotent; usable as a context manager."""

    def __init__(self, handles: list):
        self.handles = handles

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def __len__(self) -> int:
        return len(self.handles)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _token_quantizer(fmt: str, ste: bool):
    """x -> per-token quantize-dequantize of x (scale over the last dim; MX/NVFP4 use their block)."""
    g = fixed_block(fmt)   # None: one scale per token over the whole hidden size
    if ste:
        return lambda x: fake_quant(x, fmt, g, axis=-1)
    return lambda x: dequant_values(x, fmt, g, axis=-1)


def attach_act_kv(model: nn.Module, spec: QuantSpec, ste: bool = False) -> Handle:
    """Attach activation (``spec.act``) and KV (``spec.kv``) quantization hooks; returns a
    :class:`Handle`. Activations: every decoder linear's input (and ``lm_head``'s if
    ``include_head``), per token. KV: ``k_proj``/``v_proj`` outputs, per token over all KV heads,
    before RoPE. ``ste=True`` uses :func:`fake_quant` so gradients pass straight through (QAT);
    otherwise the quantized tensors carry no gradient."""
    handles = []
    lin = decoder_linears(model)
    if spec.act is not None:
        qa = _token_quantizer(spec.act, ste)
        targets = list(lin.values())
        head = _head(model)
        if spec.include_head and head is not None:
            targets.append(head)
        for m in targets:
            handles.append(m.register_forward_pre_hook(lambda mod, args, q=qa: (q(args[0]), *args[1:])))
    if spec.kv is not None:
        qk = _token_quantizer(spec.kv, ste)
        kv = [m for n, m in lin.items() if n.split(".")[-1] in ("k_proj", "v_proj")]
        if not kv:
            raise ValueError("spec.kv is set but the model has no k_proj / v_proj linears")
        for m in kv:
            handles.append(m.register_forward_hook(lambda mod, args, out, q=qk: q(out)))
    return Handle(handles)


class weights_restored:
    """Context manager: snapshot every decoder linear's weight and bias (and ``lm_head``'s weight
    object, tied or not) on entry; on exit put the original parameters back and restore their
    values bit-exactly, whatever happened inside (in-place edits or replaced parameters)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self._saved = []

    def __enter__(self):
        mods = list(decoder_linears(self.model).values())
        head = _head(self.model)
        if head is not None:
            mods.append(head)
        self._saved = []
        for m in mods:
            for attr in ("weight", "bias"):
                p = getattr(m, attr, None)
                if p is not None:
                    self._saved.append((m, attr, p, p.detach().clone()))
        return self.model

    def __exit__(self, *exc):
        with torch.no_grad():
            for m, attr, p, data in self._saved:
                if getattr(m, attr) is not p:
                    setattr(m, attr, p)
                p.copy_(data)
        self._saved = []
        return False
