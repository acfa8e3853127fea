"""Drive a combinational Amaranth component through a list of input vectors (amaranth.sim)."""
from __future__ import annotations

from amaranth.sim import Simulator


def simulate(dut, in_ports, out_port, vectors) -> list[int]:
    """Apply each input tuple of ``vectors`` to ``in_ports`` of the combinational ``dut`` and
    return ``out_port``'s value after each one (no clock: the outputs settle at once)."""
    out = []

    async def bench(ctx):
        for vec in vectors:
            for port, value in zip(in_ports, vec):
                ctx.set(port, value)
            out.append(ctx.get(out_port))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return out
