"""Stream beats and expected results for the FP16 baselines (``rtl/baselines.py``).

The same case dictionaries as :func:`verif.engine_vectors.case` (keys ``name, fmt,
scale_format, O, K, ideal_cycles, beats {cmd, act, wgt, meta, res}, valid_rows``), so the
unchanged engine testbench ``verif/test_engine.py`` drives the baselines. Expected results
come from ``sw.baselines`` (bit exact). Layouts: ``rtl.engine.cmd_layout(cfg)`` and
``rtl.baselines.baseline_meta_layout(B)`` (the engine's meta layout with the baseline's code
width ``B``: 16 for FP16, 8 for FP16xINT8).

Kinds of data: ``random``; ``corners`` (all-zero groups, fp16 subnormal activations and
weights, max-magnitude weights and activations, mixed magnitudes, a row whose result depends
on the lane-reduction order; for INT8 the engine's weight corners:
an all-zero group, a ramp, a huge group, subnormal fp16 scales, plus codes -128 and a group
whose activation exponents grow every step, alternating in sign, from 2**-24 to 2**15, so the
block accumulator shifts on every step and negative products floor away); ``specials`` (FP16 only:
+-inf and NaN weights and an infinite and a negative-zero activation: +-inf and canonical-NaN results).
"""
from __future__ import annotations

import dataclasses
import math

import torch

from sw import baselines as SB
from sw.formats import get_scale_format

from .engine_vectors import _fields, activations, quantize_for


def _fp16_acts(cfg, K: int, seed: int, kind: str) -> torch.Tensor:
    c = cfg if cfg.act_mode == "fp16" else dataclasses.replace(cfg, act_mode="fp16", act_bits=16)
    return activations(c, K, seed, "corners" if kind in ("corners", "specials") else "random")


def fp16_weights(cfg, O: int, K: int, seed: int, kind: str = "random") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 7)
    w = torch.randn(O, K, generator=g) * torch.exp(torch.randn(O, 1, generator=g))
    G = cfg.group_size
    if kind == "corners":
        w[0, :G] = 0.0                                   # an all-zero group
        if O > 1:
            w[1] *= 1e-5                                 # fp16 subnormal weights
        if O > 2:
            w[2, ::2] *= 1e4                             # magnitudes 1e4 apart in one row
        w[-1, -G:] = 65504.0 * torch.sign(torch.randn(G, generator=g))   # max x max products
    w = w.to(torch.float16)
    if kind == "specials":
        if K < 8:
            raise ValueError("the specials case needs K >= 8")
        spec = {0: [(5, "inf"), (-1, -1.0)],               # +inf + (-1 x -inf) = +inf
                1: [(3, "nan")],                           # NaN
                2: [(0, "-inf"), (1, "inf")],              # -inf + inf = NaN
                3: [(3, "inf")],                           # inf x -0 = NaN
                4: [(0, "-inf"), (-1, 1.0)]}               # -inf + (1 x -inf) = -inf
        for r in range(O):
            for k, v in spec.get(r, [(-1, (1.0, -1.0, 0.0)[r % 3])]):   # x[-1] = -inf: -inf, +inf or NaN
                w[r, k] = float(v)
    return w


