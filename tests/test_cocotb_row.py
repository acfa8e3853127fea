"""The PE and the rescale unit alone under cocotb (Icarus and Verilator), against sw."""
import pytest

from gen.config import load
from gen.elaborate import to_verilog
from rtl.engine import sum_bits
from rtl.pe import BitSerialPE
from rtl.rescale import RescaleUnit
from verif.row_vectors import pe_groups, rescale_outputs
from verif.runner import run_cocotb

SIMS = ["icarus", "verilator"]


def _verilog(component, name, sim):
    return to_verilog(component, name)     # one text for both simulators


@pytest.mark.parametrize("sim", SIMS)
def test_pe_every_format_random_and_corner_groups(sim, sim_build_dir):
    cfg = load()
    pe = BitSerialPE(cfg.formats, cfg.lanes, cfg.act_bits, cfg.code_bits, cfg.max_terms, cfg.shift_bits,
                     cfg.psum_width)
    vec = {"pe": pe_groups(cfg.formats, cfg.lanes, cfg.steps_per_group, cfg.act_bits, cfg.code_bits)}
    # the max-magnitude groups reach the sized psum width: the check is not vacuous
    assert max(abs(g["psum"]) for g in vec["pe"]).bit_length() == cfg.psum_width - 1
    r = run_cocotb(_verilog(pe, "bitmix_pe", sim), "bitmix_pe", "test_row", sim=sim, build_dir=sim_build_dir,
                   vectors=vec, testcase="pe_groups")
    assert r.failed == 0


@pytest.mark.parametrize("sim,rows", [("icarus", 3), ("verilator", 3), ("icarus", 1)])
def test_rescale_unit_extreme_and_subnormal_scales(sim, rows, sim_build_dir):
    """The shared rescale unit: every corner on some row, batches back to back, R = 1 (the
    accumulation hazard wait) and R = 3 (row interleaving)."""
    cfg = load()
    zpc_bits = cfg.code_bits + 2
    ru = RescaleUnit(cfg.scale_formats, rows, cfg.psum_width, sum_bits(cfg), zpc_bits)
    cases = rescale_outputs(cfg.scale_formats, cfg.psum_width, sum_bits(cfg), zpc_bits, rows=rows)
    results = {x for c in cases for x in c["result"]}
    assert 0x7F800000 in results or 0xFF800000 in results      # an overflow to inf is exercised
    assert any(0 < (r & 0x7FFFFFFF) < 0x00800000 for r in results)   # and an fp32 subnormal result
    assert {c["hot_row"] for c in cases} == set(range(rows))   # corners reach every row
    vec = {"rescale": cases, "rows": rows, "psum_bits": cfg.psum_width, "zpc_bits": zpc_bits}
    r = run_cocotb(_verilog(ru, "bitmix_rescale_unit", sim), "bitmix_rescale_unit", "test_row", sim=sim,
                   build_dir=sim_build_dir, vectors=vec, testcase="rescale_outputs")
    assert r.failed == 0
