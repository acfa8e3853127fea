"""GPTQ (Frantar et al., 2022): Hessian-aware rounding of one linear layer, for every registry format.

For a layer ``y = x W^T`` (``W`` ``[out, in]``) and calibration inputs ``X`` (``[n, in]``), GPTQ
minimises ``||X W^T - X Q^T||^2`` over quantized ``Q`` one input column at a time: column ``j`` is
rounded, and its rounding error, scaled by the inverse Hessian ``H^-1`` (``H = 2 X^T X / n``,
damped by ``damp * mean(diag H)``), is pushed onto the columns not yet rounded. The columns are
taken in blocks of ``block`` with the updates to later blocks applied once per block (the paper's
"lazy batch"), from the upper Cholesky factor of ``H^-1``.

Formats. Every format of :func:`sw.quantize` (INT sym/asym, FP, BitMoD, MX, NVFP4): a column is
rounded with :meth:`sw.quantized.QuantizedTensor.requantize` under group metadata (scale, zero
point, BitMoD variant) fixed beforehand:

* ``static_groups=True`` (needed with ``act_order``): the metadata of every group comes from the
  layer's original weights, as RTN would choose it (the BitMoD variant is RTN's);
* ``static_groups=False`` (natural column order): a group's metadata is chosen when the loop
  reaches its first column, from the weights as the error feedback has left them, so BitMoD picks
  each group's variant (and every format its scale) inside the column loop. NVFP4's fp32 tensor
  scale depends on the whole tensor: it needs static groups.

``act_order``: columns in order of decreasing ``diag(H)`` (the inputs with the most energy
first), which keeps the outlier channels' error in check; groups stay contiguous in the
original column order (the hardware's layout), hence static groups.
"""
from __future__ import annotations

import dataclasses

import torch

import sw
from sw import group_formats as GF
from sw.chunks import torch_threads

__all__ = ["Hessian", "gptq_quantize", "gptq_stacked", "group_quantize"]


def xty(x: torch.Tensor, y: torch.Tensor, rows: int = 2048) -> torch.Tensor:
    """``x^T y`` (``[n, a]``, ``[n, b]`` -> ``[a, b]``) in float64: float32 products in blocks of ``rows``
    rows (BLAS speed), summed in float64; a float64 input keeps the whole product in float64."""
    dt = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
    x, y = x.to(dt), y.to(dt)
    acc = torch.zeros(x.shape[1], y.shape[1], dtype=torch.float64)
    for a in range(0, x.shape[0], rows):
        acc += (x[a:a + rows].t() @ y[a:a + rows]).double()
    return acc


class Hessian:
    """Running ``H = 2 X^T X / n`` over batches of layer inputs: the products of float32 inputs in
    float32 blocks of :data:`ROWS` rows (BLAS speed; float64 inputs stay float64), summed in float64."""

    #: rows per float32 product block
    ROWS = 2048

    def __init__(self, in_features: int):
        if isinstance(in_features, bool) or not isinstance(in_features, int) or in_features < 1:
            raise ValueError(f"in_features={in_features!r} must be a positive int")
        self.h = torch.zeros(in_features, in_features, dtype=torch.float64)
        self.n = 0

    def add(self, x: torch.Tensor) -> None:
        """Add inputs ``x`` (``[..., in_features]``; every leading position is one sample)."""
        if x.shape[-1] != self.h.shape[0]:
            raise ValueError(f"x has {x.shape[-1]} features, the Hessian {self.h.shape[0]}")
        x = x.reshape(-1, x.shape[-1])
        self.h += xty(x, x, self.ROWS)
        self.n += x.shape[0]

    @property
    def xtx(self) -> torch.Tensor:
        """``X^T X`` so far (float64; :func:`sw.eval.scale_refit.refit_scales` reuses it)."""
        return self.h

    def value(self) -> torch.Tensor:
        if self.n == 0:
            raise ValueError("the Hessian has no samples: add() inputs first")
        return (2.0 / self.n) * self.h


