"""rtl.act_frontend.ActFrontEnd: bit-exact against sw.datapath.align_fp16 / align_int8 (amaranth.sim).

The front end keeps no group buffer: the host sends each group's block exponent ``emax`` with its
first beat. Every cycle the testbench also checks the stream contract exactly:
* ``act.ready == aligned.ready`` and ``aligned.valid == act.valid`` (latency 0, pass-through),
* the aligned payload of every transferred beat (``emax`` on a group's later beats is garbage
  that must be ignored; in int8 mode the upper byte of every lane is garbage too).
"""
from __future__ import annotations

import inspect
import random
import zlib

import pytest
import torch
from amaranth import ClockDomain, Module
from amaranth.back import verilog
from amaranth.sim import Simulator

from rtl.act_frontend import ActFrontEnd, sum_a_bits
from sw.datapath import align_fp16, align_int8, block_exponents

CONFIGS = [(4, 16, 16), (8, 32, 12), (2, 8, 20), (4, 4, 16), (3, 9, 13), (1, 4, 12), (8, 128, 16)]
MODES = ["fp16", "int8"]


# ---------------------------------------------------------------------------- stimulus
def fp16_bits(rng: random.Random, kind: str, n: int, W: int) -> list[int]:
    """``n`` fp16 bit patterns (never inf/NaN) of a group of the given kind."""
    def enc(s, e, f):
        return (s << 15) | (e << 10) | f

    def rnd(elo, ehi):
        return enc(rng.getrandbits(1), rng.randint(elo, ehi), rng.getrandbits(10))

    if kind == "wide":
        return [rnd(0, 30) for _ in range(n)]
    if kind == "subnormal":
        return [rnd(0, 2) if rng.random() < 0.8 else rnd(0, 0) for _ in range(n)]
    if kind == "zeros":      # +0, -0 and a few values
        return [rng.choice([0x0000, 0x8000, 0x0000, 0x8000, rnd(0, 30)]) for _ in range(n)]
    if kind == "all_zero":
        return [rng.choice([0x0000, 0x8000]) for _ in range(n)]
    if kind == "equal_exp":
        e = rng.randint(0, 30)
        return [rnd(e, e) for _ in range(n)]
    if kind == "huge_tiny":  # one huge, many tiny (mostly shifted out entirely)
        v = [rnd(0, 10) for _ in range(n)]
        v[rng.randrange(n)] = rng.choice([0x7BFF, 0xFBFF, rnd(30, 30)])
        return v
    if kind == "shift_edge":  # exponents around emax - (W-1), where the mantissa just vanishes
        emax = 30
        v = [rnd(max(0, emax - W - 1), emax - W + 3) if emax - W + 3 >= 0 else rnd(0, 2) for _ in range(n)]
        v[rng.randrange(n)] = rnd(emax, emax)
        return v
    if kind == "extremes":
        return [rng.choice([0x7BFF, 0xFBFF, 0x0001, 0x8001, 0x03FF, 0x83FF, 0x0400, 0x8400, 0x3C00])
                for _ in range(n)]
    raise AssertionError(kind)


FP16_KINDS = ["wide", "subnormal", "zeros", "all_zero", "equal_exp", "huge_tiny", "shift_edge", "extremes"]
INT8_KINDS = ["rand", "min", "max", "mixed_edges", "zeros"]


def int8_vals(rng: random.Random, kind: str, n: int) -> list[int]:
    if kind == "rand":
        return [rng.randint(-128, 127) for _ in range(n)]
    if kind == "min":
        return [-128] * n
    if kind == "max":
        return [127] * n
    if kind == "mixed_edges":
        return [rng.choice([-128, -127, -1, 0, 1, 126, 127]) for _ in range(n)]
    if kind == "zeros":
        return [0] * n
    raise AssertionError(kind)


