"""cocotb tests of one engine row's datapath: the bit-serial PE and the rescale unit.

Vectors (``BITMIX_VECTORS``) come from ``verif/row_vectors.py``: ``{"pe": [group, ...]}``
for a BitSerialPE toplevel, or ``{"rescale": [case, ...], "rows": R, ...}`` for a RescaleUnit toplevel.
"""
from __future__ import annotations

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from verif.runner import load_vectors


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
    """Every case: its group batches through start/ready, back to back; all R fp32 results at done."""
    vec = load_vectors()
    if "rescale" not in vec:
        return
    rows, psum_bits, zpc_bits = vec["rows"], vec["psum_bits"], vec["zpc_bits"]
    await _reset(dut)
    dut.start.value = 0
    errors = []
    for out in vec["rescale"]:
        dut.scale_fmt.value = out["scale_fmt"]
        result = None
        for gi, g in enumerate(out["groups"]):
            while True:
                await ReadOnly()
                ready = int(dut.ready.value)
                await FallingEdge(dut.clk)
                if ready:
                    break
            dut.psum.value = _pack(g["psum"], psum_bits)
            dut.sum_a.value = g["sum_a"]
            dut.zpc.value = _pack(g["zpc"], zpc_bits)
            dut.scale.value = _pack(g["scale"], 16)
            dut.ea.value = g["ea"]
            dut.unit.value = g["unit"]
            dut.last.value = 1 if gi == len(out["groups"]) - 1 else 0
            dut.start.value = 1
            await RisingEdge(dut.clk)
            await FallingEdge(dut.clk)
            dut.start.value = 0
            # psum, sum_a, ea, unit are captured: scramble them (scale and zpc must stay)
            dut.psum.value = 0
            dut.sum_a.value = 0
        for _ in range(rows + 64):
            await ReadOnly()
            if int(dut.done.value):
                word = int(dut.result.value)
                result = [(word >> (32 * r)) & 0xFFFFFFFF for r in range(rows)]
                break
            await FallingEdge(dut.clk)
        await FallingEdge(dut.clk)
        if result != out["result"]:
            got = None if result is None else [hex(x) for x in result]
            errors.append(f"{out['name']} (corner on row {out['hot_row']}): results {got}, "
                          f"expected {[hex(x) for x in out['result']]}")
    dut._log.info(f"{len(vec['rescale'])} cases x {rows} rows, {len(errors)} mismatches")
    assert not errors, f"{len(errors)} mismatches; first: " + "; ".join(errors[:6])
