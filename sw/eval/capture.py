"""Calibration capture: the inputs of every decoder linear, block by block, in two modes.

Capture modes (:func:`walk_blocks`): ``parallel`` -- every layer's inputs come from the float model;
``sequential`` -- the inputs come from the model whose preceding *blocks* are already quantized
(re-captured block by block; inside a block every linear sees its block's float-weight inputs,
unless the caller re-captures the block after quantizing its earlier linears: ``BlockInputs.recapture``).
The target is always the float layer's output on the float model's inputs, so a sequential layer
also learns to compensate the error of the layers before it (CalibTIP's choice).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

MODES = ("parallel", "sequential")


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} must be one of {', '.join(MODES)}")
    return mode


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
    uses (equal to ``x_float`` in parallel mode), both by full linear name. ``recapture()`` runs the
    block again on the hidden states ``x`` came from, with the block's weights as they are now, and
    returns its linears' inputs by full name (GPTQ's true-sequential order: a linear sees the block's
    earlier linears already quantized)."""
    index: int
    block: nn.Module
    names: dict[str, str]              # local name -> full name
    x_float: dict[str, torch.Tensor]
    x: dict[str, torch.Tensor]
    recapture: Callable[[], dict[str, torch.Tensor]]


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
        h_in = h_fp if (mode == "parallel" or i == 0) else h_q

        def recapture(blk=blk, h_in=h_in, names=names) -> dict[str, torch.Tensor]:
            return {names[n]: v for n, v in run_block(blk, h_in, kw)[1].items()}
        x_used = x_fp if h_in is h_fp else recapture()
        yield BlockInputs(i, blk, names, x_fp, x_used, recapture)
        if mode == "sequential":
            h_q = run_block(blk, h_q, kw, capture=False)[0]
        h_fp = nxt_fp