def make_groups(rng, L, G, W, mode, n_groups, emax_delta=None):
    """(beats: list of act payload ints, expected: list of per-output-beat dicts).

    ``emax_delta(g)``: added to group ``g``'s true block exponent (clamped to 0..31) to test the
    documented behaviour for a host that sends a larger or smaller ``emax`` than the true one."""
    kinds = FP16_KINDS if mode == "fp16" else INT8_KINDS
    order = [kinds[i % len(kinds)] for i in range(n_groups)]
    rng.shuffle(order)
    lanes_vals = []                       # per element: fp16 bits or int8 value
    for kind in order:
        lanes_vals += fp16_bits(rng, kind, G, W) if mode == "fp16" else int8_vals(rng, kind, G)
    B = G // L
    emax = None
    if mode == "fp16":
        t = torch.tensor([v - 0x10000 if v & 0x8000 else v for v in lanes_vals], dtype=torch.int16)
        x = t.view(torch.float16)
        emax = block_exponents(x, G)
        if emax_delta is not None:
            emax = (emax + torch.tensor([emax_delta(g) for g in range(n_groups)])).clamp(0, 31)
        ref = align_fp16(x, G, W, emax=emax)
        words = lanes_vals
        emax = emax.tolist()
    else:
        ref = align_int8(torch.tensor(lanes_vals, dtype=torch.int8), G)
        # upper byte of each lane is garbage that must be ignored
        words = [(rng.getrandbits(8) << 8) | (v & 0xFF) for v in lanes_vals]
    A, ea, sA = ref.A.tolist(), ref.ea.tolist(), ref.sum_A.tolist()
    beats, expected = [], []
    for k in range(n_groups * B):
        g, i = divmod(k, B)
        beat = sum(words[k * L + l] << (16 * l) for l in range(L))
        if mode == "fp16":   # emax is read on the first beat only: garbage on the others
            beat |= (emax[g] if i == 0 else rng.getrandbits(5)) << (16 * L)
        beats.append(beat)
        prefix = sum(A[g * G:(k + 1) * L])
        if i == B - 1:
            assert prefix == sA[g]
        expected.append({"mant": A[k * L:(k + 1) * L], "ea": ea[g], "sum_a": prefix,
                         "first": int(i == 0), "last": int(i == B - 1)})
    return beats, expected


# ---------------------------------------------------------------------------- payload decoding
def sx(v, bits):
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def decode(raw, L, G, W):
    """Decode the flat aligned payload with the bit offsets documented in the class docstring."""
    S = sum_a_bits(G, W)
    base = L * W
    return {
        "mant": [sx(raw >> (W * l), W) for l in range(L)],
        "ea": sx(raw >> base, 8),
        "sum_a": sx(raw >> (base + 8), S),
        "first": (raw >> (base + 8 + S)) & 1,
        "last": (raw >> (base + 9 + S)) & 1,
    }


