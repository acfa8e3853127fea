"""cocotb testbench of the whole engine: stream sources with random valid gaps, a random-ready
sink and a monitor on ``res`` (:mod:`verif.streams`), bit for bit against the golden model.

Vectors come from ``verif/engine_vectors.py`` (the golden model) through the JSON file named
by ``BITMIX_VECTORS``: ``{"cases": [case, ...], "p_valid": float, "p_ready": float,
"seed": int, "rows": int, "reset_case": bool}``; a case names its beats per stream in
``case["beats"]`` (every key but ``res`` is an input stream of the DUT, driven as given) and
the rows holding results per ``res`` beat in ``case["valid_rows"]``. Each case is run back to
back on the same DUT under one ``res`` monitor (stream rules, lost, duplicated or extra beats;
result bits of unused rows are not compared). Per case the cycle count, mismatches, monitored
``res`` beats and protocol violations are written to the JSON file named by ``BITMIX_REPORT``.
"""
from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from verif.runner import load_vectors
from verif.streams import StreamMonitor, StreamSink, StreamSource, reset_idle

RES_LANE_BITS = 32


def input_streams(case) -> list[str]:
    return [n for n in case["beats"] if n != "res"]


def res_masks(case) -> list[int]:
    return [(1 << (RES_LANE_BITS * v)) - 1 for v in case["valid_rows"]]


async def reset(dut, names, cycles: int = 2):
    await reset_idle(dut, names, ["res"], cycles=cycles)


async def run_case(dut, case, mon: StreamMonitor, cmd_mon: StreamMonitor, p_valid, p_ready, rng):
    """Stream one case; returns (errors, cycles, res beats seen, protocol violations). ``cycles`` counts
    from the cycle the case's first ``cmd`` beat moves to the cycle its last ``res`` beat moves,
    inclusive (the convention of ``sw.cycles``)."""
    first_beat, first_err, first_viol = mon.beats, len(mon.errors), mon.violations
    first_cmd = cmd_mon.beats
    start = mon.cycle
    mon.expect(case["beats"]["res"], res_masks(case))
    cmd_mon.expect(case["beats"]["cmd"])
    srcs = [StreamSource(dut, n, clk=dut.clk, rng=rng, p_valid=p_valid) for n in input_streams(case)]
    tasks = [cocotb.start_soon(s.send(case["beats"][s.name])) for s in srcs]
    sink = StreamSink(dut, "res", clk=dut.clk, rng=rng, p_ready=p_ready).start()
    budget = 20 * case["ideal_cycles"] / max(0.05, min(p_valid, p_ready)) + 2000
    while not mon.done() and mon.cycle - start < budget:
        await RisingEdge(dut.clk)
    for s in srcs:
        s.stop()
    await RisingEdge(dut.clk)
    for t in tasks:
        t.cancel()
    sink.stop()
    seen = mon.beats - first_beat
    errors = [f"{case['name']}: {e}" for e in mon.errors[first_err:]]
    if not mon.done():
        errors.append(f"{case['name']}: timeout after {mon.cycle - start} cycles with {seen} of "
                      f"{len(case['beats']['res'])} results")
        return errors, mon.cycle - start, seen, mon.violations - first_viol
    return errors, mon.accept_cycles[-1] - cmd_mon.accept_cycles[first_cmd] + 1, seen, mon.violations - first_viol


@cocotb.test()
async def engine_gemv(dut):
    """Every case back to back, optionally after a reset in the middle of a first case."""
    vec = load_vectors()
    rng = random.Random(vec.get("seed", 1))
    Clock(dut.clk, 10, unit="ns").start()
    names = input_streams(vec["cases"][0])
    await reset(dut, names)
    if vec.get("reset_case"):
        # start a case, reset in mid-stream, then check that the cases afterwards are exact
        first = vec["cases"][0]
        srcs = [StreamSource(dut, n, clk=dut.clk, rng=rng, p_valid=vec["p_valid"]) for n in names]
        tasks = [cocotb.start_soon(s.send(first["beats"][s.name])) for s in srcs]
        await ClockCycles(dut.clk, max(5, first["ideal_cycles"] // 3))
        for s in srcs:
            s.stop()
        await RisingEdge(dut.clk)
        for t in tasks:
            t.cancel()
        await reset(dut, names, 3)
    mon = StreamMonitor(dut, "res", clk=dut.clk).start()
    cmd_mon = StreamMonitor(dut, "cmd", clk=dut.clk).start()     # in step with mon: the same cycle count
    report = []
    errors: list[str] = []
    for case in vec["cases"]:
        errs, cycles, beats, viol = await run_case(dut, case, mon, cmd_mon, vec["p_valid"], vec["p_ready"], rng)
        errors += errs
        report.append({"name": case["name"], "cycles": cycles, "ideal": case["ideal_cycles"],
                       "model": case.get("model_cycles"), "mismatches": len(errs), "beats": beats,
                       "violations": viol})
        dut._log.info(f"{case['name']}: {cycles} cycles (ideal {case['ideal_cycles']}), {len(errs)} mismatches, "
                      f"{beats} res beats monitored, {viol} protocol violations")
    # idle with ready high: no further result may appear
    dut.res__ready.value = 1
    await ClockCycles(dut.clk, 8)
    before = len(mon.errors)
    errors += mon.finish()[before:]
    if os.environ.get("BITMIX_REPORT"):
        with open(os.environ["BITMIX_REPORT"], "w") as f:
            json.dump(report, f, indent=1)
    assert not errors, f"{len(errors)} mismatches; first: " + "; ".join(errors[:5])
