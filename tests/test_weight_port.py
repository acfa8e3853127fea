"""rtl.weight_port.WeightPort and sw.weight_stream: packed words from sw.pack in, exact wgt beats out.

The simulations (amaranth.sim) stream tiles of ``sw.pack.pack(q)`` images through the port with
random gaps on ``words`` and random ``wgt.ready``, switch formats between tiles, and check every
taken beat against the engine's ``wgt`` payload built from the quantized codes, the stream rule
(payload and valid stable while ``valid & ~ready``) and ``idle`` at every tile boundary.
"""
from __future__ import annotations

import gc
import random
import re
import warnings

import pytest
import torch
from amaranth import ClockDomain, Module
from amaranth.back import verilog
from amaranth.hdl import UnusedElaboratable
from amaranth.sim import Simulator

import sw
from rtl.fp6_unpack import crumb_slice, nibble_slice
from rtl.weight_port import Phase, WeightPort, _window_offsets, format_plan, msb_first_bits
from sw import pack as P
from sw import terms as T
from sw import weight_stream as WS

ALL = list(T.HW_FORMATS)


# ---------------------------------------------------------------------------- stimulus
def quantized(fmt, O, K, G, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(O, K, generator=g) * torch.exp(torch.randn(O, 1, generator=g))
    return sw.quantize(w, fmt, group_size=G)


def tiles_for(fmt, *, R, L, G, O, K, W, seed, k_split=False):
    """``[(fmt, words payloads, [R, k] codes), ...]`` for every row tile of an ``[O, K]`` matrix."""
    q = quantized(fmt, O, K, G, seed)
    img = P.pack(q)
    out = []
    ranges = [(0, K)] if not k_split else [(0, G), (G, K)]
    for r0 in range(0, O, R):
        for k0, k1 in ranges:
            beats = WS.tile_words(img, fmt, r0=r0, rows=R, k0=k0, k1=k1, word_bits=W)
            codes = torch.zeros(R, k1 - k0, dtype=torch.int64)
            n = min(R, O - r0)
            codes[:n] = q.codes[r0:r0 + n, k0:k1].long()
            # the word stream is the memory image: its inverse gives the codes back exactly
            assert torch.equal(WS.words_to_codes(beats, fmt, word_bits=W), codes)
            out.append((fmt, [WS.beat_word(b, W) for b in beats], codes))
    return out


def run(port, tiles, *, seed, p_in=0.7, p_out=0.6, reset_at=None, max_cycles=40000):
    """Stream ``tiles`` through ``port``; returns the number of cycles. ``reset_at``: (tile index,
    words sent) after which ``rst`` is pulsed and that tile restarts from its first word."""
    top = Module()
    top.domains.sync = cd = ClockDomain("sync")
    top.submodules.dut = port
    sim = Simulator(top)
    sim.add_clock(1e-6, domain="sync")
    rng = random.Random(seed)
    R, L, B, W = port.rows, port.lanes, port.code_bits, port.word_bits
    stats = {}

    async def tb(ctx):
        cyc = 0
        did_reset = False
        ti = 0
        while ti < len(tiles):
            fmt, words, codes = tiles[ti]
            expected = WS.wgt_beats(codes, lanes=L, code_bits=B)
            assert ctx.get(port.idle) == 1, f"tile {ti}: port not idle at a tile boundary"
            ctx.set(port.fmt, port.formats.index(fmt))
            wi = oi = 0
            valid_in = 0
            prev = None
            restarted = False
            while oi < len(expected):
                assert cyc < max_cycles, f"tile {ti} ({fmt}): stuck at word {wi}, beat {oi}"
                if reset_at == (ti, wi) and not did_reset:
                    did_reset = True
                    ctx.set(port.words.valid, 0)
                    ctx.set(cd.rst, 1)
                    await ctx.tick()
                    ctx.set(cd.rst, 0)
                    assert ctx.get(port.idle) == 1 and ctx.get(port.wgt.valid) == 0, "reset left data behind"
                    restarted = True
                    break
                if not valid_in and wi < len(words) and rng.random() < p_in:
                    valid_in = 1
                ctx.set(port.words.valid, valid_in)
                ctx.set(port.words.payload, words[wi] if valid_in else rng.getrandbits(R * W))
                rdy = int(rng.random() < p_out)
                ctx.set(port.wgt.ready, rdy)
                w_rdy = ctx.get(port.words.ready)
                o_val = ctx.get(port.wgt.valid)
                raw = ctx.get(port.wgt.payload)
                where = f"tile {ti} ({fmt}) cycle {cyc} (word {wi}, beat {oi})"
                if prev is not None:
                    assert o_val == 1 and raw == prev, f"{where}: wgt changed while stalled"
                if o_val and rdy:
                    assert raw == expected[oi], f"{where}: wgt = {raw:#x}, expected {expected[oi]:#x}"
                    oi += 1
                if valid_in and w_rdy:
                    wi += 1
                    valid_in = 0
                prev = raw if (o_val and not rdy) else None
                await ctx.tick()
                cyc += 1
            if restarted:
                continue
            assert wi == len(words), f"tile {ti} ({fmt}): all beats out after {wi} of {len(words)} words"
            ctx.set(port.words.valid, 0)
            ctx.set(port.wgt.ready, 0)
            await ctx.tick()
            cyc += 1
            assert ctx.get(port.wgt.valid) == 0, f"tile {ti} ({fmt}): an extra wgt beat"
            ti += 1
        stats["cycles"] = cyc

    sim.add_testbench(tb)
    sim.run()
    return stats["cycles"]


# ---------------------------------------------------------------------------- simulations
def test_every_format_random_stalls():
    """The default engine's format set, R=2, L=8, G=64, default word (64 bits): two row tiles
    (the second half padding) of every format in a shuffled order, formats switching per tile."""
    port = WeightPort(formats=ALL, rows=2, lanes=8, group_size=64)
    assert (port.word_bits, port.flop_bits, port.n_phases) == (64, 64, 8)
    tiles = []
    for i, f in enumerate(ALL):
        tiles += tiles_for(f, R=2, L=8, G=64, O=3, K=128, W=64, seed=i)
    random.Random(1).shuffle(tiles)
    run(port, tiles, seed=2)


@pytest.mark.parametrize("formats,R,L,G", [
    (["int4", "int8", "fp6_e3m2", "int6"], 1, 4, 16),          # narrow lanes, FP6 with L=4
    (["fp3", "bitmod3", "int4_asym"], 3, 16, 128),             # wide words, 3-bit beats straddle words
    (["fp6_e2m3", "bitmod4", "int8"], 2, 8, 32),               # FP6 blocks of 32 weights: a group is one
    (["int3", "int4"], 1, 24, 192),                            # L a multiple of 3: 3-bit beats on a word edge
])
def test_geometries_random_stalls(formats, R, L, G):
    port = WeightPort(formats=formats, rows=R, lanes=L, group_size=G)
    W = port.word_bits
    assert W == 8 * L
    tiles = []
    for i, f in enumerate(formats):
        tiles += tiles_for(f, R=R, L=L, G=G, O=R + 1, K=2 * G, W=W, seed=10 + i, k_split=True)
    random.Random(3).shuffle(tiles)
    run(port, tiles, seed=4, p_in=0.8, p_out=0.5)


@pytest.mark.parametrize("p_in,p_out", [(1.0, 1.0), (1.0, 0.2), (0.2, 1.0)])
def test_back_to_back_same_format(p_in, p_out):
    """Tiles of one format stream back to back, including full rate on both sides."""
    port = WeightPort(formats=["int3", "fp6_e3m2", "int8", "int4"], rows=2, lanes=8, group_size=64)
    for i, f in enumerate(port.formats):
        run(port, tiles_for(f, R=2, L=8, G=64, O=4, K=192, W=64, seed=20 + i, k_split=True), seed=5,
            p_in=p_in, p_out=p_out)


def test_reset_mid_tile():
    port = WeightPort(formats=["fp6_e2m3", "int3"], rows=2, lanes=8, group_size=64)
    tiles = tiles_for("fp6_e2m3", R=2, L=8, G=64, O=2, K=128, W=64, seed=30) + \
        tiles_for("int3", R=2, L=8, G=64, O=2, K=128, W=64, seed=31)
    run(port, tiles, seed=6, reset_at=(0, 4))


def engine_cycles(port, fmt, tiles, hold=None):
    """Cycles until the last of ``tiles`` back-to-back tiles' beats is taken, with every word offered
    as soon as the port can take it and an engine that holds each beat ``hold`` cycles (default
    ``terms(fmt)``; ready in the ``hold``-th cycle a beat is valid). Also checks every beat's payload."""
    top = Module()
    top.domains.sync = ClockDomain("sync")
    top.submodules.dut = port
    sim = Simulator(top)
    sim.add_clock(1e-6, domain="sync")
    words = [w for _, ws, _ in tiles for w in ws]
    expected = [b for _, _, c in tiles for b in WS.wgt_beats(c, lanes=port.lanes, code_bits=port.code_bits)]
    terms = T.terms(fmt) if hold is None else hold
    out = {}

    async def tb(ctx):
        ctx.set(port.fmt, port.formats.index(fmt))
        wi = oi = t = cyc = 0
        while oi < len(expected):
            assert cyc < 10000
            ctx.set(port.words.valid, int(wi < len(words)))
            ctx.set(port.words.payload, words[wi] if wi < len(words) else 0)
            v = ctx.get(port.wgt.valid)
            rdy = int(v and t == terms - 1)
            ctx.set(port.wgt.ready, rdy)
            if v and rdy:
                assert ctx.get(port.wgt.payload) == expected[oi]
                oi += 1
                t = 0
            elif v:
                t += 1
            if wi < len(words) and ctx.get(port.words.ready):
                wi += 1
            await ctx.tick()
            cyc += 1
        out["cycles"] = cyc

    sim.add_testbench(tb)
    sim.run()
    return out["cycles"], len(expected)


@pytest.mark.parametrize("fmt", ALL)
def test_full_throughput(fmt):
    """Every format: 3 back-to-back tiles of 2 groups (G=64, L=8: 16 beats per tile) take exactly
    ``terms(fmt)`` cycles per beat; FP6 adds one cycle, its first tile's first ``seg2`` load."""
    port = WeightPort(formats=ALL, rows=1, lanes=8, group_size=64)
    tiles = tiles_for(fmt, R=1, L=8, G=64, O=3, K=128, W=64, seed=50)
    cycles, beats = engine_cycles(port, fmt, tiles)
    assert beats == 48
    assert cycles == 48 * T.terms(fmt) + (1 if WS.is_split(fmt) else 0)
    # and one beat per cycle when the engine takes every beat at once
    port = WeightPort(formats=ALL, rows=1, lanes=8, group_size=64)
    assert engine_cycles(port, fmt, tiles, hold=1) == (48 + (1 if WS.is_split(fmt) else 0), 48)


def test_schedules():
    """The phase tables: INT8 one phase; 4-bit a word per 2 beats; 3-bit 8 beats per 3 words with
    the 2L-bit tail; FP6 the seg2 load, two in-place seg4 words, the last beat from the flops."""
    L, W = 8, 64
    assert format_plan("int8", L).phases == (Phase((("word", 0, 64),), (), True, "beat", (), 0),)
    assert format_plan("int4", L).phases == (Phase((("word", 0, 32),), (), True, "", (), 1),
                                             Phase((("word", 32, 64),), (), True, "beat", (), 0))
    p3 = format_plan("int3", L)
    assert p3.flop_bits == 16 and p3.order == "msb_first"
    assert [s.main for s in p3.phases] == [
        (("word", 0, 24),), (("word", 24, 48),), (("flops", 0, 16), ("word", 0, 8)),
        (("word", 8, 32),), (("word", 32, 56),), (("flops", 8, 16), ("word", 0, 16)),
        (("word", 16, 40),), (("word", 40, 64),)]
    assert [s.take for s in p3.phases] == ["", "beat", "", "", "beat", "", "", "beat"]
    # the 3-bit beats as 3-chunk windows of Cat(tail, word) (2 + 8 chunks of L bits): (3 * phase + 2) % 8
    assert _window_offsets(p3, L) == [2, 5, 0, 3, 6, 1, 4, 7]
    tail = ((0, "word", 48, 64),)
    assert [s.save for s in p3.phases] == [(), tail, (), (), tail, (), (), ()]
    p6 = format_plan("fp6_e2m3", L)
    assert p6.flop_bits == W and p6.split
    assert [(s.main, s.crumb, s.needs_word, s.take, s.save, s.next) for s in p6.phases] == [
        ((), (), True, "load", ((0, "word", 0, 64),), 1),
        ((("word", 0, 32),), (("flops", 0, 16),), True, "", (), 2),
        ((("word", 32, 64),), (("flops", 16, 32),), True, "beat", (), 3),
        ((("word", 0, 32),), (("flops", 32, 48),), True, "beat", ((32, "word", 32, 64), (0, "flops", 48, 64)), 4),
        ((("flops", 32, 64),), (("flops", 0, 16),), False, "opt", ((0, "word", 0, 64),), 1)]


@pytest.mark.parametrize("formats,flops,phases", [
    (["int4"], 0, 2), (["int8"], 0, 2), (["int8", "int4", "fp4_e2m1"], 0, 2),
    (["int3", "int4"], 16, 8), (["fp6_e3m2"], 64, 5), (["int3", "fp6_e3m2"], 64, 8),
])
def test_flop_bits(formats, flops, phases):
    port = WeightPort(formats=formats, rows=1, lanes=8, group_size=128)
    assert (port.flop_bits, max(2, port.n_phases)) == (flops, phases)
    port._MustUse__silence = True


def test_unknown_fmt_stalls_both_sides():
    """fmt past the formats: no beat comes out and no word is taken; INT8 passes the word through."""
    port = WeightPort(formats=["int4", "int8", "int3"], rows=1, lanes=8, group_size=64)
    top = Module()
    top.domains.sync = ClockDomain("sync")
    top.submodules.dut = port
    sim = Simulator(top)
    sim.add_clock(1e-6, domain="sync")
    seen = []

    async def tb(ctx):
        ctx.set(port.fmt, 1)                      # int8: the offered word is the beat
        ctx.set(port.words.valid, 1)
        ctx.set(port.words.payload, 0x0102030405060708)
        ctx.set(port.wgt.ready, 1)
        seen.append((ctx.get(port.wgt.valid), ctx.get(port.wgt.payload), ctx.get(port.words.ready)))
        ctx.set(port.fmt, 0)                      # int4: the low half of the word, not taken yet
        seen.append((ctx.get(port.wgt.valid), ctx.get(port.wgt.payload), ctx.get(port.words.ready)))
        ctx.set(port.fmt, 3)
        seen.append((ctx.get(port.wgt.valid), ctx.get(port.words.ready), ctx.get(port.idle)))

    sim.add_testbench(tb)
    sim.run()
    # int4 codes 8, 0, 7, 0, 6, 0, 5, 0 (LSB-first nibbles of 0x05060708) in 8-bit slots
    assert seen == [(1, 0x0102030405060708, 1), (1, 0x0005000600070008, 0), (0, 0, 1)]


def test_port_matches_the_engine_wgt():
    """The port's wgt and fmt have the widths of the engine's wgt payload and cmd.fmt field."""
    from gen.config import load
    from rtl.engine import Engine, cmd_layout

    cfg = load(None)
    port = WeightPort.for_config(cfg)
    engine = Engine(cfg)
    assert len(port.wgt.payload) == len(engine.wgt.payload) == 256
    assert len(port.fmt) == cmd_layout(cfg)["fmt"].width == 4
    assert (port.word_bits, port.flop_bits) == (64, 64)
    port._MustUse__silence = engine._MustUse__silence = True     # built for their widths only


def test_verilog_ports():
    port = WeightPort(formats=ALL, rows=4, lanes=8, group_size=128)
    text = verilog.convert(port, name="bitmix_weight_port")
    decls = sorted(line.strip() for line in text.splitlines() if re.match(r"\s*(input|output) ", line))
    assert decls == sorted(["input clk;", "input rst;", "input [3:0] fmt;", "output idle;",
                            "input [255:0] words__payload;", "input words__valid;", "output words__ready;",
                            "output [255:0] wgt__payload;", "output wgt__valid;", "input wgt__ready;"])


# ---------------------------------------------------------------------------- bit positions and sw
def test_msb_first_bits_are_the_fp6_slices():
    for i in range(16):
        lo, hi = crumb_slice(i)
        assert msb_first_bits(i, 2) == list(range(lo, hi))
        lo, hi = nibble_slice(i)
        assert msb_first_bits(i, 4) == list(range(lo, hi))
    # 3-bit MSB-first: codes 0b101, 0b011 -> stream 101011.. -> byte 0 = 0b10101100
    assert msb_first_bits(0, 3) == [5, 6, 7] and msb_first_bits(1, 3) == [2, 3, 4]
    assert msb_first_bits(2, 3) == [15, 0, 1]


def test_stream_bits_per_weight():
    assert {f: WS.stream_bits_per_weight(f) for f in ALL} == {
        "int3": 3, "int4": 4, "int6": 6, "int8": 8, "int3_asym": 3, "int4_asym": 4, "fp3": 3,
        "fp4_e2m1": 4, "bitmod3": 3, "bitmod4": 4, "fp6_e3m2": 6, "fp6_e2m3": 6}
    assert WS.segments("fp6_e3m2") == (WS.Segment("seg2", 2, "msb_first"), WS.Segment("seg4", 4, "msb_first"))
    assert WS.segments("int3") == (WS.Segment("codes", 3, "msb_first"),)
    assert WS.segments("bitmod4") == (WS.Segment("codes", 4, "lsb_first"),)


def test_tile_words_layout():
    """INT4 codes 0..15 in a row: word 0 holds bytes 0x10 0x32 0x54 0x76 little-endian; FP6 split
    blocks are seg2 word, seg4 word, seg4 word."""
    q = quantized("int4", 1, 32, 32, 0)
    q.codes[0] = torch.arange(32) % 16
    beats = WS.tile_words(P.pack(q), "int4", r0=0, rows=1, k0=0, k1=32, word_bits=32)
    assert beats == [[0x76543210], [0xFEDCBA98], [0x76543210], [0xFEDCBA98]]
    beats = WS.tile_words(P.pack(q), "int4", r0=0, rows=1, k0=0, k1=32, word_bits=WS.default_word_bits(8))
    assert beats == [[0xFEDCBA9876543210], [0xFEDCBA9876543210]]
    q = quantized("fp6_e3m2", 1, 16, 16, 0)
    q.codes[0] = torch.tensor([0x3F, 0x00, 0x15, 0x2A] * 4)
    img = P.pack(q)
    beats = WS.tile_words(img, "fp6_e3m2", r0=0, rows=1, k0=0, k1=16, word_bits=32)
    s2, s4 = img.streams["seg2"].tolist(), img.streams["seg4"].tolist()
    le = lambda b: int.from_bytes(bytes(b), "little")  # noqa: E731
    assert beats == [[le(s2[0:4])], [le(s4[0:4])], [le(s4[4:8])]]
    assert s2[0] == 0b11000110 and s4[0] == 0xF0


def test_tile_words_errors():
    img = P.pack(quantized("int4", 2, 64, 32, 0))
    with pytest.raises(ValueError, match=re.escape("fmt='int8' has 8-bit codes but the image holds 4-bit ones (int4)")):
        WS.tile_words(img, "int8", r0=0, rows=1, k0=0, k1=64, word_bits=32)
    with pytest.raises(ValueError, match=re.escape("k0=16, k1=64 must be multiples of group_size=32 with "
                                                   "0 <= k0 < k1 <= K=64")):
        WS.tile_words(img, "int4", r0=0, rows=1, k0=16, k1=64, word_bits=32)
    with pytest.raises(ValueError, match=re.escape("r0=2 is outside the image's 2 rows")):
        WS.tile_words(img, "int4", r0=2, rows=1, k0=0, k1=64, word_bits=32)
    plain = P.pack(quantized("fp6_e3m2", 1, 32, 32, 0), fp6_layout="plain")
    with pytest.raises(ValueError, match=re.escape("the weight stream reads 6-bit formats in the 4+2 split; "
                                                   "the image is fp6_layout='plain'")):
        WS.tile_words(plain, "fp6_e3m2", r0=0, rows=1, k0=0, k1=32, word_bits=32)


# ---------------------------------------------------------------------------- parameter errors
ERRORS = [
    (dict(formats="int4"), "formats='int4' must be a non-empty list of format names"),
    (dict(formats=[]), "formats=[] must be a non-empty list of format names"),
    (dict(formats=["int5"]), "formats: 'int5' has no hardware decoder; choose from " + ", ".join(T.HW_FORMATS)),
    (dict(formats=["int4", "int4"]), "formats=['int4', 'int4'] lists a format twice"),
    (dict(rows=0), "rows=0 must be a positive int"),
    (dict(lanes=True), "lanes=True must be a positive int"),
    (dict(group_size=2.0), "group_size=2.0 must be a positive int"),
    (dict(group_size=36), "group_size=36 is not a multiple of lanes=8"),
    (dict(word_bits=32), "word_bits=32: the port reads words in place and needs word_bits = 8 * lanes = 64"),
    (dict(word_bits=0), "word_bits=0: the port reads words in place and needs word_bits = 8 * lanes = 64"),
    (dict(formats=["int3"], lanes=4, group_size=32),
     "lanes=4: a beat of int3 is 12 bits of its codes stream, not whole bytes; int3 needs lanes a multiple of 8"),
    (dict(formats=["fp6_e3m2"], lanes=2, group_size=32),
     "lanes=2: a beat of fp6_e3m2 is 4 bits of its seg2 stream, not whole bytes; fp6_e3m2 needs lanes a "
     "multiple of 4"),
    (dict(formats=["int4", "int3"], group_size=32),
     "group_size=32 x 3 bits (int3, codes stream) is not a multiple of word_bits=64: tiles would not start "
     "on a word"),
    (dict(formats=["fp6_e2m3"], group_size=16),
     "group_size=16 x 2 bits (fp6_e2m3, seg2 stream) is not a multiple of word_bits=64: tiles would not start "
     "on a word"),
    (dict(formats=["int4"], group_size=8),
     "group_size=8 x 4 bits (int4, codes stream) is not a multiple of word_bits=64: tiles would not start "
     "on a word"),
]


@pytest.mark.parametrize("kw,msg", ERRORS, ids=[m[:40] for _, m in ERRORS])
def test_parameter_errors(kw, msg):
    args = dict(formats=["int4"], rows=2, lanes=8, group_size=32) | kw
    with pytest.raises(ValueError, match=re.escape(msg) + "$"):
        WeightPort(**args)


def test_parameters_keyword_only():
    msg = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)   # the half-built instance is dropped here
        try:
            WeightPort(["int4"], 2, 8, 32)
        except TypeError as e:
            msg = str(e)
        gc.collect()
    assert msg == "WeightPort.__init__() takes 1 positional argument but 5 were given"