# ---------------------------------------------------------------------------- harness
def run(L, G, W, mode, episodes, *, seed, p_in, p_out, max_cycles=20000):
    """Simulate a sequence of episodes separated by resets.

    ``episodes``: list of ``(beats, expected, cut)``. An episode ends after ``cut`` cycles
    (then ``rst`` is pulsed for one cycle; ``cut=None``: when every expected beat was received).
    ``p_in(cycle)`` / ``p_out(cycle)``: probability of asserting a new input valid / output ready.
    Returns per episode the cycle numbers of the input and output transfers and the counts.
    """
    dut = ActFrontEnd(lanes=L, group_size=G, act_bits=W, mode=mode)
    in_bits = 16 * L + (5 if mode == "fp16" else 0)
    B = G // L
    top = Module()
    top.domains.sync = cd = ClockDomain("sync")
    top.submodules.dut = dut
    sim = Simulator(top)
    sim.add_clock(1e-6, domain="sync")
    rng = random.Random(seed)
    logs = []
    width = len(dut.aligned.payload.as_value())
    assert width == L * W + 10 + sum_a_bits(G, W), f"aligned payload is {width} bits"

    async def tb(ctx):
        total = 0
        for ep, (beats, expected, cut) in enumerate(episodes):
            in_i = out_i = cyc = 0
            valid_in = 0
            in_cycles, out_cycles = [], []
            while True:
                if cut is not None and cyc == cut:
                    break
                if cut is None and out_i == len(expected):
                    break
                assert total < max_cycles, f"episode {ep}: no progress after {cyc} cycles (in {in_i}, out {out_i})"
                if not valid_in and in_i < len(beats) and rng.random() < p_in(cyc):
                    valid_in = 1
                ctx.set(dut.act.valid, valid_in)
                ctx.set(dut.act.payload.as_value(), beats[in_i] if valid_in else rng.getrandbits(in_bits))
                rdy = int(rng.random() < p_out(cyc))
                ctx.set(dut.aligned.ready, rdy)
                a_rdy = ctx.get(dut.act.ready)
                o_val = ctx.get(dut.aligned.valid)
                raw = ctx.get(dut.aligned.payload.as_value())
                where = f"episode {ep} cycle {cyc} (in {in_i}, out {out_i} beats)"
                assert a_rdy == rdy, f"{where}: act.ready={a_rdy}, expected aligned.ready={rdy}"
                assert o_val == valid_in, f"{where}: aligned.valid={o_val}, expected act.valid={valid_in}"
                if o_val and rdy:
                    assert out_i < len(expected), f"{where}: unexpected extra output beat"
                    got, exp = decode(raw, L, G, W), expected[out_i]
                    view = ctx.get(dut.aligned.payload)
                    assert [view.mant[l] for l in range(L)] == got["mant"] and view.ea == got["ea"] \
                        and view.sum_a == got["sum_a"] and view.first == got["first"] \
                        and view.last == got["last"], f"{where}: struct view disagrees with the documented bit offsets"
                    g, i = divmod(out_i, B)
                    for key in ("mant", "ea", "first", "last", "sum_a"):
                        assert got[key] == exp[key], \
                            f"{where}: group {g} beat {i}: {key} = {got[key]}, expected {exp[key]}"
                    out_cycles.append(cyc)
                    out_i += 1
                if valid_in and a_rdy:
                    in_cycles.append(cyc)
                    in_i += 1
                    valid_in = 0
                await ctx.tick()
                cyc += 1
                total += 1
            logs.append({"in": in_cycles, "out": out_cycles, "n_in": in_i, "n_out": out_i})
            if cut is not None:
                ctx.set(dut.act.valid, 0)
                ctx.set(dut.aligned.ready, 0)
                ctx.set(cd.rst, 1)
                await ctx.tick()
                ctx.set(cd.rst, 0)
                total += 1
                assert ctx.get(dut.aligned.payload.first) == 1, \
                    f"after reset in episode {ep}: the next beat is not a group's first beat"

    sim.add_testbench(tb)
    sim.run()
    return logs


