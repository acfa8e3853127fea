"""cocotb test of the weight port: tiles of ``sw.pack.pack(q)`` images in, the engine's ``wgt`` beats out.

Vectors (JSON file named by ``BITMIX_VECTORS``, made in the pytest process by
``tests/test_weight_port.py`` with ``sw.weight_stream``)::

    {"tiles": [{"fmt": index, "words": [payload, ...], "wgt": [payload, ...]}, ...],
     "phases": [{"p_in", "p_out"}, ...], "seed": int}

Every phase streams every tile: before a tile the test waits for ``idle``, puts the tile's format
on ``fmt`` and offers its words with random gaps (garbage payload while not valid), while the
output side takes ``wgt`` beats with random ``ready``. Each taken beat must equal the expected
payload exactly; payload and valid must hold while ``valid & ~ready``; after the tile's last beat
no further beat may appear. A reset in the middle of a tile must leave the port ``idle``.
"""
from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from verif.runner import load_vectors
from verif.streams import reset_idle


async def stream_tile(dut, tile: dict, p_in: float, p_out: float, rng: random.Random, errors: list,
                      where: str, stop_after_words: int | None = None) -> int:
    """Stream one tile; returns the cycles it took. ``stop_after_words``: abandon the tile after that
    many words were taken (for the reset test)."""
    words, expected = tile["words"], tile["wgt"]
    width = len(dut.words__payload)
    wi = oi = cycles = 0
    valid_in = 0
    held = None
    budget = 40 * (len(words) + len(expected)) + 100
    while oi < len(expected):
        if stop_after_words is not None and wi >= stop_after_words:
            break
        await RisingEdge(dut.clk)
        cycles += 1
        if cycles > budget:
            errors.append(f"{where}: timeout at word {wi}, beat {oi}")
            break
        if not valid_in and wi < len(words) and rng.random() < p_in:
            valid_in = 1
        dut.words__valid.value = valid_in
        dut.words__payload.value = words[wi] if valid_in else rng.getrandbits(width)
        rdy = 1 if rng.random() < p_out else 0
        dut.wgt__ready.value = rdy
        await ReadOnly()
        o_val = int(dut.wgt__valid.value)
        if held is not None and (not o_val or int(dut.wgt__payload.value) != held):
            errors.append(f"{where} beat {oi}: wgt changed while waiting for ready")
        held = None
        if o_val:
            raw = int(dut.wgt__payload.value)
            if rdy:
                if raw != expected[oi]:
                    errors.append(f"{where} beat {oi}: wgt = {raw:#x}, expected {expected[oi]:#x}")
                oi += 1
            else:
                held = raw
        if valid_in and int(dut.words__ready.value):
            wi += 1
            valid_in = 0
    await RisingEdge(dut.clk)
    dut.words__valid.value = 0
    dut.wgt__ready.value = 0
    if stop_after_words is None and wi != len(words):
        errors.append(f"{where}: all beats out after {wi} of {len(words)} words")
    return cycles


@cocotb.test()
async def weight_port_tiles(dut):
    vec = load_vectors()
    rng = random.Random(vec["seed"])
    Clock(dut.clk, 10, unit="ns").start()
    await reset_idle(dut, ["words"], ["wgt"], fmt=0)
    errors: list[str] = []
    for ph, phase in enumerate(vec["phases"]):
        total = 0
        for ti, tile in enumerate(vec["tiles"]):
            await ReadOnly()
            if not int(dut.idle.value) or int(dut.wgt__valid.value):
                errors.append(f"phase {ph} tile {ti}: port not idle at the tile boundary")
            await RisingEdge(dut.clk)
            dut.fmt.value = tile["fmt"]
            total += await stream_tile(dut, tile, phase["p_in"], phase["p_out"], rng, errors,
                                       f"phase {ph} tile {ti} (fmt {tile['fmt']})")
        dut._log.info(f"phase {ph} {phase}: {len(vec['tiles'])} tiles in {total} cycles")
    # a reset in the middle of a tile empties the port; the tile then streams from its start
    tile = vec["tiles"][0]
    dut.fmt.value = tile["fmt"]
    await stream_tile(dut, tile, 1.0, 0.5, rng, errors, "before reset", stop_after_words=3)
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    await ReadOnly()
    if not int(dut.idle.value) or int(dut.wgt__valid.value):
        errors.append("reset mid-tile: port not idle after reset")
    await RisingEdge(dut.clk)
    await stream_tile(dut, tile, 0.8, 0.8, rng, errors, "after reset")
    assert not errors, f"{len(errors)} errors; first: " + "; ".join(errors[:8])