def group_quantize(w: torch.Tensor, fmt: str, group_size: int | None, scale_format: str | None):
    """RTN of ``w`` (``[out, in]``) to ``fmt`` (:func:`sw.quantize`; a group format with a fixed block
    takes its own), ``in`` zero-padded to whole groups as :func:`sw.eval.fakequant.quantize_dequant`
    does (SmolLM2: 576 = 4.5 x 128; zeros change no group's metadata): the result has the padded width."""
    gf = GF.find(fmt)
    g = gf.block if gf is not None and gf.block is not None else group_size
    pad = 0 if g is None else (-w.shape[-1]) % g
    if pad:
        w = torch.cat([w, torch.zeros(*w.shape[:-1], pad, dtype=w.dtype)], -1)
    if gf is not None and gf.block is not None:
        return sw.quantize(w, fmt, scale_format=scale_format)
    return sw.quantize(w, fmt, group_size, scale_format=scale_format)


def _check(w, h, damp, block):
    if not isinstance(w, torch.Tensor) or w.dim() != 2:
        raise ValueError(f"w must be a 2-d [out, in] tensor, got shape {tuple(getattr(w, 'shape', ()))}")
    if not isinstance(h, torch.Tensor) or tuple(h.shape) != (w.shape[1], w.shape[1]):
        raise ValueError(f"H must be [{w.shape[1]}, {w.shape[1]}] for w of shape {tuple(w.shape)}, got "
                         f"{tuple(getattr(h, 'shape', ()))}")
    if not isinstance(damp, (int, float)) or isinstance(damp, bool) or not 0 <= damp < 1:
        raise ValueError(f"damp={damp!r} must be a number in [0, 1)")
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"block={block!r} must be a positive int")


@torch.no_grad()
def gptq_quantize(w: torch.Tensor, h: torch.Tensor, fmt: str, group_size: int | None = 128, *,
                  scale_format: str | None = None, act_order: bool = True, static_groups: bool | None = None,
                  damp: float = 0.01, block: int = 128, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, dict]:
    """GPTQ of ``w`` (``[out, in]``) with Hessian ``h`` (:class:`Hessian`) to ``fmt``.

    Returns ``(q, info)``: ``q`` the quantized weights (float32, on the format's grid, ``w``'s shape; an
    ``in`` that is not a whole number of groups is zero-padded to one, as RTN here does)
    and ``info`` = ``{"loss"`` (GPTQ's ``sum (w - q)^2 / diag(H^-1)^2 / 2``), ``"dead"`` (input columns
    with ``H_jj = 0``, set to 0 as GPTQ does), ``"damp"`` (the damping added), ``"quantized"`` (the
    :class:`sw.QuantizedTensor`, padded to whole groups: codes and the metadata they were chosen
    under; its first ``in`` columns dequantize to ``q``), ``"rows_loss"`` (the loss per output row)}. ``static_groups``
    defaults to ``act_order``. ``dtype``: the arithmetic (float32; float64 for reference checks).
    """
    _check(w, h, damp, block)
    sw.format_spec(fmt)
    if static_groups is None:
        static_groups = act_order
    if act_order and not static_groups:
        raise ValueError("act_order=True needs static_groups=True: groups stay contiguous in the original "
                         "column order, so their metadata is fixed before the permuted loop")
    gf = GF.find(fmt)
    if not static_groups and gf is not None and gf.family == "nvfp4":
        raise ValueError(f"static_groups=False: {fmt}'s fp32 tensor scale depends on the whole tensor; "
                         f"use static_groups=True")
    out_f, cols = w.shape
    W = w.detach().to(dtype).clone()
    H = h.detach().to(dtype).clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    qt = group_quantize(W.float(), fmt, group_size, scale_format)     # RTN's metadata (static groups)
    g, qt_col0 = qt.group_size, 0
    if g >= cols:                      # one group per row: its metadata is the original's either way
        static_groups = True
    if not static_groups and block % g and block < cols:
        raise ValueError(f"block={block} must be a multiple of the group size {g} with static_groups=False "
                         f"(a group's columns are all in the block that starts it)")
    perm = torch.argsort(torch.diag(H), descending=True, stable=True) if act_order else torch.arange(cols)
    W, H = W[:, perm], H[perm][:, perm]
    lam = damp * float(torch.mean(torch.diag(H)))
    H += lam * torch.eye(cols, dtype=dtype)
    L = torch.linalg.cholesky(H)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True)
    Q = torch.zeros_like(W)
    codes = qt.codes.clone()          # padded to whole groups; the padding keeps RTN's code of 0
    rtn, meta = qt, []
    loss = torch.zeros(out_f, dtype=dtype)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        E1 = torch.zeros_like(W1)
        Hb = Hinv[i1:i2, i1:i2]
        with torch_threads(1):         # ~20 small operations per column: one thread, no barriers
            for i in range(i2 - i1):
                col = int(perm[i1 + i])
                if not static_groups and col % g == 0:
                    # this group's metadata from its columns as the error feedback has left them (all in
                    # this block, which the feedback keeps up to date)
                    qt = group_quantize(W1[:, i:i + g].float(), fmt, g, scale_format)
                    qt_col0 = col
                    meta.append(qt)
                start = col if static_groups else col - qt_col0
                wc = W1[:, i]
                c = qt.recode(wc.float().unsqueeze(1), start=start)
                codes[:, col] = c[:, 0]
                q = qt.decode_at(c, start=start)[:, 0].to(dtype)
                Q1[:, i] = q
                err = (wc - q) / Hb[i, i]
                W1[:, i:] -= err.unsqueeze(1) @ Hb[i, i:].unsqueeze(0)
                E1[:, i] = err
        Q[:, i1:i2] = Q1
        loss += (E1 * E1).sum(1) / 2          # (w - q)^2 / d^2 / 2 per column
        W[:, i2:] -= E1 @ Hinv[i1:i2, i2:]
    inv = torch.argsort(perm)
    fields = {"codes": codes}
    if meta:                           # the groups' own metadata, in group order
        fields["scales"] = torch.cat([m.scales for m in meta], -1)
        for f in ("selectors", "zero_points"):
            if getattr(rtn, f) is not None:
                fields[f] = torch.cat([getattr(m, f) for m in meta], -1)
    quantized = dataclasses.replace(rtn, **fields)
    return Q[:, inv].float(), {"loss": float(loss.sum()), "dead": int(dead.sum()), "damp": lam,
                               "quantized": quantized, "rows_loss": loss}


