"""verif.streams catches what it must: a correct stream stage passes with every beat counted,
and a stage that changes its payload while stalled, drops beats or repeats beats is reported,
exactly, on Icarus."""
import json
import re

import pytest
from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from verif.runner import run_cocotb

BEATS = list(range(0x10, 0x10 + 40))


class Stage(wiring.Component):
    """One register stage ``i`` -> ``o`` (8-bit payload) with an injected fault: ``ok`` (none),
    ``unstable`` (payload bit 0 toggles while valid and not ready), ``drop`` (input beats
    2, 7, 12, ... are taken and not passed on), ``dup`` (beats 3, 10, 17, ... are offered twice),
    ``power_up`` (beat 0 is offered twice if a register the reset does not clear, 0 by its
    initializer, starts non-zero: a dependence on power-up state)."""

    def __init__(self, fault: str):
        self.fault = fault
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        n = Signal(8)
        again = Signal()
        m.d.comb += self.i.ready.eq((~self.o.valid | self.o.ready) & ~again)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
            if self.fault in ("dup", "power_up"):
                with m.If(again):
                    m.d.sync += [self.o.valid.eq(1), again.eq(0)]
        with m.Elif(self.o.valid & (self.fault == "unstable")):
            m.d.sync += self.o.payload.eq(self.o.payload ^ 1)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [self.o.payload.eq(self.i.payload), n.eq(n + 1)]
            if self.fault == "drop":
                m.d.sync += self.o.valid.eq(n % 5 != 2)
            else:
                m.d.sync += self.o.valid.eq(1)
            if self.fault == "dup":
                m.d.sync += again.eq(n % 7 == 3)
            if self.fault == "power_up":
                junk = Signal(8, reset_less=True)
                m.d.sync += [again.eq(junk != 0), junk.eq(0)]
        return m


def _run(fault, sim_build_dir, sim="icarus", power_up_seed=None):
    report = sim_build_dir / "report.json"
    run_cocotb(Stage(fault), "stage", "test_streams", sim=sim, build_dir=sim_build_dir,
               vectors={"beats": BEATS, "p_valid": 0.7, "p_ready": 0.5, "seed": 3},
               extra_env={"BITMIX_REPORT": str(report)}, expect_tests=1, power_up_seed=power_up_seed)
    return json.loads(report.read_text())


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_monitor_passes_a_correct_stage_and_counts_every_beat(sim, sim_build_dir):
    r = _run("ok", sim_build_dir, sim)
    assert (r["beats"], r["violations"], r["messages"]) == (40, 0, [])


def test_monitor_reports_payload_change_while_stalled(sim_build_dir):
    r = _run("unstable", sim_build_dir)
    assert r["violations"] > 0
    assert "payload changed while valid and not ready" in r["messages"][0]


def test_monitor_reports_each_lost_beat(sim_build_dir):
    r = _run("drop", sim_build_dir)
    assert r["messages"] == [f"o: beat {i} lost" for i in range(2, 40, 5)]
    assert (r["beats"], r["violations"]) == (32, 0)


def test_monitor_reports_each_duplicated_beat(sim_build_dir):
    r = _run("dup", sim_build_dir)
    assert r["messages"] == [f"o: beat {i} duplicated" for i in range(3, 40, 7)]
    assert (r["beats"], r["violations"]) == (46, 0)


def test_power_up_run_exposes_a_register_the_reset_does_not_clear(sim_build_dir):
    """The power-up option is not vacuous: with its initializer the stage is correct; started
    from random state (Verilator, seed 1) its reset-less register is non-zero and beat 0
    repeats, while the correct stage passes from the same random state."""
    assert _run("power_up", sim_build_dir / "init")["messages"] == []
    assert _run("power_up", sim_build_dir / "random", "verilator", power_up_seed=1)["messages"] == \
        ["o: beat 0 duplicated"]
    ok = _run("ok", sim_build_dir / "ok", "verilator", power_up_seed=1)
    assert (ok["beats"], ok["messages"]) == (40, [])


def test_strip_initializers_removes_every_register_and_memory_initializer():
    from verif.runner import strip_initializers
    text = ("  reg \\$auto$x$1  = 0;\n  reg [7:0] junk = 8'h00;\n  wire w = 1'h1;\n  reg [3:0] mem [1:0];\n"
            "  initial begin\n    mem[0] = 4'h0;\n    mem[1] = 4'h0;\n  end\n")
    assert strip_initializers(text) == ("  reg \\$auto$x$1 ;\n  reg [7:0] junk ;\n  wire w = 1'h1;\n"
                                        "  reg [3:0] mem [1:0];\n", 2, 1)


def test_power_up_needs_verilator(sim_build_dir):
    with pytest.raises(ValueError, match=re.escape("power_up_seed needs sim='verilator', not 'icarus'")):
        _run("ok", sim_build_dir, "icarus", power_up_seed=1)
