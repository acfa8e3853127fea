"""rtl.act_frontend.ActFrontEnd: bit-exact against sw.datapath.align_fp16 / align_int8 (amaranth.sim).

Every cycle the testbench also checks the stream contract exactly:
* ``act.ready == (complete groups held < 2)`` (ready drops only with both buffers full),
* ``aligned.valid == (complete groups held >= 1)`` (valid only for complete groups, and as early as
  the documented latency allows: the cycle after a group's last input beat, no bubbles),
* payload and valid stable while ``valid & ~ready``.
"""
from __future__ import annotations

import random
import zlib

import pytest
import torch
from amaranth import ClockDomain, Module
from amaranth.back import verilog
from amaranth.sim import Simulator

from rtl.act_frontend import ActFrontEnd, sum_a_bits
from sw.datapath import align_fp16, align_int8

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


def make_groups(rng, L, G, W, mode, n_groups):
    """(beats: list of act payload ints, expected: list of per-output-beat dicts)."""
    kinds = FP16_KINDS if mode == "fp16" else INT8_KINDS
    order = [kinds[i % len(kinds)] for i in range(n_groups)]
    rng.shuffle(order)
    lanes_vals = []                       # per element: fp16 bits or int8 value
    for kind in order:
        lanes_vals += fp16_bits(rng, kind, G, W) if mode == "fp16" else int8_vals(rng, kind, G)
    B = G // L
    if mode == "fp16":
        t = torch.tensor([v - 0x10000 if v & 0x8000 else v for v in lanes_vals], dtype=torch.int16)
        ref = align_fp16(t.view(torch.float16), G, W)
        words = lanes_vals
    else:
        ref = align_int8(torch.tensor(lanes_vals, dtype=torch.int8), G)
        # upper byte of each lane is garbage that must be ignored
        words = [(rng.getrandbits(8) << 8) | (v & 0xFF) for v in lanes_vals]
    A, ea, sA = ref.A.tolist(), ref.ea.tolist(), ref.sum_A.tolist()
    beats, expected = [], []
    for k in range(n_groups * B):
        g, i = divmod(k, B)
        beats.append(sum(words[k * L + l] << (16 * l) for l in range(L)))
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
    dut = ActFrontEnd(L, G, W, mode)
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
            valid_in, prev_stall, prev_raw = 0, False, None
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
                ctx.set(dut.act.payload, beats[in_i] if valid_in else rng.getrandbits(16 * L))
                rdy = int(rng.random() < p_out(cyc))
                ctx.set(dut.aligned.ready, rdy)
                a_rdy = ctx.get(dut.act.ready)
                o_val = ctx.get(dut.aligned.valid)
                raw = ctx.get(dut.aligned.payload.as_value())
                held = in_i // B - out_i // B
                where = f"episode {ep} cycle {cyc} (in {in_i}, out {out_i} beats, {held} complete groups held)"
                assert a_rdy == int(held < 2), f"{where}: act.ready={a_rdy}, expected {int(held < 2)}"
                assert o_val == int(held >= 1), f"{where}: aligned.valid={o_val}, expected {int(held >= 1)}"
                if prev_stall:
                    assert o_val == 1 and raw == prev_raw, f"{where}: payload/valid changed while stalled"
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
                prev_stall, prev_raw = bool(o_val and not rdy), raw
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
                assert ctx.get(dut.act.ready) == 1 and ctx.get(dut.aligned.valid) == 0, \
                    f"after reset in episode {ep}: act.ready={ctx.get(dut.act.ready)}, " \
                    f"aligned.valid={ctx.get(dut.aligned.valid)} (expected 1, 0)"

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


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("L,G,W", [(4, 16, 16), (4, 4, 16), (3, 9, 13)])
def test_throughput_one_beat_per_cycle(L, G, W, mode):
    """Always valid / always ready: beat i of group n in at n*B+i, out at (n+1)*B+i."""
    B, N = G // L, 7
    rng = random.Random(7)
    beats, expected = make_groups(rng, L, G, W, mode, N)
    log = run(L, G, W, mode, [(beats, expected, None)], seed=3, p_in=lambda c: 1.0, p_out=lambda c: 1.0)[0]
    assert log["in"] == list(range(N * B)), f"input transfers at cycles {log['in']}, expected 0..{N * B - 1}"
    assert log["out"] == [B + k for k in range(N * B)], \
        f"output transfers at cycles {log['out']}, expected {B}..{N * B + B - 1}"
    total = log["out"][-1] - log["in"][0] + 1
    assert total == N * B + B, f"{N} groups took {total} cycles, expected N*G/L + G/L = {N * B + B}"
    # the first output beat of every group is valid exactly LATENCY cycle after its last input beat
    for n in range(N):
        assert log["out"][n * B] - log["in"][n * B + B - 1] == ActFrontEnd.LATENCY