def phased(*probs, period=37):
    """Cycle through several probabilities, ``period`` cycles each (bursts and long stalls)."""
    return lambda c: probs[(c // period) % len(probs)]


# ---------------------------------------------------------------------------- tests
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("L,G,W", CONFIGS)
def test_random_gaps_bit_exact(L, G, W, mode):
    seed = zlib.crc32(f"{L},{G},{W},{mode}".encode()) & 0xFFFF
    rng = random.Random(seed)
    n_groups = max(16, 192 // (G // L))
    beats, expected = make_groups(rng, L, G, W, mode, n_groups)
    logs = run(L, G, W, mode, [(beats, expected, None)], seed=seed + 1,
               p_in=phased(0.6, 1.0, 0.3, 1.0), p_out=phased(0.5, 1.0, 0.1, 0.8, period=29))
    assert logs[0]["n_out"] == len(expected) == n_groups * (G // L)


@pytest.mark.parametrize("L,G,W", [(4, 16, 16), (3, 9, 13), (8, 128, 16)])
def test_host_emax_off_the_true_maximum(L, G, W):
    """A larger emax only truncates more; a smaller one leaves lanes with e' > emax unshifted
    (``shift = max(0, emax - e')``), exactly as ``align_fp16(..., emax=...)`` models it."""
    rng = random.Random(5)
    beats, expected = make_groups(rng, L, G, W, "fp16", 24, emax_delta=lambda g: (-3, -1, 1, 4)[g % 4])
    log = run(L, G, W, "fp16", [(beats, expected, None)], seed=9, p_in=phased(0.7, 1.0), p_out=phased(1.0, 0.5))[0]
    assert log["n_out"] == len(expected)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("L,G,W", [(4, 16, 16), (4, 4, 16), (3, 9, 13)])
def test_throughput_one_beat_per_cycle(L, G, W, mode):
    """Always valid / always ready: beat i enters and leaves in cycle i (latency 0)."""
    B, N = G // L, 7
    rng = random.Random(7)
    beats, expected = make_groups(rng, L, G, W, mode, N)
    log = run(L, G, W, mode, [(beats, expected, None)], seed=3, p_in=lambda c: 1.0, p_out=lambda c: 1.0)[0]
    assert log["in"] == list(range(N * B)) == log["out"], f"transfers in at {log['in']}, out at {log['out']}"
    assert ActFrontEnd.LATENCY == 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("L,G,W", [(4, 16, 16), (4, 4, 16), (3, 9, 13)])
def test_mid_stream_reset(L, G, W, mode):
    """Reset in the middle of a group: the next beat is a group's first beat again."""
    rng = random.Random(99)
    B = G // L
    n_groups = max(8, 48 // B)
    eps = []
    for cut in (23, 41, None):
        beats, expected = make_groups(rng, L, G, W, mode, n_groups)
        eps.append((beats, expected, cut))
    logs = run(L, G, W, mode, eps, seed=17, p_in=phased(0.8, 1.0, period=13), p_out=phased(0.7, 0.4, period=11))
    assert 0 < logs[0]["n_out"] < n_groups * B, f"episode 0 not mid-stream at reset: {logs[0]}"
    assert logs[2]["n_out"] == n_groups * B


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("L,G,W", [(4, 16, 16), (3, 9, 13)])
def test_verilog_convert(L, G, W, mode):
    v = verilog.convert(ActFrontEnd(lanes=L, group_size=G, act_bits=W, mode=mode), name="act_frontend")
    S = sum_a_bits(G, W)
    ports = {ln.strip().rstrip(";") for ln in v.splitlines() if ln.strip().startswith(("input", "output"))}
    in_w = 16 * L + (5 if mode == "fp16" else 0)
    exp = {f"input [{in_w - 1}:0] act__payload", "input act__valid", "output act__ready",
           f"output [{L * W + 9 + S}:0] aligned__payload", "output aligned__valid", "input aligned__ready",
           "input clk", "input rst"}
    assert ports == exp, f"Verilog ports {sorted(ports)}, expected {sorted(exp)}"


def test_bad_parameters():
    with pytest.raises(ValueError, match=r"^mode='bf16'; choose one of fp16, int8$"):
        ActFrontEnd(lanes=4, group_size=16, act_bits=16, mode="bf16")
    with pytest.raises(ValueError, match=r"^group_size=18 must be a positive multiple of lanes=4$"):
        ActFrontEnd(lanes=4, group_size=18, act_bits=16, mode="fp16")
    with pytest.raises(ValueError, match=r"^act_bits=11 must be in 12\.\.32 in fp16 mode$"):
        ActFrontEnd(lanes=4, group_size=16, act_bits=11, mode="fp16")
    with pytest.raises(ValueError, match=r"^lanes=0 must be a positive integer$"):
        ActFrontEnd(lanes=0, group_size=16, act_bits=16, mode="fp16")
    kinds = {n: p.kind for n, p in inspect.signature(ActFrontEnd.__init__).parameters.items() if n != "self"}
    assert kinds == dict.fromkeys(("lanes", "group_size", "act_bits", "mode"), inspect.Parameter.KEYWORD_ONLY)
    ok = ActFrontEnd(lanes=4, group_size=16, act_bits=8, mode="int8")
    assert (ok.beats, ok.sum_bits) == (4, 8 + 4 + 1), f"beats={ok.beats}, sum_bits={ok.sum_bits}"
    ok._MustUse__silence = True              # constructed only to check the derived sizes
