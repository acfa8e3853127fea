"""BitMoD mixture quantization (Chen et al., HPCA'25): one of four variants per group.

For every group and every variant ``v`` in selector order (ER+, ER-, EA+, EA-):
``s_v = round_scale(amax / qmax(v))``, ``codes_v = encode_v(x / s_v)``, and the squared
error ``sum((x - decode_v(codes_v) * s_v)^2)`` over the group's finite elements. The
variant with the lowest error wins; on equal error the earlier one (strict ``<``). The
2-bit selector is stored per group next to the scale.

Two implementations give identical bits (a test holds them together):

* :func:`search_generic` encodes with each variant's own table (any rounding mode);
* :func:`search_fast` (used for the symmetric tie rules ``nearest_even`` and
  ``nearest_away``) exploits the structure: a variant differs from its base grid only in
  the *special region* around its special value, and the ER (EA) pair shares one scale.
  So it rounds ``|x/s|`` on the base magnitudes once per distinct scale and patches the
  special region per variant, summing the same per-element errors in the same order.
"""
from __future__ import annotations

import torch

from . import formats as F
from .chunks import for_chunks
from .formats.element import CHUNK
from .group_formats import GroupFormat, register
from .quantized import QuantizedTensor, from_groups, groups_to_meta, to_groups
from .scaling import encode_scaled, finite_amax, round_scale

#: BitMoD format -> the element family whose four variants it mixes.
FAMILIES = {"bitmod4": "fp4", "bitmod3": "fp3"}


def quantize_bitmod(x, name, g, axis, scale_format, rounding, options=None, *,
                    fast: bool | None = None) -> QuantizedTensor:
    """BitMoD kernel of the registry (``options`` unused: BitMoD has no keyword options)."""
    variants = F.bitmod_variants(FAMILIES[name])
    xg = to_groups(x, axis, g)
    if fast is None:
        fast = rounding in ("nearest_even", "nearest_away")
    search = search_fast if fast else search_generic
    codes, s, sel = search(xg, variants, scale_format, rounding)
    return QuantizedTensor(format=name, variants=tuple(variants), codes=from_groups(codes, axis),
                           scales=groups_to_meta(s, axis), group_size=g, axis=axis,
                           scale_format=scale_format, rounding=rounding,
                           selectors=groups_to_meta(sel, axis))


for _name, _family in FAMILIES.items():
    register(GroupFormat(
        _name, "bitmod",
        f"BitMoD {_family.upper()} mixture: per group the best of "
        + "/".join(f"{_family}_{v}" if i == 0 else v for i, v in enumerate(F.VARIANT_ORDER))
        + ", 2-bit selector",
        variants=lambda f=_family: tuple(F.bitmod_variants(f)), kernel=quantize_bitmod, selector_bits=2))


def _select(errs, items):
    """Index of the first minimum per group (strict <), and the chosen items."""
    best = errs[0]
    sel = torch.zeros_like(best, dtype=torch.uint8)
    for i, e in enumerate(errs[1:], 1):
        better = e < best
        best = torch.where(better, e, best)
        sel = torch.where(better, torch.tensor(i, dtype=torch.uint8), sel)
    return sel


def search_generic(xg, variants, scale_format, rounding):
    amax = finite_amax(xg)
    finite = torch.isfinite(xg)
    errs, codes_all, scales = [], [], []
    for v in variants:
        s = round_scale(amax / v.qmax, scale_format)
        codes = encode_scaled(v, xg, s, rounding)
        deq = v.decode_lut[codes.long()] * s.unsqueeze(-1)
        errs.append(torch.where(finite, (xg - deq).square(), 0.0).sum(-1))
        codes_all.append(codes)
        scales.append(s)
    sel = _select(errs, None)
    pick = sel.long()
    s = torch.stack(scales, -1).gather(-1, pick.unsqueeze(-1)).squeeze(-1)
    codes = torch.stack(codes_all, 0).gather(0, pick.unsqueeze(0).unsqueeze(-1).expand(1, *xg.shape)).squeeze(0)
    return codes, s, sel


