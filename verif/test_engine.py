"""cocotb testbench of the whole engine: drivers with random stalls, a monitor, a scoreboard.

Vectors come from ``verif/engine_vectors.py`` (the golden model) through the JSON file named
by ``BITMIX_VECTORS``: ``{"cases": [case, ...], "p_valid": float, "p_ready": float,
"seed": int, "reset_case": bool}``. Each case is run back to back on the same DUT; the
scoreboard compares every result beat bit for bit and the cycle count is written to the
JSON file named by ``BITMIX_REPORT``.
"""
from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from verif.runner import load_vectors

STREAMS_IN = ("cmd", "act", "wgt", "meta")


async def drive(dut, name: str, beats: list[int], p_valid: float, rng: random.Random, state: dict):
    valid = getattr(dut, f"{name}__valid")
    payload = getattr(dut, f"{name}__payload")
    ready = getattr(dut, f"{name}__ready")
    i = 0
    holding = False
    while i < len(beats):
        await RisingEdge(dut.clk)
        if state.get("stop"):
            valid.value = 0
            return
        if holding or rng.random() < p_valid:
            valid.value = 1
            payload.value = beats[i]
            holding = True          # stream rule: once valid, hold until accepted
        else:
            valid.value = 0
        await ReadOnly()
        if not ready.value.is_resolvable:
            raise AssertionError(f"{name}__ready is {ready.value} at cycle {state.get('cycle')}")
        if holding and int(ready.value) == 1:
            i += 1
            holding = False
    await RisingEdge(dut.clk)
    valid.value = 0


async def monitor(dut, expected: list[int], p_ready: float, rng: random.Random, got: list, state: dict):
    while len(got) < len(expected):
        await RisingEdge(dut.clk)
        if state.get("stop"):
            return
        dut.res__ready.value = 1 if rng.random() < p_ready else 0
        await ReadOnly()
        if int(dut.res__valid.value) and int(dut.res__ready.value):
            got.append(int(dut.res__payload.value))
            state["last_cycle"] = state["cycle"]
    await RisingEdge(dut.clk)
    dut.res__ready.value = 0


async def count_cycles(dut, state):
    while not state.get("stop"):
        await RisingEdge(dut.clk)
        state["cycle"] += 1


async def reset(dut, cycles: int = 2):
    for name in STREAMS_IN:
        getattr(dut, f"{name}__valid").value = 0
    dut.res__ready.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0


def _compare(case, got, rows, lanes_out=32):
    errors = []
    for t, (g, e) in enumerate(zip(got, case["beats"]["res"])):
        for r in range(case["valid_rows"][t]):
            gv = (g >> (lanes_out * r)) & 0xFFFFFFFF
            ev = (e >> (lanes_out * r)) & 0xFFFFFFFF
            if gv != ev:
                errors.append(f"{case['name']}: output {t * rows + r}: got 0x{gv:08x}, expected 0x{ev:08x}")
    return errors


async def run_case(dut, case, p_valid, p_ready, rng, rows):
    state = {"cycle": 0}
    got: list[int] = []
    counter = cocotb.start_soon(count_cycles(dut, state))
    drivers = [cocotb.start_soon(drive(dut, n, case["beats"][n], p_valid, rng, state)) for n in STREAMS_IN]
    mon = cocotb.start_soon(monitor(dut, case["beats"]["res"], p_ready, rng, got, state))
    budget = 20 * case["ideal_cycles"] / max(0.05, min(p_valid, p_ready)) + 2000
    while len(got) < len(case["beats"]["res"]) and state["cycle"] < budget:
        await RisingEdge(dut.clk)
    state["stop"] = True
    await RisingEdge(dut.clk)
    for d in drivers + [mon, counter]:
        d.cancel()
    if len(got) < len(case["beats"]["res"]):
        return [f"{case['name']}: timeout after {state['cycle']} cycles with {len(got)} of "
                f"{len(case['beats']['res'])} results"], state["cycle"]
    return _compare(case, got, rows), state.get("last_cycle", state["cycle"]) + 1


@cocotb.test()
async def engine_gemv(dut):
    """Every case back to back, optionally with a reset in the middle of a case."""
    vec = load_vectors()
    rng = random.Random(vec.get("seed", 1))
    Clock(dut.clk, 10, unit="ns").start()
    await reset(dut)
    report = []
    errors: list[str] = []
    rows = vec["rows"]
    if vec.get("reset_case"):
        # start a case, reset in mid-stream, then check that a full case afterwards is exact
        first = vec["cases"][0]
        state = {"cycle": 0, "stop": False}
        tasks = [cocotb.start_soon(drive(dut, n, first["beats"][n], vec["p_valid"], rng, state)) for n in STREAMS_IN]
        await ClockCycles(dut.clk, max(5, first["ideal_cycles"] // 3))
        state["stop"] = True
        await RisingEdge(dut.clk)
        for t in tasks:
            t.cancel()
        await reset(dut, 3)
    for case in vec["cases"]:
        errs, cycles = await run_case(dut, case, vec["p_valid"], vec["p_ready"], rng, rows)
        errors += errs
        report.append({"name": case["name"], "cycles": cycles, "ideal": case["ideal_cycles"],
                       "mismatches": len(errs)})
        dut._log.info(f"{case['name']}: {cycles} cycles (ideal {case['ideal_cycles']}), {len(errs)} mismatches")
    if os.environ.get("BITMIX_REPORT"):
        with open(os.environ["BITMIX_REPORT"], "w") as f:
            json.dump(report, f, indent=1)
    assert not errors, f"{len(errors)} mismatches; first: " + "; ".join(errors[:5])
