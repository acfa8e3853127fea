"""The whole engine under cocotb on Icarus and Verilator, bit for bit against sw.datapath.

Default config (every decodable format, scale formats rotating), K = 1024, more outputs
than rows, random stalls on every stream, random and corner-case data, a reset in the middle
of a first GEMV; and an INT8-activation build. ``make sim`` runs the longer suite with
waveforms and the K = 4096 throughput figures (verif/sim.py).
"""
import dataclasses

import pytest

from gen.config import load
from verif.engine_vectors import case
from verif.sim import run_engine


def _cases(cfg, K, O, formats, seed):
    out = []
    for i, fmt in enumerate(formats):
        kind = "corners" if i % 2 else "random"
        out.append(case(cfg, fmt, cfg.scale_formats[i % len(cfg.scale_formats)], O, K, seed=seed + i, kind=kind))
    return out


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_engine_gemv_all_formats_with_stalls_and_reset(sim, sim_build_dir):
    cfg = load()
    cases = _cases(cfg, 1024, 2 * cfg.rows + 1, cfg.formats, seed=0)
    report = run_engine(cfg, cases, sim, sim_build_dir, p_valid=0.7, p_ready=0.6, reset_case=True)
    assert [r["mismatches"] for r in report] == [0] * len(cases)
    assert [(r["beats"], r["violations"]) for r in report] == [(3, 0)] * len(cases)   # 2R+1 outputs: 3 tiles
    assert {r["name"].split("/")[0] for r in report} == set(cfg.formats)


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_engine_int8_activations(sim, sim_build_dir):
    cfg = dataclasses.replace(load(), act_mode="int8", name="int8")
    formats = ["int4", "bitmod4", "int4_asym", "fp6_e2m3"]
    cases = _cases(cfg, 1024, cfg.rows + 1, formats, seed=50)
    report = run_engine(cfg, cases, sim, sim_build_dir, p_valid=0.8, p_ready=0.7)
    assert [r["mismatches"] for r in report] == [0] * len(cases)


def test_scoreboard_catches_a_wrong_result(sim_build_dir):
    """A corrupted expected value must fail the cocotb test (and so pytest)."""
    cfg = dataclasses.replace(load(), formats=("int4",), scale_formats=("fp16",), name="tiny")
    c = case(cfg, "int4", "fp16", cfg.rows, 256, seed=3)
    c["beats"]["res"][0] ^= 1 << 5
    with pytest.raises(AssertionError, match="mismatch"):
        run_engine(cfg, [c], "icarus", sim_build_dir)


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_int8xint4_bit_parallel_baseline(sim, sim_build_dir):
    """The INT8xINT4 bit-parallel MAC baseline: same streams, same golden model, one cycle per weight."""
    from gen.elaborate import to_verilog
    from rtl.engine import Engine

    cfg = dataclasses.replace(load(), formats=("int4",), scale_formats=("fp16",), act_mode="int8", act_bits=8,
                              name="int8xint4")
    cases = _cases(cfg, 1024, 2 * cfg.rows + 1, ["int4", "int4"], seed=70)
    for c in cases:
        c["ideal_cycles"] //= 2     # one cycle per weight instead of two terms
    v = to_verilog(Engine(cfg, pe="parallel"), "bitmix_engine")
    report = run_engine(cfg, cases, sim, sim_build_dir, p_valid=0.8, p_ready=0.7, reset_case=True,
                        verilog_text=v)
    assert [r["mismatches"] for r in report] == [0, 0]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_engine_power_up_independent(seed, sim_build_dir):
    """Verilator, every register and memory word starting from a seeded random value (their
    initializers stripped, ``--x-assign unique --x-initial unique``, ``+verilator+rand+reset+2``):
    after the reset the results are exact, so only the reset defines state."""
    cfg = load()
    cases = _cases(cfg, 256, cfg.rows + 1, ["int4", "fp6_e3m2", "bitmod3"], seed=90 + seed)
    report = run_engine(cfg, cases, "verilator", sim_build_dir, p_valid=0.8, p_ready=0.7, reset_case=True,
                        power_up_seed=seed)
    assert [(r["mismatches"], r["beats"], r["violations"]) for r in report] == [(0, 2, 0)] * len(cases)


def test_no_stall_cycles_equal_the_cycle_model(sim_build_dir):
    """With every stream always valid/ready the RTL takes exactly ``sw.cycles``' cycles (counted from
    the first ``cmd`` handshake to the last ``res`` one): one and several tiles, every term count, a
    6-bit format (the weight port's fill cycle), a group shorter than the rescale unit's turn-round
    (R = 4, 1 and 2 rows) and the wait for the previous tile's results."""
    cfg = load()
    cases = [case(cfg, f, "fp16", O, K, seed=5) for f, K, O in
             [("int4", 256, 4), ("int4", 1024, 9), ("fp3", 512, 8), ("int8", 128, 5), ("fp6_e3m2", 256, 8),
              ("fp6_e2m3", 384, 4)]]
    report = run_engine(cfg, cases, "verilator", sim_build_dir / "default")
    assert [r["cycles"] for r in report] == [c["model_cycles"] for c in cases]
    assert [r["cycles"] for r in report] == [75, 781, 140, 140, 142, 156]
    for rows in (4, 1, 2):      # G/L x terms = 4 cycles per group < R + 1 (6 with one row)
        short = dataclasses.replace(cfg, rows=rows, lanes=16, group_size=32, formats=("int4", "int8"),
                                    scale_formats=("fp16",), max_groups=8, name=f"short{rows}")
        cs = [case(short, "int4", "fp16", rows, 128, seed=6), case(short, "int4", "fp16", 2 * rows, 256, seed=7)]
        rep = run_engine(short, cs, "verilator", sim_build_dir / f"short{rows}")
        assert [r["cycles"] for r in rep] == [c["model_cycles"] for c in cs], rows
        assert [r["mismatches"] for r in rep] == [0, 0]