def _special_region(v: F.BitmodVariant, y: torch.Tensor, rounding: str) -> torch.Tensor:
    """Mask of the ``y`` that ``v`` encodes to its special code (same ties as its table)."""
    k = int((v.values == v.special).nonzero()[0, 0])
    ups = v._tie_up[rounding]
    mask = None
    if k > 0:
        lo, up = float(v.midpoints[k - 1]), bool(ups[k - 1])
        mask = (y >= lo) if up else (y > lo)
    if k < v.midpoints.numel():
        hi, up = float(v.midpoints[k]), bool(ups[k])
        m2 = (y < hi) if up else (y <= hi)
        mask = m2 if mask is None else mask & m2
    return mask


def _magnitude_table(base, rounding):
    """Base magnitudes' midpoints, tie directions and steps for rounding ``|y|``."""
    full = base.values.tolist()
    pos = [p for p in full if p >= 0]
    codes = [int(base.grid_codes[full.index(p)]) for p in pos]
    assert codes == list(range(len(codes))), "magnitude codes must equal the magnitude index"
    mids = [(a + b) / 2 for a, b in zip(pos, pos[1:])]
    ties = [bool(base._tie_up[rounding][full.index(a)]) for a in pos[:-1]]
    steps = [b - a for a, b in zip(pos, pos[1:])]
    return mids, ties, steps


def search_fast(xg, variants, scale_format, rounding):
    base = variants[0].base
    table = _magnitude_table(base, rounding)
    amax = finite_amax(xg)
    scale_of = {}
    for v in variants:
        if v.qmax not in scale_of:
            scale_of[v.qmax] = round_scale(amax / v.qmax, scale_format).reshape(-1)
    flat = xg.reshape(-1, xg.shape[-1])
    codes = torch.empty(flat.shape, dtype=torch.uint8)
    sel = torch.empty(flat.shape[0], dtype=torch.uint8)

    def chunk(r0, r1):
        codes[r0:r1], sel[r0:r1] = _search_chunk(flat[r0:r1], variants, {q: s[r0:r1] for q, s in scale_of.items()},
                                                 table, rounding)
    for_chunks(flat.shape[0], max(1, CHUNK // flat.shape[-1]), chunk)
    scales = torch.stack([scale_of[v.qmax] for v in variants], -1)
    s = scales.gather(-1, sel.long().unsqueeze(-1)).squeeze(-1)
    return codes.reshape(xg.shape), s.reshape(xg.shape[:-1]), sel.reshape(xg.shape[:-1])


def _search_chunk(x, variants, scale_of, table, rounding):
    mids, ties, steps = table
    sign_bit = 1 << (variants[0].bits - 1)
    finite = torch.isfinite(x)
    per_scale = {}
    for q, s in scale_of.items():
        live = (s > 0).unsqueeze(-1)
        sc = s.unsqueeze(-1)
        y = x / torch.where(live, sc, 1.0)
        a = y.abs()
        idx = torch.zeros(a.shape, dtype=torch.uint8)
        mag = torch.zeros(a.shape, dtype=torch.float32)
        for m, up, st in zip(mids, ties, steps):
            b = (a >= m) if up else (a > m)
            idx.add_(b)
            mag.add_(b, alpha=st)
        idx = torch.where(live, idx, 0)
        deq = torch.where(live, torch.copysign(mag, y), 0.0) * sc
        e2 = torch.where(finite, (x - deq).square(), 0.0)
        per_scale[q] = (sc, y, idx, e2, live)
    errs, masks = [], []
    for v in variants:
        sc, y, idx, e2, live = per_scale[v.qmax]
        mask = _special_region(v, y, rounding) & live
        errs.append(torch.where(mask & finite, (x - v.special * sc).square(), e2).sum(-1))
        masks.append(mask)
    sel = _select(errs, None)
    codes = torch.zeros(x.shape, dtype=torch.uint8)
    for i, v in enumerate(variants):
        _, y, idx, _, _ = per_scale[v.qmax]
        c = torch.where((y < 0) & (idx > 0), idx | sign_bit, idx)
        c = torch.where(masks[i], torch.tensor(v.special_code, dtype=torch.uint8), c)
        codes = torch.where((sel == i).unsqueeze(-1), c, codes)
    return codes, sel
