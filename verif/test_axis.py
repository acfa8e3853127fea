"""cocotb testbench of the engine behind its AXI4-Stream ports (``rtl/axis.py``), driven by
cocotbext-axi: an ``AxiStreamSource`` per input stream, an ``AxiStreamSink`` and an
``AxiStreamMonitor`` on ``res``, random pauses on every stream (seeded).

Vectors: the engine testbench's (``verif/engine_vectors.py`` through ``BITMIX_VECTORS``,
``{"cases", "p_valid", "p_ready", "seed", "rows"}``). Each tile of a case is one AXI4-Stream
frame per input stream (``tlast`` on its last beat) and one one-beat ``res`` frame; a beat's
payload is ``tdata``'s low bits, little-endian bytes. Sink and monitor must both see every
expected result (rows beyond ``valid_rows`` not compared), each ``res`` beat with ``tlast``
and all ``tkeep`` bytes. Counts go to ``BITMIX_REPORT``.
"""
from __future__ import annotations

import itertools
import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamMonitor, AxiStreamSink, AxiStreamSource

from verif.runner import load_vectors

RES_LANE_BITS = 32


def pauses(rng: random.Random, p_go: float):
    """cocotbext-axi pause generator: pause in a cycle with probability ``1 - p_go``."""
    return (rng.random() >= p_go for _ in itertools.count())


@cocotb.test()
async def axis_engine_gemv(dut):
    vec = load_vectors()
    rng = random.Random(vec.get("seed", 1))
    Clock(dut.clk, 10, unit="ns").start()
    names = [n for n in vec["cases"][0]["beats"] if n != "res"]
    sources = {}
    for n in names:
        sources[n] = AxiStreamSource(AxiStreamBus.from_prefix(dut, f"{n}_"), dut.clk, dut.rst)
        sources[n].set_pause_generator(pauses(rng, vec["p_valid"]))
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "res_"), dut.clk, dut.rst)
    sink.set_pause_generator(pauses(rng, vec["p_ready"]))
    mon = AxiStreamMonitor(AxiStreamBus.from_prefix(dut, "res_"), dut.clk, dut.rst)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    res_bytes = len(dut.res__tdata) // 8
    errors, report = [], []
    for case in vec["cases"]:
        tiles = len(case["beats"]["res"])
        for n in names:
            nbytes = len(getattr(dut, f"{n}__tdata")) // 8
            beats = case["beats"][n]
            per = len(beats) // tiles
            for t in range(tiles):
                data = b"".join(b.to_bytes(nbytes, "little") for b in beats[t * per:(t + 1) * per])
                await sources[n].send(AxiStreamFrame(data))
        seen = 0
        budget = 40 * case["ideal_cycles"] + 4000
        for t, exp in enumerate(case["beats"]["res"]):
            mask = (1 << (RES_LANE_BITS * case["valid_rows"][t])) - 1
            got = await with_timeout(sink.recv(), budget * 10, "ns")
            watched = await with_timeout(mon.recv(), 100, "ns")
            for who, frame in (("sink", got), ("monitor", watched)):
                if len(frame.tdata) != res_bytes:
                    errors.append(f"{case['name']} tile {t} ({who}): frame of {len(frame.tdata)} bytes, "
                                  f"expected one beat of {res_bytes}")
                    continue
                if frame.tkeep is not None and list(frame.tkeep) != [1] * res_bytes:
                    errors.append(f"{case['name']} tile {t} ({who}): tkeep {frame.tkeep}")
                value = int.from_bytes(bytes(frame.tdata), "little")
                if value & mask != exp & mask:
                    errors.append(f"{case['name']} tile {t} ({who}): got {value & mask:#x}, expected {exp & mask:#x}")
            seen += 1
        report.append({"name": case["name"], "beats": seen, "mismatches": sum(case["name"] in e for e in errors)})
        dut._log.info(f"{case['name']}: {seen} res frames received and monitored")
    await ClockCycles(dut.clk, 20)
    if not sink.empty() or not mon.empty():
        errors.append(f"extra res frames: sink {sink.count()}, monitor {mon.count()}")
    if os.environ.get("BITMIX_REPORT"):
        with open(os.environ["BITMIX_REPORT"], "w") as f:
            json.dump(report, f, indent=1)
    assert not errors, f"{len(errors)} errors; first: " + "; ".join(errors[:5])
