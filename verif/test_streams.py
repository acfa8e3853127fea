"""cocotb test of :mod:`verif.streams` itself, on a one-register stream stage that may break the
rules on purpose (``tests/test_cocotb_streams.py`` builds it).

Vectors (``BITMIX_VECTORS``): ``{"beats": [int, ...], "p_valid", "p_ready", "seed"}``. The
beats go through a source, the stage and a random-ready sink; the ``o`` monitor expects them
unchanged. The monitor's beat count, violation count and messages are written to the JSON file
named by ``BITMIX_REPORT``; the pytest side asserts them (a faulty stage must be caught).
"""
from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, with_timeout

from verif.runner import load_vectors
from verif.streams import StreamMonitor, StreamSink, StreamSource, reset_idle


@cocotb.test()
async def stream_stage(dut):
    vec = load_vectors()
    rng = random.Random(vec["seed"])
    Clock(dut.clk, 10, unit="ns").start()
    await reset_idle(dut, ["i"], ["o"])
    mon = StreamMonitor(dut, "o", clk=dut.clk).start()
    mon.expect(vec["beats"])
    sink = StreamSink(dut, "o", clk=dut.clk, rng=rng, p_ready=vec["p_ready"]).start()
    src = StreamSource(dut, "i", clk=dut.clk, rng=rng, p_valid=vec["p_valid"])
    await with_timeout(src.send(vec["beats"]), 200 * len(vec["beats"]) * 10, "ns")   # a stuck stage fails
    await ClockCycles(dut.clk, 40)
    sink.stop()
    mon.finish()
    with open(os.environ["BITMIX_REPORT"], "w") as f:
        json.dump({**mon.summary(), "messages": mon.errors}, f)