# ---------------------------------------------------------------------------- cocotb (Icarus, Verilator)
def cocotb_vectors(seed: int = 11) -> dict:
    """Every format of the default engine's set, R=2, L=8, G=64, W=64: both row tiles of a [3, 128]
    matrix from its sw.pack image, formats shuffled, as plain integers."""
    tiles = []
    for i, f in enumerate(ALL):
        for fmt, words, codes in tiles_for(f, R=2, L=8, G=64, O=3, K=128, W=64, seed=40 + i):
            tiles.append({"fmt": ALL.index(fmt), "words": words,
                          "wgt": WS.wgt_beats(codes, lanes=8, code_bits=8)})
    random.Random(seed).shuffle(tiles)
    phases = [{"p_in": 1.0, "p_out": 1.0}, {"p_in": 0.6, "p_out": 0.7}, {"p_in": 0.9, "p_out": 0.2},
              {"p_in": 0.25, "p_out": 0.9}]
    return {"tiles": tiles, "phases": phases, "seed": seed}


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_cocotb_weight_port(sim, sim_build_dir):
    from gen.elaborate import to_verilog
    from verif.runner import run_cocotb

    port = WeightPort(formats=ALL, rows=2, lanes=8, group_size=64)
    res = run_cocotb(to_verilog(port, "bitmix_weight_port"), "bitmix_weight_port", "test_weight_port", sim=sim,
                     build_dir=sim_build_dir, vectors=cocotb_vectors(), expect_tests=1)
    assert res.passed_names == ["weight_port_tiles"]