def _specials_acts(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x[0], x[1], x[3], x[5], x[-1] = 1.0, 2.0, -0.0, 3.0, float("-inf")
    return x


def _beats(cfg, B: int, codes: torch.Tensor, scale_bits: torch.Tensor | None, xbits: torch.Tensor,
           y: torch.Tensor, fmt_index: int, sfmt_index: int, meta_seed: int) -> tuple[dict, list[int]]:
    """Beat lists for codes ``[O, K]`` (raw ``B``-bit ints), scales ``[O, ng]`` (or None: the
    meta beats then carry pseudo-random bits, which the FP16 baseline must ignore)."""
    from rtl.baselines import baseline_meta_layout
    from rtl.engine import cmd_layout

    R, L, G = cfg.rows, cfg.lanes, cfg.group_size
    O, K = codes.shape
    tiles = math.ceil(O / R)
    n_groups = K // G
    if K % G or n_groups < 1:
        raise ValueError(f"K={K} is not a positive multiple of group_size={G}")
    if n_groups > cfg.max_groups:
        raise ValueError(f"K={K} needs {n_groups} groups but the engine has max_groups={cfg.max_groups}")
    pad = torch.zeros(tiles * R, K, dtype=torch.int64)
    pad[:O] = codes
    mw = 18 + B
    if scale_bits is None:
        g = torch.Generator().manual_seed(meta_seed)
        meta_rows = torch.randint(0, 1 << 30, (tiles * R, n_groups), generator=g, dtype=torch.int64)
        meta_rows = meta_rows & ((1 << mw) - 1)
    else:
        mf = _fields(baseline_meta_layout(B))
        meta_rows = torch.zeros(tiles * R, n_groups, dtype=torch.int64)
        meta_rows[:O] = scale_bits << mf["scale"][0]
    cf = _fields(cmd_layout(cfg))
    cmd = (fmt_index << cf["fmt"][0]) | (sfmt_index << cf["scale_fmt"][0]) | (n_groups << cf["n_groups"][0])
    act_beats = [sum(int(xbits[s * L + l]) << (16 * l) for l in range(L)) for s in range(K // L)]
    ybits = torch.zeros(tiles * R, dtype=torch.int64)
    ybits[:O] = y.view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    beats = {"cmd": [], "act": [], "wgt": [], "meta": [], "res": []}
    for t in range(tiles):
        rows = range(t * R, (t + 1) * R)
        beats["cmd"].append(cmd)
        beats["act"] += act_beats
        for s in range(K // L):
            beats["wgt"].append(sum(int(pad[o, s * L + l]) << ((r * L + l) * B)
                                    for r, o in enumerate(rows) for l in range(L)))
        for gi in range(n_groups):
            beats["meta"].append(sum(int(meta_rows[o, gi]) << (r * mw) for r, o in enumerate(rows)))
        beats["res"].append(sum(int(ybits[o]) << (32 * r) for r, o in enumerate(rows)))
    return beats, [min(R, O - t * R) for t in range(tiles)]


def _bits16(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int16).to(torch.int64) & 0xFFFF


def sequential_reduce(p: torch.Tensor, lanes: int) -> torch.Tensor:
    """The lane sums of :func:`sw.baselines.lane_reduce` added in the *other* obvious order,
    ``((acc0 + acc1) + acc2) + ...``: what the corners case must tell apart."""
    O, K = p.shape
    acc = torch.zeros(O, lanes, dtype=torch.float32)
    for s in range(K // lanes):
        acc = acc + p[:, s * lanes:(s + 1) * lanes]
    y = acc[:, 0]
    for l in range(1, lanes):
        y = y + acc[:, l]
    return y


def _order_row(w: torch.Tensor, x: torch.Tensor, lanes: int) -> None:
    """Row 3 of the corners case: a result that depends on the lane-reduction order.

    Only the last step is non-zero, with the sign of its (+-65504) activations: lane 0's
    weight is ``2**10`` (product ~2**26, fp32 ulp 4), the others' alternate between two small
    values, the first pair from a fixed list for which the documented halving tree and
    :func:`sequential_reduce` round differently (none exists for 2 lanes: both orders are
    ``acc0 + acc1``).
    """
    if w.shape[0] <= 3 or lanes < 3:
        return
    small = [2.0 ** -4, 3 * 2.0 ** -6, 2.0 ** -3, 5 * 2.0 ** -7, 2.0 ** -5, 3 * 2.0 ** -5]
    sign = torch.sign(x[-lanes:].float())
    for a in small:
        for b in small:
            row = torch.zeros(1, w.shape[1], dtype=torch.float16)
            mags = torch.tensor([2.0 ** 10] + [(a, b)[l % 2] for l in range(lanes - 1)])
            row[0, -lanes:] = (mags * sign).to(torch.float16)
            p = row.float() * x.float()
            if SB.lane_reduce(p, lanes).item() != sequential_reduce(p, lanes).item():
                w[3] = row[0]
                return
    raise AssertionError(f"no order-sensitive row found for lanes={lanes}")


def fp16_operands(cfg, O: int, K: int, seed: int = 0, kind: str = "random") -> tuple[torch.Tensor, torch.Tensor]:
    """Weights ``[O, K]`` and activations ``[K]`` (float16) of :func:`fp16_case`."""
    if kind not in ("random", "corners", "specials"):
        raise ValueError(f"kind={kind!r}; choose random, corners or specials")
    w = fp16_weights(cfg, O, K, seed, kind)
    x = _fp16_acts(cfg, K, seed, kind)
    if kind == "specials":
        x = _specials_acts(x)
    if kind == "corners":
        _order_row(w, x, cfg.lanes)
    return w, x


def fp16_case(cfg, O: int, K: int, seed: int = 0, kind: str = "random") -> dict:
    """One GEMV on :class:`rtl.baselines.Fp16MacEngine` as stream beats (``fmt`` "fp16")."""
    w, x = fp16_operands(cfg, O, K, seed, kind)
    y = SB.fp16_mac_gemv(w, x, cfg.lanes)
    fmt_index = cfg.formats.index("fp16") if "fp16" in cfg.formats else 0
    sfmt_index = cfg.scale_formats.index("fp16") if "fp16" in cfg.scale_formats else 0
    beats, valid_rows = _beats(cfg, 16, _bits16(w), None, _bits16(x), y, fmt_index, sfmt_index, seed + 99)
    tiles = math.ceil(O / cfg.rows)
    return {"name": f"fp16xfp16/{kind}/O{O}xK{K}", "fmt": "fp16", "scale_format": "none", "O": O, "K": K,
            "ideal_cycles": tiles * (K // cfg.lanes), "beats": beats, "valid_rows": valid_rows}


def _int8_corners(cfg, q, x: torch.Tensor) -> None:
    """In place: codes -128 at the start of the last row; if ``K >= 3G`` the third group's
    activations ``(-1)^k 2^(-24 + 39 k/(G-1))`` (rising exponents, alternating signs)."""
    G = cfg.group_size
    n = min(G, q.codes.shape[1])
    q.codes[-1, :n:3] = -128 if q.codes.dtype == torch.int8 else 128
    if x.numel() >= 3 * G:
        k = torch.arange(G, dtype=torch.float64)
        v = torch.exp2(-24 + 39 * k / max(1, G - 1)) * (1 - 2 * (k % 2))
        x[2 * G:3 * G] = v.clamp(-60000, 60000).to(torch.float16)


def int8_case(cfg, O: int, K: int, seed: int = 0, kind: str = "random") -> dict:
    """One GEMV on :class:`rtl.baselines.Fp16Int8Engine` as stream beats (``fmt`` "int8", fp16 scales)."""
    if kind not in ("random", "corners"):
        raise ValueError(f"kind={kind!r}; choose random or corners")
    q = quantize_for(cfg, "int8", O, K, "fp16", seed, kind)
    x = _fp16_acts(cfg, K, seed, kind)
    if kind == "corners":
        _int8_corners(cfg, q, x)
    y = SB.fp16_int8_gemv(q, x, cfg.lanes)
    scale_bits = get_scale_format("fp16").to_bits(q.scales).to(torch.int64)
    fmt_index = cfg.formats.index("int8") if "int8" in cfg.formats else 0
    sfmt_index = cfg.scale_formats.index("fp16") if "fp16" in cfg.scale_formats else 0
    beats, valid_rows = _beats(cfg, 8, q.codes.to(torch.int64) & 0xFF, scale_bits, _bits16(x), y,
                               fmt_index, sfmt_index, seed + 99)
    tiles = math.ceil(O / cfg.rows)
    return {"name": f"fp16xint8/fp16/{kind}/O{O}xK{K}", "fmt": "int8", "scale_format": "fp16", "O": O, "K": K,
            "ideal_cycles": tiles * (K // cfg.lanes), "beats": beats, "valid_rows": valid_rows}
