"""cocotb test of the FP6 4+2 split unpacker: random valid gaps on both inputs, random ready.

Vectors (JSON file named by ``BITMIX_VECTORS``, made in the pytest process with
``sw.pack.pack_fp6_split``)::

    {"n": codes per beat, "seg2": [beat, ...], "seg4": [beat, ...],
     "codes": [[code, ...] per beat], "phases": [{"p_valid2", "p_valid4", "p_ready"}, ...],
     "seed": int}

Every phase streams all beats through :mod:`verif.streams` sources and a random-ready sink;
one monitor on ``codes`` checks the stream rules and every output beat (the codes packed 6
bits each) in order against the original codes, across all phases. A phase with all
probabilities 1 must reach one beat per cycle. The monitored beat count and the violation
count go to the JSON file named by ``BITMIX_REPORT`` when set.
"""
from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from verif.runner import load_vectors
from verif.streams import StreamMonitor, StreamSink, StreamSource, reset_idle


@cocotb.test()
async def fp6_unpack_random_stalls(dut):
    vec = load_vectors()
    rng = random.Random(vec["seed"])
    Clock(dut.clk, 10, unit="ns").start()
    await reset_idle(dut, ["seg2", "seg4"], ["codes"])
    await ReadOnly()
    assert int(dut.codes__valid.value) == 0, "codes.valid must be low after reset"
    packed = [sum(c << (6 * i) for i, c in enumerate(beat)) for beat in vec["codes"]]
    mon = StreamMonitor(dut, "codes", clk=dut.clk).start()
    errors: list[str] = []
    for ph, phase in enumerate(vec["phases"]):
        first = mon.beats
        mon.expect(packed)
        srcs = [StreamSource(dut, "seg2", clk=dut.clk, rng=rng, p_valid=phase["p_valid2"]),
                StreamSource(dut, "seg4", clk=dut.clk, rng=rng, p_valid=phase["p_valid4"])]
        tasks = [cocotb.start_soon(s.send(b)) for s, b in zip(srcs, (vec["seg2"], vec["seg4"]))]
        sink = StreamSink(dut, "codes", clk=dut.clk, rng=rng, p_ready=phase["p_ready"]).start()
        budget = 50 * len(packed) + 100
        waited = 0
        while not mon.done() and waited < budget:
            await RisingEdge(dut.clk)
            waited += 1
        for t in tasks:
            t.cancel()
        if not mon.done():
            errors.append(f"phase {ph}: timeout with {mon.beats - first} of {len(packed)} beats")
        got = mon.beats - first
        span = mon.accept_cycles[-1] - mon.accept_cycles[first] + 1 if got else 0
        dut._log.info(f"phase {ph} {phase}: {got} beats, {span} cycles from first to last output")
        if min(phase.values()) >= 1.0 and got == len(packed) and span != got:
            errors.append(f"phase {ph}: full throughput expected ({got} beats in {got} cycles), took {span} cycles")
        # drain: inputs idle, output ready; an extra output beat is an error of the monitor
        for s in srcs:
            s.idle()
        sink.stop(ready=1)
        await ClockCycles(dut.clk, 3)
        sink.stop(ready=0)
    await RisingEdge(dut.clk)
    errors += mon.finish()
    dut._log.info(f"codes: {mon.beats} beats monitored, {mon.violations} protocol violations")
    if os.environ.get("BITMIX_REPORT"):
        with open(os.environ["BITMIX_REPORT"], "w") as f:
            json.dump([mon.summary()], f)
    assert not errors, f"{len(errors)} errors; first: " + "; ".join(errors[:8])
