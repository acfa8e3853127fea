"""rtl.axis: the AXI4-Stream wrapper's ports and checks, and the engine behind it under
cocotbext-axi on Icarus and Verilator, against the golden model."""
import dataclasses
import json
import re

import pytest
from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from gen.config import ConfigError, load
from gen.elaborate import components, to_verilog
from rtl.axis import AxisSignature, AxisWrapper
from verif.engine_vectors import case
from verif.runner import run_cocotb


def test_axis_ports_are_padded_to_bytes_with_tkeep_and_tlast():
    cfg = dataclasses.replace(load(), interface="axis")
    top = components(cfg)["bitmix_engine"]
    assert isinstance(top, AxisWrapper)
    widths = {n: (len(getattr(top, n).tdata), len(getattr(top, n).tkeep)) for n in ("cmd", "act", "wgt", "meta", "res")}
    inner = top.inner
    for n, (tdata, tkeep) in widths.items():
        bits = len(getattr(inner, n).payload.as_value()) if hasattr(getattr(inner, n).payload, "as_value") \
            else len(getattr(inner, n).payload)
        assert tdata == 8 * ((bits + 7) // 8) and tkeep == tdata // 8
    assert widths["res"] == (cfg.rows * 32, cfg.rows * 4)
    # fp16 lanes and the 5-bit block exponent: 16L + 5 bits padded to whole bytes
    assert widths["act"] == (cfg.lanes * 16 + 8, cfg.lanes * 2 + 1)
    assert widths["wgt"] == (cfg.rows * cfg.word_bits, cfg.rows * cfg.word_bits // 8)


def test_axis_wrapper_is_wires_only():
    """Latency 0: no register beyond the engine's (the same flip-flops as the bare engine)."""
    cfg = load()
    bare = to_verilog(components(cfg)["bitmix_engine"], "bitmix_engine")
    wrapped = to_verilog(components(dataclasses.replace(cfg, interface="axis"))["bitmix_engine"], "bitmix_engine")
    count = len(re.findall(r"always @\(posedge clk\)", bare))
    assert count > 0 and len(re.findall(r"always @\(posedge clk\)", wrapped)) == count


def test_config_interface_is_checked():
    with pytest.raises(ConfigError, match=re.escape("engine.interface = 'axi'; choose one of stream, axis")):
        dataclasses.replace(load(), interface="axi")


def test_axis_signature_rejects_a_bad_width():
    with pytest.raises(ValueError, match=re.escape("payload_bits must be a positive integer, not 0")):
        AxisSignature(0)


def test_axis_wrapper_rejects_a_non_component():
    with pytest.raises(TypeError, match=re.escape("inner must be an amaranth.lib.wiring.Component, not Module")):
        AxisWrapper(Module())


def test_axis_wrapper_rejects_a_component_without_streams():
    class Plain(wiring.Component):
        a: In(4)
        b: Out(4)

        def elaborate(self, platform):
            m = Module()
            m.d.comb += self.b.eq(self.a)
            return m

    with pytest.raises(ValueError, match=re.escape("inner has no amaranth.lib.stream member to wrap")):
        AxisWrapper(Plain())


def test_axis_wrapper_passes_other_members_through():
    class Mixed(wiring.Component):
        s: In(stream.Signature(5))
        flag: Out(1)

        def elaborate(self, platform):
            m = Module()
            m.d.comb += [self.flag.eq(self.s.payload[0]), self.s.ready.eq(1)]
            return m

    w = AxisWrapper(Mixed())
    assert isinstance(w.flag, Signal) and len(w.s.tdata) == 8 and len(w.s.tkeep) == 1


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_axis_engine_against_the_golden_model(sim, sim_build_dir):
    cfg = dataclasses.replace(load(), interface="axis", name="axis")
    cases = [case(cfg, "int4", "fp16", 2 * cfg.rows + 1, 256, seed=120),
             case(cfg, "fp6_e3m2", "bf16", cfg.rows, 256, seed=121, kind="corners"),
             case(cfg, "bitmod4", "e8m0", cfg.rows + 1, 256, seed=122)]
    report = sim_build_dir / "report.json"
    vec = {"cases": cases, "p_valid": 0.7, "p_ready": 0.6, "seed": 4, "rows": cfg.rows}
    run_cocotb(to_verilog(components(cfg)["bitmix_engine"], "bitmix_engine"), "bitmix_engine", "test_axis",
               sim=sim, build_dir=sim_build_dir, vectors=vec, extra_env={"BITMIX_REPORT": str(report)},
               expect_tests=1)
    assert [(r["beats"], r["mismatches"]) for r in json.loads(report.read_text())] == [(3, 0), (1, 0), (2, 0)]
