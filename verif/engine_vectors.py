"""Stream beats and expected results for the engine, drawn from the golden model.

Everything here runs in the pytest process (torch); the cocotb side receives plain
integers through a JSON file, so the simulator never imports torch.
"""
from __future__ import annotations

import math

import torch

import sw
from sw import datapath as D
from sw import terms as T
from sw.formats import get_scale_format
from sw.pack import pack
from sw.weight_stream import beat_word, fill_cycles, tile_words


def _fields(layout) -> dict:
    return {name: (f.offset, f.width) for name, f in layout}


def quantize_for(cfg, fmt: str, O: int, K: int, scale_format: str, seed: int, kind: str = "random"):
    """A quantized [O, K] weight for the engine, with corner cases mixed in."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(O, K, generator=g) * torch.exp(torch.randn(O, 1, generator=g))
    if kind == "corners":
        G = cfg.group_size
        w[0, :G] = 0.0                                  # an all-zero group
        if K >= 2 * G:
            w[0, G:2 * G] = torch.linspace(-1, 1, G)     # a ramp
        w[-1, -G:] *= 1e3                               # a huge group (large scale exponents)
        if O > 1:
            w[1, :] *= 1e-5                             # tiny weights: subnormal fp16 scales
    return sw.quantize(w, fmt, group_size=cfg.group_size, scale_format=scale_format)


def activations(cfg, K: int, seed: int, kind: str = "random") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 1)
    if cfg.act_mode == "int8":
        x = torch.randint(-128, 128, (K,), generator=g, dtype=torch.int8)
        if kind == "corners":
            x[: cfg.group_size] = -128
        return x
    x = (torch.randn(K, generator=g) * torch.exp(2 * torch.randn(K, generator=g))).clamp(-60000, 60000)
    if kind == "corners":
        G = cfg.group_size
        x[:G] = 0.0                                      # all-zero group
        if K >= 2 * G:
            x[G:2 * G] = 6e-8 * torch.arange(G)          # fp16 subnormals
        x[-G:] = 65504.0 * torch.sign(torch.randn(G, generator=g))   # max magnitudes
    return x.to(torch.float16)


def case(cfg, fmt: str, scale_format: str, O: int, K: int, seed: int = 0, kind: str = "random") -> dict:
    """One GEMV as stream beats: ``cmd``, ``act``, ``wgt``, ``meta`` lists and the expected ``res``."""
    from rtl.engine import cmd_layout, meta_layout

    R, L, B, G = cfg.rows, cfg.lanes, cfg.code_bits, cfg.group_size
    if fmt not in cfg.formats:
        raise ValueError(f"format {fmt!r} is not one the engine's decoders were built with "
                         f"(engine.formats = {list(cfg.formats)})")
    if scale_format not in cfg.scale_formats:
        raise ValueError(f"scale_format {scale_format!r} is not in engine.scale_formats = {list(cfg.scale_formats)}")
    q = quantize_for(cfg, fmt, O, K, scale_format, seed, kind)
    x = activations(cfg, K, seed, kind)
    y = D.gemv(q, x, fmt=fmt, act_mode=cfg.act_mode, act_bits=cfg.act_bits)
    tiles = math.ceil(O / R)
    n_groups = K // G
    if n_groups > cfg.max_groups:
        raise ValueError(f"K={K} needs {n_groups} groups but the engine has max_groups={cfg.max_groups}")

    img = pack(q)                       # the memory image the weight port reads
    sf = get_scale_format(scale_format)
    scale_bits = torch.zeros(tiles * R, n_groups, dtype=torch.int64)
    scale_bits[:O] = sf.to_bits(q.scales)
    sel = torch.zeros(tiles * R, n_groups, dtype=torch.int64)
    if q.selectors is not None:
        sel[:O] = q.selectors.long()
    zp = torch.zeros(tiles * R, n_groups, dtype=torch.int64)
    if q.zero_points is not None:
        zp[:O] = q.zero_points.long()
    # Bits the interface documents as ignored carry garbage: zp bits above the format's width
    # (all of zp for symmetric formats), sel of non-BitMoD formats, scale[15:8] of e8m0, and
    # every meta field of padded rows.
    gen = torch.Generator().manual_seed(seed + 7)
    b = T.code_bits(fmt)
    junk = lambda shape, bits: torch.randint(0, 1 << bits, shape, generator=gen)  # noqa: E731
    zp = zp | (junk(zp.shape, B - b) << b if T.is_asym(fmt) and B > b else 0)
    if not T.is_asym(fmt):
        zp = junk(zp.shape, B)
    if q.selectors is None:
        sel = junk(sel.shape, 2)
    if scale_format == "e8m0":
        scale_bits |= junk(scale_bits.shape, 8) << 8
    if O < tiles * R:
        scale_bits[O:] = junk(scale_bits[O:].shape, 16)
        sel[O:] = junk(sel[O:].shape, 2)
        zp[O:] = junk(zp[O:].shape, B)

    if cfg.act_mode == "fp16":
        xbits = x.view(torch.int16).to(torch.int64) & 0xFFFF
    else:
        xbits = x.to(torch.int64) & 0xFF

    cf = _fields(cmd_layout(cfg))
    mf = _fields(meta_layout(cfg))
    mw = 18 + B
    cmd = ((cfg.formats.index(fmt) << cf["fmt"][0]) | (cfg.scale_formats.index(scale_format) << cf["scale_fmt"][0])
           | (n_groups << cf["n_groups"][0]))
    # act beat: lane l at [16l+15:16l]; fp16 mode: the group's block exponent at [16L+4:16L]
    # (read on the group's first beat only: it is sent on every beat here)
    emax = D.block_exponents(x, G).tolist() if cfg.act_mode == "fp16" else None
    act_beats = []
    for s in range(K // L):
        beat = sum(int(xbits[s * L + l]) << (16 * l) for l in range(L))
        if emax is not None:
            beat |= emax[s * L // G] << (16 * L)
        act_beats.append(beat)
    beats = {"cmd": [], "act": [], "wgt": [], "meta": [], "res": []}
    ybits = torch.zeros(tiles * R, dtype=torch.int64)
    ybits[:O] = y.view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    for t in range(tiles):
        rows = range(t * R, (t + 1) * R)
        beats["cmd"].append(cmd)
        beats["act"] += act_beats
        beats["wgt"] += [beat_word(b, cfg.word_bits) for b in tile_words(img, fmt, r0=t * R, rows=R, k0=0, k1=K,
                                                                         word_bits=cfg.word_bits)]
        for gi in range(n_groups):
            beats["meta"].append(sum(((int(scale_bits[o, gi]) << mf["scale"][0]) | (int(sel[o, gi]) << mf["sel"][0])
                                      | (int(zp[o, gi]) << mf["zp"][0])) << (r * mw) for r, o in enumerate(rows)))
        beats["res"].append(sum(int(ybits[o]) << (32 * r) for r, o in enumerate(rows)))
    ideal = tiles * (K // L) * T.terms(fmt)
    model = cfg.shape.gemv_cycles(T.terms(fmt), O, K, fill=fill_cycles(fmt))
    return {"name": f"{fmt}/{scale_format}/{kind}/O{O}xK{K}", "fmt": fmt, "scale_format": scale_format,
            "O": O, "K": K, "ideal_cycles": ideal, "model_cycles": model, "beats": beats,
            "valid_rows": [min(R, O - t * R) for t in range(tiles)]}
