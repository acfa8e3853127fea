"""cocotb tests of one engine row's datapath: the bit-serial PE and the rescale unit.

Vectors (``BITMIX_VECTORS``) come from ``verif/row_vectors.py``: ``{"pe": [group, ...]}``
for a BitSerialPE toplevel, or ``{"rescale": [case, ...], "rows": R, ...}`` for a RescaleUnit toplevel.
"""
from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from verif.runner import load_vectors
from verif.streams import StreamMonitor, StreamSource


async def _reset(dut):
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await FallingEdge(dut.clk)


@cocotb.test()
async def pe_groups(dut):
    """Every group: S beats x T terms with en, first on the first term; psum checked after."""
    vec = load_vectors()
    if "pe" not in vec:
        return
    await _reset(dut)
    errors = []
    for i, grp in enumerate(vec["pe"]):
        dut.fmt.value = grp["fmt"]
        dut.sel.value = grp["sel"]
        first = True
        for codes, mants in zip(grp["codes"], grp["mants"]):
            dut.codes.value = codes
            dut.mant.value = mants
            for t in range(grp["terms"]):
                dut.term.value = t
                dut.en.value = 1
                dut.first.value = 1 if first else 0
                first = False
                await FallingEdge(dut.clk)
                if (i + t) % 5 == 0:          # a stall cycle (en low) must hold the sum
                    dut.en.value = 0
                    await FallingEdge(dut.clk)
        dut.en.value = 0
        await FallingEdge(dut.clk)
        got = dut.psum.value.to_signed()
        if got != grp["psum"]:
            errors.append(f"{grp['name']}: psum {got}, expected {grp['psum']}")
    dut._log.info(f"{len(vec['pe'])} groups, {len(errors)} mismatches")
    assert not errors, f"{len(errors)} mismatches; first: " + "; ".join(errors[:6])


def _pack(values, bits: int) -> int:
    """A list of (signed) integers as one packed vector, element 0 at the LSBs."""
    return sum((v & ((1 << bits) - 1)) << (i * bits) for i, v in enumerate(values))


@cocotb.test()
async def rescale_outputs(dut):
    """Every case: its group batches as a stream (``start``/``ready``, random gaps, the captured
    fields scrambled while idle), back to back; a monitor on ``done``/``result`` checks the R
    fp32 results of every case, in order, and that no extra result appears."""
    vec = load_vectors()
    if "rescale" not in vec:
        return
    rows, psum_bits, zpc_bits = vec["rows"], vec["psum_bits"], vec["zpc_bits"]
    await _reset(dut)
    dut.start.value = 0
    rng = random.Random(vec.get("seed", 5))
    fields = ("psum", "sum_a", "zpc", "scale", "ea", "unit", "last")
    mon = StreamMonitor(dut, "result", clk=dut.clk, valid=dut.done, ready=None, payload=dut.result).start()
    for i, out in enumerate(vec["rescale"]):
        dut.scale_fmt.value = out["scale_fmt"]
        mon.expect([sum(x << (32 * r) for r, x in enumerate(out["result"]))])
        src = StreamSource(dut, "rescale", clk=dut.clk, rng=rng, p_valid=1.0 if i % 2 == 0 else 0.5,
                           valid=dut.start, ready=dut.ready, payload={f: getattr(dut, f) for f in fields},
                           garbage=("psum", "sum_a"), offer_when_ready=True)
        beats = [{"psum": _pack(g["psum"], psum_bits), "sum_a": g["sum_a"] & ((1 << len(dut.sum_a)) - 1),
                  "zpc": _pack(g["zpc"], zpc_bits), "scale": _pack(g["scale"], 16), "ea": g["ea"],
                  "unit": g["unit"], "last": int(gi == len(out["groups"]) - 1)}
                 for gi, g in enumerate(out["groups"])]
        await src.send(beats)
        for _ in range(rows + 64):
            if mon.done():
                break
            await RisingEdge(dut.clk)
        if not mon.done():
            break
    await ClockCycles(dut.clk, rows + 8)
    errors = mon.finish()
    dut._log.info(f"{len(vec['rescale'])} cases x {rows} rows: {mon.beats} results monitored, "
                  f"{mon.violations} protocol violations, {len(errors)} errors")
    assert not errors, f"{len(errors)} mismatches; first: " + "; ".join(errors[:6])
