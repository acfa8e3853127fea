"""cocotb test of the FP6 4+2 split unpacker: random valid gaps on both inputs, random ready.

Vectors (JSON file named by ``BITMIX_VECTORS``, made in the pytest process with
``sw.pack.pack_fp6_split``)::

    {"n": codes per beat, "seg2": [beat, ...], "seg4": [beat, ...],
     "codes": [[code, ...] per beat], "phases": [{"p_valid2", "p_valid4", "p_ready"}, ...],
     "seed": int}

Every phase streams all beats; the monitor rebuilds the codes of each output beat and compares
them with the original codes, and checks the stream rules on the output (once valid, payload
and valid hold until ready). A phase with all probabilities 1 must reach one beat per cycle.
"""
from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from verif.runner import load_vectors


async def drive(dut, name: str, beats: list[int], p_valid: float, rng: random.Random):
    valid = getattr(dut, f"{name}__valid")
    payload = getattr(dut, f"{name}__payload")
    ready = getattr(dut, f"{name}__ready")
    i, holding = 0, False
    while i < len(beats):
        await RisingEdge(dut.clk)
        if holding or rng.random() < p_valid:
            valid.value = 1
            payload.value = beats[i]
            holding = True                      # once valid, hold until accepted
        else:
            valid.value = 0
            payload.value = rng.getrandbits(len(payload))   # garbage while invalid
        await ReadOnly()
        if holding and int(ready.value):
            i += 1
            holding = False
    await RisingEdge(dut.clk)
    valid.value = 0


async def monitor(dut, n: int, count: int, p_ready: float, rng: random.Random, got: list, errors: list,
                  cycles: dict):
    last = None                                  # (payload) of a valid beat not yet accepted
    cycle = 0
    while len(got) < count:
        await RisingEdge(dut.clk)
        cycle += 1
        dut.codes__ready.value = 1 if rng.random() < p_ready else 0
        await ReadOnly()
        v = int(dut.codes__valid.value)
        if last is not None:
            if not v:
                errors.append(f"beat {len(got)}: codes.valid dropped before the beat was accepted")
            elif int(dut.codes__payload.value) != last:
                errors.append(f"beat {len(got)}: codes.payload changed while waiting for ready")
        if v:
            p = int(dut.codes__payload.value)
            if int(dut.codes__ready.value):
                got.append([(p >> (6 * i)) & 0x3F for i in range(n)])
                last = None
                if len(got) == 1:
                    cycles["first"] = cycle
                cycles["last"] = cycle
            else:
                last = p
    await RisingEdge(dut.clk)
    dut.codes__ready.value = 0


@cocotb.test()
async def fp6_unpack_random_stalls(dut):
    vec = load_vectors()
    n = vec["n"]
    rng = random.Random(vec["seed"])
    Clock(dut.clk, 10, unit="ns").start()
    dut.seg2__valid.value = 0
    dut.seg4__valid.value = 0
    dut.codes__ready.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await ReadOnly()
    assert int(dut.codes__valid.value) == 0, "codes.valid must be low after reset"
    errors: list[str] = []
    for ph, phase in enumerate(vec["phases"]):
        got: list = []
        cycles: dict = {}
        tasks = [
            cocotb.start_soon(drive(dut, "seg2", vec["seg2"], phase["p_valid2"], rng)),
            cocotb.start_soon(drive(dut, "seg4", vec["seg4"], phase["p_valid4"], rng)),
        ]
        mon = cocotb.start_soon(monitor(dut, n, len(vec["codes"]), phase["p_ready"], rng, got, errors, cycles))
        budget = 50 * len(vec["codes"]) + 100
        waited = 0
        while not mon.done() and waited < budget:
            await RisingEdge(dut.clk)
            waited += 1
        for t in tasks + [mon]:
            t.cancel()
        if len(got) != len(vec["codes"]):
            errors.append(f"phase {ph}: timeout with {len(got)} of {len(vec['codes'])} beats")
        for b, (g, e) in enumerate(zip(got, vec["codes"])):
            if g != e:
                errors.append(f"phase {ph} beat {b}: got {g}, expected {e}")
        span = cycles.get("last", 0) - cycles.get("first", 0) + 1
        dut._log.info(f"phase {ph} {phase}: {len(got)} beats, {span} cycles from first to last output")
        if min(phase.values()) >= 1.0 and len(got) == len(vec["codes"]) and span != len(got):
            errors.append(f"phase {ph}: full throughput expected ({len(got)} beats in {len(got)} cycles), "
                          f"took {span} cycles")
        # drain: inputs idle, output ready, until the stage is empty
        dut.seg2__valid.value = 0
        dut.seg4__valid.value = 0
        dut.codes__ready.value = 1
        await ClockCycles(dut.clk, 2)
        await ReadOnly()
        if int(dut.codes__valid.value):
            errors.append(f"phase {ph}: an extra output beat appeared")
        await RisingEdge(dut.clk)
        dut.codes__ready.value = 0
    assert not errors, f"{len(errors)} errors; first: " + "; ".join(errors[:8])
