"""Group scales re-fitted by least squares with the codes fixed: AdaQuant's scale objective in closed form.

After GPTQ has chosen every code (and zero point, and BitMoD variant), the layer's output is linear
in its group scales: ``Q[r, j] = u[r, j] * s[r, g(j)]`` with ``u`` the unscaled grid value (minus the
zero point, times NVFP4's tensor scale). :func:`refit_scales` minimises AdaQuant's loss
``||X Q^T - Y||^2`` (``Y``: the float layer's output, on the float model's inputs, so the fit also
absorbs the error the earlier layers left in ``X``) over the scales of each output row, exactly (the
normal equations of ``G`` unknowns per row), rounds them to the scale format, and keeps a row's old
scales unless the rounded ones lower its loss. Codes, zero points and variants are unchanged, so the
result deploys on the same hardware as GPTQ's. "GPTQ + scale refit" in the ``gptq`` section.
"""
from __future__ import annotations

import dataclasses

import torch

from sw.formats import get_scale_format
from sw.quantized import QuantizedTensor, variant_luts

from .gptq import xty

__all__ = ["unscaled_values", "refit_scales"]


def unscaled_values(qt: QuantizedTensor) -> torch.Tensor:
    """``u`` with ``qt.dequantize() == u * scale`` per group (float64, ``[out, in_padded]``): the grid
    value of each code minus its zero point, times the tensor scale (NVFP4). 2-d, groups on the last axis."""
    if qt.codes.dim() != 2 or qt.axis != 1:
        raise ValueError(f"refit needs a 2-d QuantizedTensor grouped along its last axis, got shape "
                         f"{tuple(qt.codes.shape)} and axis {qt.axis}")
    c = qt.codes.long()
    gi = torch.arange(c.shape[1]) // qt.group_size
    if qt.selectors is None:
        vals = qt.element.decode_lut[c]
    else:
        lut = variant_luts(tuple(qt.variants))
        vals = lut[qt.selectors[:, gi].long(), c]
    u = vals.double()
    if qt.zero_points is not None:
        u = u - qt.zero_points[:, gi].double()
    if qt.tensor_scale is not None:
        u = u * float(qt.tensor_scale)
    return u


def refit_scales(qt: QuantizedTensor, x: torch.Tensor, y: torch.Tensor, *,
                 ridge: float = 1e-9, xtx: torch.Tensor | None = None) -> tuple[QuantizedTensor, dict]:
    """``qt`` with each output row's group scales re-fitted to ``min ||x Q^T - y||^2`` (see the module).

    ``x``: ``[n, in]`` layer inputs; ``y``: ``[n, out]`` target outputs (no bias); ``qt``: the layer's
    ``[out, in_padded]`` QuantizedTensor. Returns ``(qt', info)`` with ``info`` = ``{"rows_changed",
    "loss_before", "loss_after"}`` (the summed squared output error on ``x``). A scale that would be
    non-positive, overflow the scale format, or belongs to a group whose scale was 0 stays as it was.
    ``xtx``: ``x^T x`` (``[in, in]`` float64) when the caller has it (GPTQ's :class:`sw.eval.gptq.Hessian`).
    """
    u = unscaled_values(qt)
    out, kp = u.shape
    if x.dim() != 2 or y.dim() != 2 or x.shape[0] != y.shape[0] or y.shape[1] != out or x.shape[1] > kp:
        raise ValueError(f"x [n, in] and y [n, {out}] must share n, with in <= {kp}; got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    k = x.shape[1]
    g = qt.group_size
    G = kp // g
    if xtx is not None and tuple(xtx.shape) != (k, k):
        raise ValueError(f"xtx must be [{k}, {k}] (x^T x), got {tuple(xtx.shape)}")
    H = torch.zeros(kp, kp, dtype=torch.float64)
    H[:k, :k] = xty(x, x) if xtx is None else xtx
    C = torch.zeros(kp, out, dtype=torch.float64)
    C[:k] = xty(x, y)
    yd = y.double()
    U = u.reshape(out, G, g)
    M = torch.einsum("rga,gahb,rhb->rgh", U, H.reshape(G, g, G, g), U)           # [out, G, G]
    b = torch.einsum("rga,gar->rg", U, C.reshape(G, g, out))                      # [out, G]
    yy = float((yd * yd).sum())
    s0 = qt.scales.double()
    live = s0 > 0
    eye = torch.eye(G, dtype=torch.float64)
    scale = ridge * torch.diagonal(M, dim1=1, dim2=2).mean(-1).clamp_min(1e-300)
    sol = torch.linalg.solve(M + scale[:, None, None] * eye, b.unsqueeze(-1)).squeeze(-1)
    sf = get_scale_format(qt.scale_format)
    ok = live & (sol > 0) & (sol <= sf.max) & torch.isfinite(sol)
    s1 = torch.where(ok, sf.round(torch.where(ok, sol, 1.0).float()).double(), s0)
    s1 = torch.where(s1 > 0, s1, s0)                        # a fit that rounds to 0 keeps the old scale

    def loss(s):   # per row: ||x Q_r - y_r||^2 = s^T M s - 2 b^T s + y_r^T y_r
        return torch.einsum("rg,rgh,rh->r", s, M, s) - 2 * (b * s).sum(-1)

    before, after = loss(s0), loss(s1)
    better = after < before
    s_new = torch.where(better[:, None], s1, s0)
    qt2 = dataclasses.replace(qt, scales=s_new.to(qt.scales.dtype))
    return qt2, {"rows_changed": int(better.sum()), "loss_before": float(before.sum()) + yy,
                 "loss_after": float(torch.where(better, after, before).sum()) + yy}