@pytest.mark.parametrize("mode", MODES)
def test_back_pressure_fills_both_buffers_then_drains(mode):
    """Output stalled: exactly two groups are accepted, then input ready stays low; release drains."""
    L, G, W = 4, 16, 16
    B = G // L
    beats, expected = make_groups(random.Random(11), L, G, W, mode, 5)
    log = run(L, G, W, mode, [(beats, expected, None)], seed=5,
              p_in=lambda c: 1.0, p_out=lambda c: 0.0 if c < 30 else 1.0)[0]
    assert log["in"][:2 * B] == list(range(2 * B)), f"first two groups accepted at {log['in'][:2 * B]}"
    # a buffer is freed when its group's last beat leaves (cycle 30 + B - 1)
    assert log["in"][2 * B] == 30 + B, \
        f"third group's first beat accepted at cycle {log['in'][2 * B]}, expected {30 + B}"
    assert log["out"][:B] == list(range(30, 30 + B))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("L,G,W", [(4, 16, 16), (4, 4, 16), (3, 9, 13)])
def test_mid_stream_reset(L, G, W, mode):
    """Reset with a half-written group, a half-read group and (second time) both buffers full."""
    rng = random.Random(99)
    B = G // L
    n_groups = max(8, 48 // B)            # enough traffic to be mid-stream at the cuts
    eps = []
    for cut in (23, 41, None):
        beats, expected = make_groups(rng, L, G, W, mode, n_groups)
        eps.append((beats, expected, cut))
    # episode 0: random traffic, cut mid-stream; episode 1: output stalled from cycle 20 -> buffers full
    p_out = phased(0.7, 0.4, period=11)
    logs = run(L, G, W, mode, eps, seed=17, p_in=phased(0.8, 1.0, period=13),
               p_out=lambda c: p_out(c) if c < 20 else (0.0 if c < 41 else 1.0))
    assert 0 < logs[0]["n_out"] < logs[0]["n_in"], f"episode 0 not mid-stream at reset: {logs[0]}"
    assert logs[1]["n_in"] // B - logs[1]["n_out"] // B == 2 and logs[1]["n_in"] % B == 0, \
        f"episode 1: both buffers should be full at the reset: {logs[1]}"
    assert logs[2]["n_out"] == n_groups * B


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("L,G,W", [(4, 16, 16), (3, 9, 13)])
def test_verilog_convert(L, G, W, mode):
    v = verilog.convert(ActFrontEnd(L, G, W, mode), name="act_frontend")
    S = sum_a_bits(G, W)
    ports = {ln.strip().rstrip(";") for ln in v.splitlines() if ln.strip().startswith(("input", "output"))}
    exp = {f"input [{16 * L - 1}:0] act__payload", "input act__valid", "output act__ready",
           f"output [{L * W + 9 + S}:0] aligned__payload", "output aligned__valid", "input aligned__ready",
           "input clk", "input rst"}
    assert ports == exp, f"Verilog ports {sorted(ports)}, expected {sorted(exp)}"


def test_bad_parameters():
    with pytest.raises(ValueError, match="mode"):
        ActFrontEnd(4, 16, 16, "bf16")
    with pytest.raises(ValueError, match="group_size"):
        ActFrontEnd(4, 18, 16, "fp16")
    with pytest.raises(ValueError, match="act_bits"):
        ActFrontEnd(4, 16, 11, "fp16")
    ok = ActFrontEnd(4, 16, 8, "int8")
    assert (ok.beats, ok.sum_bits) == (4, 8 + 4 + 1), f"beats={ok.beats}, sum_bits={ok.sum_bits}"
    ok._MustUse__silence = True              # constructed only to check the derived sizes
