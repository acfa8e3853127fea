"""Quick amaranth.sim checks of the term decoder and the FP6 split unpacker, plus Verilog conversion.

(The exhaustive checks run under cocotb in tests/test_cocotb_units.py.)
"""
from __future__ import annotations

import inspect
import random

import pytest
import torch
from amaranth.back import verilog
from amaranth.sim import Simulator

from rtl.decoder import TermDecoder, reference
from rtl.fp6_unpack import Fp6SplitUnpacker, crumb_slice, nibble_slice
from sw import pack as P
from sw import terms as T

FORMATS = list(T.HW_FORMATS)


def _expected(fmt, code, sel, term):
    """Straight from sw.terms.decompose (independent of rtl.decoder.reference)."""
    b = T.code_bits(fmt)
    ts = T.decompose(fmt, code & ((1 << b) - 1), sel if T.BITMOD.get(fmt) else 0)
    if term >= len(ts) or ts[term].zero:
        return (0, 0, 1)
    return (ts[term].sign, ts[term].shift, 0)


def _samples(rng, fmt, per_format=48):
    """Every code of <= 4-bit formats, a random sample (plus corners) of wider ones; upper code
    bits randomised (they must be ignored)."""
    b = T.code_bits(fmt)
    codes = list(range(1 << b)) if b <= 4 else sorted({0, 1, (1 << (b - 1)) - 1, 1 << (b - 1), (1 << b) - 1}
                                                      | {rng.randrange(1 << b) for _ in range(per_format)})
    return [(c | (rng.randrange(256) >> b << b), s) for c in codes for s in range(4)]


def test_reference_matches_decompose():
    for f in FORMATS:
        for c in range(1 << T.code_bits(f)):
            for s in range(4):
                for t in range(4):
                    assert reference(f, c, s, t) == _expected(f, c, s, t)


def test_decoder_sim_sample_every_format():
    dut = TermDecoder(FORMATS, 4, 4, 8)
    rng = random.Random(3)
    cases = [(i, f, code, s, t) for i, f in enumerate(FORMATS) for code, s in _samples(rng, f) for t in range(4)]
    errors = []

    async def tb(ctx):
        ctx.set(dut.fmt, len(FORMATS))          # an unused format index: zero terms
        ctx.set(dut.code, 0x5A)
        assert (ctx.get(dut.sign), ctx.get(dut.shift), ctx.get(dut.zero)) == (0, 0, 1)
        for i, f, code, s, t in cases:
            ctx.set(dut.fmt, i)
            ctx.set(dut.code, code)
            ctx.set(dut.sel, s)
            ctx.set(dut.term, t)
            got = (ctx.get(dut.sign), ctx.get(dut.shift), ctx.get(dut.zero))
            want = _expected(f, code, s, t)
            if got != want:
                errors.append((f, code, s, t, got, want))

    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()
    assert len(cases) > 2000
    assert not errors, f"{len(errors)} mismatches, first: {errors[:5]}"


def test_decoder_single_format_and_subset():
    # narrow builds: one format (fmt port still 1 bit wide), and a subset in a different order
    for formats, code_bits, max_terms, shift_bits in ((["int4"], 4, 2, 2), (["fp6_e2m3", "bitmod3"], 6, 3, 3)):
        dut = TermDecoder(formats, max_terms, shift_bits, code_bits)
        assert len(dut.fmt) == 1 and len(dut.code) == code_bits and len(dut.shift) == shift_bits

        async def tb(ctx, dut=dut, formats=formats, code_bits=code_bits, max_terms=max_terms):
            for i, f in enumerate(formats):
                for code in range(1 << code_bits):
                    for s in range(4):
                        for t in range(max_terms):
                            ctx.set(dut.fmt, i)
                            ctx.set(dut.code, code)
                            ctx.set(dut.sel, s)
                            ctx.set(dut.term, t)
                            got = (ctx.get(dut.sign), ctx.get(dut.shift), ctx.get(dut.zero))
                            assert got == _expected(f, code, s, t), (f, code, s, t, got)

        sim = Simulator(dut)
        sim.add_testbench(tb)
        sim.run()


@pytest.mark.parametrize("kw, match", [
    (dict(formats=["int8"], max_terms=3, shift_bits=4, code_bits=8), "max_terms"),
    (dict(formats=["fp6_e3m2"], max_terms=2, shift_bits=3, code_bits=6), "shift_bits"),
    (dict(formats=["int6"], max_terms=3, shift_bits=3, code_bits=4), "code_bits"),
    (dict(formats=["fp8_e4m3"], max_terms=4, shift_bits=4, code_bits=8), "no hardware decoder"),
    (dict(formats=[], max_terms=4, shift_bits=4, code_bits=8), "at least one"),
    (dict(formats=["int4", "int4"], max_terms=4, shift_bits=4, code_bits=8), "twice"),
])
def test_decoder_rejects_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        TermDecoder(**kw)


def test_fp6_slices_match_sw_pack():
    # the bit positions the unpacker wires up, read back from real packed streams
    codes = torch.randint(0, 64, (32,), generator=torch.Generator().manual_seed(5))
    seg2, seg4 = P.pack_fp6_split(codes)
    w2 = int.from_bytes(bytes(seg2.tolist()), "little")
    w4 = int.from_bytes(bytes(seg4.tolist()), "little")
    for i, c in enumerate(codes.tolist()):
        lo2, hi2 = crumb_slice(i)
        lo4, hi4 = nibble_slice(i)
        assert (w2 >> lo2) & ((1 << (hi2 - lo2)) - 1) == c >> 4
        assert (w4 >> lo4) & ((1 << (hi4 - lo4)) - 1) == c & 0xF


