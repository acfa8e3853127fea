"""What each weight format costs: the leave-out sets, the savings arithmetic, the report rows, and one
real run on a tiny engine."""
import dataclasses

import pytest

from gen import format_cost as FC

DEFAULT = ("int3", "int4", "int6", "int8", "int3_asym", "int4_asym", "fp3", "fp4_e2m1", "bitmod3", "bitmod4",
           "fp6_e3m2", "fp6_e2m3")


def test_kinds_come_from_the_format_definitions():
    assert [FC.kind(f) for f in DEFAULT] == ["INT", "INT", "INT", "INT", "INT asym", "INT asym", "FP", "FP",
                                            "BitMoD", "BitMoD", "FP", "FP"]
    with pytest.raises(ValueError, match="int5"):
        FC.kind("int5")


def test_leave_out_sets_of_the_default_formats():
    sets = FC.leave_out_sets(DEFAULT)
    assert [label for label, _ in sets] == list(DEFAULT) + [
        "all INT", "all INT asym", "all FP", "all BitMoD", "all 3-bit", "all 4-bit", "all 6-bit"]
    d = dict(sets)
    assert d["all FP"] == ("fp3", "fp4_e2m1", "fp6_e3m2", "fp6_e2m3")
    assert d["all 6-bit"] == ("int6", "fp6_e3m2", "fp6_e2m3")
    assert "all 8-bit" not in d                       # int8 alone: already its own row


def test_leave_out_sets_never_empty_the_set():
    assert FC.leave_out_sets(("int4",)) == []
    assert FC.leave_out_sets(("int4", "int8")) == [("int4", ("int4",)), ("int8", ("int8",))]
    # one kind covering the whole set is not a row
    assert [lab for lab, _ in FC.leave_out_sets(("int4", "int8", "bitmod4"))] == ["int4", "int8", "bitmod4",
                                                                                   "all INT", "all 4-bit"]


def test_the_rescale_unit_is_priced_again_only_when_its_widths_change():
    from gen.config import load
    from gen.designs import default_designs
    cfg = load()
    v = FC.variant_components(cfg, default_designs(cfg)[0])
    priced = sorted(k for k, x in v.items() if "rescale_unit" in x["components"])
    assert priced == ["all 4-bit", "all 6-bit", "all FP", "all INT asym", "fp6_e3m2", "int4_asym"]
    assert all(set(x["components"]) | set(x["same"]) == set(FC.COMPONENTS) for x in v.values())


def test_savings_arithmetic_and_report_row():
    per_row = {"pe": 1.0, "rescale_unit": 0.25, "act_frontend": 0.25, "weight_port": 0.25}
    full = {"pe": 1000.0, "rescale_unit": 800.0, "weight_port": 400.0}
    var = {"x": {"formats": ("int8",), "ge": {"pe": 900.0, "rescale_unit": 800.0, "weight_port": 200.0}},
           "y": {"formats": ("int4",), "ge": {"pe": 1010.0, "rescale_unit": None, "weight_port": 400.0}},
           "z": {"formats": ("fp3",), "same": ("rescale_unit",), "ge": {"pe": 990.0, "weight_port": 360.0}}}
    rows = FC.savings(per_row, full, var)
    assert rows[0] == {"label": "x", "formats": ["int8"], "row_ge": 900.0 + 200.0 + 50.0, "saved": 150.0,
                       "by_component": {"pe": 100.0, "rescale_unit": 0.0, "weight_port": 50.0}}
    assert rows[1] == {"label": "y", "formats": ["int4"], "error": "no GE figure (see area.json)"}
    # a component built exactly as with the whole set saves nothing and needs no run
    assert rows[2]["by_component"] == {"pe": 10.0, "rescale_unit": 0.0, "weight_port": 10.0}
    assert rows[2]["saved"] == 20.0
    from gen.area_markdown import format_cost_markdown
    md = format_cost_markdown(rows, 1500.0)
    assert md[0] == "## What each weight format costs\n"
    assert "| x | int8 | 150 | 10.0% | 100 | 0 | 50 |" in md
    assert "| y | int4 | no GE figure (see area.json) | |" + " |" * 3 in md
    assert format_cost_markdown([], 1500.0) == []


@pytest.mark.synth
def test_format_costs_in_the_area_report(tmp_path):
    from gen import report
    from gen.config import EngineConfig
    from gen.designs import engine_design
    cfg = EngineConfig(rows=2, lanes=2, group_size=8, formats=("int4", "int8"), scale_formats=("fp16",),
                       name="tiny")
    d = engine_design(cfg, "bitmix", "tiny two-format engine")
    rep = report.build([d], cfg, tmp_path / "work", tmp_path / "out", fpga=False, top=False, progress=False,
                       log=lambda *a: None, scheduler="serial", format_costs=cfg)
    fc = rep["designs"][0]["format_costs"]
    assert [r["label"] for r in fc] == ["int4", "int8"]
    comps = rep["designs"][0]["components"]
    for r in fc:
        assert "error" not in r
        assert r["saved"] == pytest.approx(sum(r["by_component"].values()))
        base = sum(d.per_row[c] * comps[c]["metrics"]["ge"] for c in FC.COMPONENTS)
        assert r["row_ge"] == pytest.approx(base - r["saved"])
    # without int8 the code slot, the PE and the port shrink
    assert fc[1]["by_component"]["pe"] > 0 and fc[1]["by_component"]["weight_port"] > 0
    assert "## What each weight format costs" in (tmp_path / "out" / "area.md").read_text()
    # a design set without bitmix has no table
    other = dataclasses.replace(d, name="other")
    rep2 = report.build([other], cfg, tmp_path / "work", tmp_path / "out2", fpga=False, top=False, progress=False,
                        log=lambda *a: None, scheduler="serial", format_costs=cfg)
    assert "format_costs" not in rep2["designs"][0]