def rows_of(qt, a: int, b: int):
    """Rows ``a:b`` of a 2-d ``[out, in]`` QuantizedTensor whose metadata is per row (every format
    but NVFP4, whose tensor scale belongs to the whole tensor)."""
    if qt.tensor_scale is not None:
        raise ValueError(f"{qt.format}: a tensor-wide scale cannot be split by rows")
    fields = {"codes": qt.codes[a:b], "scales": qt.scales[a:b]}
    for f in ("selectors", "zero_points"):
        if getattr(qt, f) is not None:
            fields[f] = getattr(qt, f)[a:b]
    return dataclasses.replace(qt, **fields)


def gptq_stacked(ws: list[torch.Tensor], h: torch.Tensor, fmt: str, group_size: int | None = 128,
                 **kw) -> list[tuple[torch.Tensor, dict]]:
    """:func:`gptq_quantize` of several weights that read the same input (a Llama block's q/k/v, or
    gate/up) in one column loop over their rows stacked: GPTQ treats rows independently under one
    Hessian and one column order, so each result is what its own call would give (up to the
    summation order of the lazy-batch product), with a third to a half fewer loop iterations per
    block. Formats with a tensor-wide scale (NVFP4) are quantized one weight at a time. Returns one
    ``(q, info)`` per weight, ``info["loss"]`` its own."""
    if not ws:
        raise ValueError("ws is empty: give at least one [out, in] weight")
    gf = GF.find(fmt)
    if len(ws) == 1 or (gf is not None and gf.family == "nvfp4"):
        return [gptq_quantize(w, h, fmt, group_size, **kw) for w in ws]
    bad = [i for i, w in enumerate(ws) if not isinstance(w, torch.Tensor) or w.dim() != 2 or w.shape[1] != ws[0].shape[1]]
    if bad:
        raise ValueError(f"ws[{bad[0]}] must be a 2-d [out, {ws[0].shape[1]}] tensor like ws[0]")
    q, info = gptq_quantize(torch.cat([w.detach() for w in ws]), h, fmt, group_size, **kw)
    out, a = [], 0
    for w in ws:
        b = a + w.shape[0]
        out.append((q[a:b].contiguous(), {"loss": float(info["rows_loss"][a:b].sum()), "dead": info["dead"],
                                          "damp": info["damp"], "quantized": rows_of(info["quantized"], a, b),
                                          "rows_loss": info["rows_loss"][a:b]}))
        a = b
    return out