def test_fp6_unpacker_sim_back_pressure():
    n, beats = 8, 40
    rng = random.Random(11)
    codes = torch.randint(0, 64, (n * beats,), generator=torch.Generator().manual_seed(2))
    seg2, seg4 = P.pack_fp6_split(codes)
    b2 = [int.from_bytes(bytes(seg2[i * n // 4:(i + 1) * n // 4].tolist()), "little") for i in range(beats)]
    b4 = [int.from_bytes(bytes(seg4[i * n // 2:(i + 1) * n // 2].tolist()), "little") for i in range(beats)]
    want = [sum(c << (6 * k) for k, c in enumerate(codes[i * n:(i + 1) * n].tolist())) for i in range(beats)]
    dut = Fp6SplitUnpacker(n)
    got = []

    async def tb(ctx):
        i2 = i4 = 0
        hold2 = hold4 = False                   # valid raised, beat not yet accepted: keep it
        for _ in range(20 * beats):
            v2 = i2 < beats and (hold2 or rng.random() < 0.7)
            v4 = i4 < beats and (hold4 or rng.random() < 0.7)
            ctx.set(dut.seg2.valid, v2)
            ctx.set(dut.seg4.valid, v4)
            ctx.set(dut.seg2.payload, b2[i2] if v2 else rng.getrandbits(2 * n))
            ctx.set(dut.seg4.payload, b4[i4] if v4 else rng.getrandbits(4 * n))
            ctx.set(dut.codes.ready, rng.random() < 0.6)
            t2 = bool(v2 and ctx.get(dut.seg2.ready))
            t4 = bool(v4 and ctx.get(dut.seg4.ready))
            assert t2 == t4, "both segments must be consumed in the same cycle"
            if ctx.get(dut.codes.valid) and ctx.get(dut.codes.ready):
                got.append(ctx.get(dut.codes.payload))
            await ctx.tick()
            i2, i4 = i2 + t2, i4 + t4
            hold2, hold4 = v2 and not t2, v4 and not t4
            if len(got) == beats:
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert got == want


@pytest.mark.parametrize("n", [0, 6, -4])
def test_fp6_unpacker_rejects_bad_n(n):
    with pytest.raises(ValueError, match="multiple of 4"):
        Fp6SplitUnpacker(n)


def test_verilog_convert_both():
    v = verilog.convert(TermDecoder(FORMATS, 4, 4, 8), name="bitmix_term_decoder", emit_src=False)
    assert "module bitmix_term_decoder" in v
    for port in ("input [7:0] code", "input [3:0] fmt", "input [1:0] sel", "input [1:0] term",
                 "output sign", "output [3:0] shift", "output zero"):
        assert port in v
    assert "posedge" not in v                       # combinational: no state
    u = verilog.convert(Fp6SplitUnpacker(32), name="bitmix_fp6_unpacker", emit_src=False)
    for port in ("input [63:0] seg2__payload", "input [127:0] seg4__payload", "output [191:0] codes__payload",
                 "input seg2__valid", "output seg2__ready", "input seg4__valid", "output seg4__ready",
                 "output codes__valid", "input codes__ready", "input clk", "input rst"):
        assert port in u


def test_max_lane_shift():
    # the lane part of a shift is (|d| == 2) + x: 1 for INT, x_max + 1 for FP (E3M2: x <= 6)
    from rtl.decoder import max_lane_shift
    assert max_lane_shift(["int4"]) == 1
    assert max_lane_shift(["int8", "int3_asym"]) == 1
    assert max_lane_shift(["fp4_e2m1", "bitmod4"]) == 4          # BitMoD4's -8.0 special: 1 << 4
    assert max_lane_shift(FORMATS) == 7


@pytest.mark.parametrize("cls", ["TermControl", "LaneDecoder"])
@pytest.mark.parametrize("kw, message", [
    (dict(formats=["int8"], max_terms=3, shift_bits=4, code_bits=8), "max_terms=3 is below int8's 4 terms"),
    (dict(formats=["fp6_e3m2"], max_terms=2, shift_bits=3, code_bits=6),
     "shift_bits=3 cannot hold fp6_e3m2's largest shift 9"),
    (dict(formats=["int6"], max_terms=3, shift_bits=3, code_bits=4), "code_bits=4 is narrower than int6's 6-bit codes"),
    (dict(formats=[], max_terms=4, shift_bits=4, code_bits=8), "TermDecoder needs at least one format"),
    (dict(formats=["int4", "int4"], max_terms=4, shift_bits=4, code_bits=8), "formats ['int4', 'int4'] list a format twice"),
])
def test_decoder_halves_reject_bad_parameters_exactly(cls, kw, message):
    import re

    import rtl.decoder as D
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        getattr(D, cls)(**kw)
    params = inspect.signature(getattr(D, cls).__init__).parameters
    assert {n: p.kind for n, p in params.items() if n != "self"} == dict.fromkeys(
        ("formats", "max_terms", "shift_bits", "code_bits"), inspect.Parameter.KEYWORD_ONLY)


@pytest.mark.parametrize("formats", [["int4"], ["int4", "fp4_e2m1"], FORMATS])
def test_control_has_no_input_less_processes(formats):
    """Every control field is driven by a process with inputs: an ``always @*`` block of constants
    alone never runs in an event-driven simulator (Icarus), leaving the field X."""
    import re

    from rtl.decoder import TermControl
    mt = max(T.terms(f) for f in formats)
    sb = max(T.max_shift(f) for f in formats).bit_length()
    cb = max(T.code_bits(f) for f in formats)
    v = verilog.convert(TermControl(formats=formats, max_terms=mt, shift_bits=sb, code_bits=cb), name="ctl",
                        emit_src=False)
    assert re.findall(r"always @\*\n\s+(?!begin)[^\n]*", v) == []
