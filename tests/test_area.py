"""The synthesis flows of gen/area.py, the report (gen/report.py) and the sweep (gen/sweep.py),
on tiny designs. Hand-checkable facts only: figures of real designs are measured by
``make area`` / ``make sweep`` and written down, never asserted here."""

import json
import re

import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from gen import area as A
from gen import cache as C

NAND_V = "module nand_top(input a, input b, output y);\n  assign y = ~(a & b);\nendmodule\n"
INV_V = "module inv_top(input a, output y);\n  assign y = ~a;\nendmodule\n"
DFF_V = "module dff_top(input clk, input d, output reg q);\n  always @(posedge clk) q <= d;\nendmodule\n"
AND8_V = "module and8_top(input [7:0] a, output y);\n  assign y = &a;\nendmodule\n"


def lib_areas() -> dict[str, float]:
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"cell \((\w+)\) \{\s*area : ([0-9.]+);", A.LIBERTY.read_text())}


@pytest.fixture(scope="module")
def tools():
    """Warm the YoWASP caches once (the first run ever compiles the WebAssembly: ~50 s)."""
    v = A.tool_versions()
    assert v["yosys"].startswith("Yosys 0.70"), v
    assert "nextpnr-0.11.1" in v["nextpnr-ecp5"], v
    return v


def write(tmp_path, name, text):
    p = tmp_path / f"{name}.v"
    p.write_text(text)
    return p


class Adder4(wiring.Component):
    a: In(4)
    b: In(4)
    s: Out(5)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.s.eq(self.a + self.b)
        return m


class Acc4(wiring.Component):
    x: In(4)
    en: In(1)
    acc: Out(8)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            m.d.sync += self.acc.eq(self.acc + self.x)
        return m


def test_liberty_is_the_documented_table():
    areas = lib_areas()
    assert areas["NAND2"] == 1.0 and areas["NOR2"] == 1.0 and areas["BUF"] == 1.0
    assert areas["INV"] == pytest.approx(0.532 / 0.798, abs=1e-4)
    assert areas["XOR2"] == pytest.approx(1.596 / 0.798) and areas["XNOR2"] == pytest.approx(2.0)
    assert areas["MUX2"] == pytest.approx(1.862 / 0.798, abs=1e-4)
    assert areas["DFF"] == pytest.approx(4.522 / 0.798, abs=1e-4)
    for cell in ("INV", "BUF", "NAND2", "NOR2", "AND2", "OR2", "XOR2", "XNOR2", "AOI21", "OAI21", "MUX2", "DFF"):
        assert cell in areas
        assert re.search(rf"^ \* +{cell} ", A.LIBERTY.read_text(), re.M), f"{cell} is not documented"


def test_single_gates_give_the_liberty_areas(tools, tmp_path):
    areas = lib_areas()
    nand = A.asic_metrics(write(tmp_path, "nand_top", NAND_V), "nand_top")
    assert nand["ge"]["by_type"] == {"NAND2": 1}
    assert nand["ge"]["ge"] == pytest.approx(areas["NAND2"])
    assert nand["ge"]["seq_ge"] == 0
    assert nand["transistors"] == 4 and isinstance(nand["transistors"], int)
    assert not nand["transistors_incomplete"]
    assert nand["depth"] == 1
    assert nand["generic"]["cells"] == 1

    inv = A.asic_metrics(write(tmp_path, "inv_top", INV_V), "inv_top")
    assert inv["ge"]["by_type"] == {"INV": 1}
    assert inv["ge"]["ge"] == pytest.approx(areas["INV"])
    assert inv["transistors"] == 2

    dff = A.asic_metrics(write(tmp_path, "dff_top", DFF_V), "dff_top")
    assert dff["ge"]["by_type"] == {"DFF": 1}
    assert dff["ge"]["ge"] == pytest.approx(areas["DFF"]) == pytest.approx(dff["ge"]["seq_ge"])
    assert dff["ge"]["ff_bits"] == 1 and dff["generic"]["ff_bits"] == 1
    assert dff["transistors"] == 16          # yosys' CMOS table: 16 per D flip-flop
    assert dff["depth"] == 0


def test_single_flow_functions(tools, tmp_path):
    p = write(tmp_path, "and8_top", AND8_V)
    s = A.synth_stats(p, "and8_top")
    assert isinstance(s["cells"], int) and s["cells"] > 0 and all(k.startswith("$_") for k in s["by_type"])
    g = A.area_ge(p, "and8_top")
    assert g["ge"] > 0 and g["cells"] == sum(g["by_type"].values())
    t = A.transistors(p, "and8_top")
    assert isinstance(t, int) and t > 0
    d = A.logic_depth(p, "and8_top")
    assert 3 <= d <= 7           # 8 inputs through 2-input cells: at least log2(8) levels


def test_emitted_component_and_wrapper(tools, tmp_path):
    p = A.emit_component(Acc4(), "acc4", tmp_path)
    assert p == tmp_path / "acc4.v" and "module acc4" in p.read_text()
    ports = {n: (d, w) for d, n, w in A.module_ports(p, "acc4")}
    assert ports["x"] == ("input", 4) and ports["acc"] == ("output", 8) and ports["clk"] == ("input", 1)
    w, wname, bits = A.write_register_wrapper(p, "acc4")
    assert wname == "acc4__regwrap" and bits == 4 + 1 + 8 + 1      # x, en, acc, rst
    m = A.asic_metrics(p, "acc4")
    assert m["ge"]["ff_bits"] == 8 and m["generic"]["ff_bits"] == 8
    assert m["ge"]["seq_ge"] == pytest.approx(8 * lib_areas()["DFF"])
    assert m["transistors"] > 16 * 8 and m["depth"] > 0


def test_ecp5_place_and_route(tools, tmp_path):
    p = A.emit_component(Acc4(), "acc4", tmp_path)
    r = A.fpga_ecp5(p, "acc4")
    assert r["ff"] == 8                       # the component's own flip-flops, not the wrapper's
    assert r["wrapper_ff"] == 14 and r["pnr_ff"] == 8 + 14
    assert r["lut4"] + r["ccu2c"] > 0 and r["lut4_equiv"] == r["lut4"] + 2 * r["ccu2c"]
    assert isinstance(r["fmax_mhz"], float) and r["fmax_mhz"] > 0
    comb = A.emit_component(Adder4(), "add4", tmp_path)        # no clock of its own: the wrapper adds one
    r = A.fpga_ecp5(comb, "add4", place=False)
    assert r["ff"] == 0 and r["wrapper_ff"] == 4 + 4 + 5


def test_cache_hits_on_same_verilog(tools, tmp_path):
    p = write(tmp_path, "nand_top", NAND_V)
    cache = C.Cache(tmp_path / "cache")
    first = C.cached(cache, p, "nand_top", "asic", {"parts": ["ge"]}, lambda: A.asic_metrics(p, "nand_top", ["ge"]))
    again = C.cached(cache, p, "nand_top", "asic", {"parts": ["ge"]}, lambda: pytest.fail("not cached"))
    assert not first["cached"] and again["cached"] and again["ge"] == first["ge"]
    p.write_text(NAND_V.replace("~(a & b)", "~(a | b)"))
    assert cache.get(cache.key(p, "nand_top", "asic", {"parts": ["ge"]})) is None


def test_report_on_tiny_designs(tools, tmp_path):
    from gen import report
    from gen.designs import Design

    d1 = Design(name="tiny_a", description="an adder and half an accumulator per row",
                components={"add": Adder4, "acc": Acc4}, per_row={"add": 1.0, "acc": 0.5},
                macs_per_cycle={"int4": 2.0, "int8": 1.0}, top=Acc4, params={"rows": 2})
    d2 = Design(name="tiny_b", description="one adder per row", components={"add": Adder4},
                per_row={"add": 1.0}, macs_per_cycle={"int4": 1.0}, top=None, params={})
    rep = report.build([d1, d2], {"name": "test"}, tmp_path / "work", tmp_path / "out", fpga=True, top=True,
                       top_fpga=False, progress=False, log=lambda *a: None, scheduler="serial")
    out = tmp_path / "out"
    for f in ("area.json", "area.md", "area_ge_per_row.png", "area_macs_per_kge.png", "area_ecp5_per_row.png"):
        assert (out / f).stat().st_size > 0, f
    data = json.loads((out / "area.json").read_text())
    assert {"generated", "tools", "flow", "config", "options", "designs", "timings", "plots"} <= set(data)
    assert data["tools"]["yosys"].startswith("Yosys 0.70")
    assert not report.failures(data)
    a = data["designs"][0]
    assert a["name"] == "tiny_a" and a["format_4bit"] == "int4"
    ge = {c: a["components"][c]["metrics"]["ge"] for c in ("add", "acc")}
    assert a["row"]["ge"] == pytest.approx(ge["add"] + 0.5 * ge["acc"], abs=1e-3)
    assert a["row"]["ff"] == 4                               # half of the accumulator's 8 flip-flops
    assert a["efficiency"]["int4"]["macs_per_cycle_per_kge"] == pytest.approx(2.0 / (a["row"]["ge"] / 1000),
                                                                              rel=1e-3)
    assert a["top"]["metrics"]["ge"] == pytest.approx(a["components"]["acc"]["metrics"]["ge"])
    assert a["top"]["note"] == "ECP5 not run (whole engines on ECP5: --top-fpga)"
    assert "top" not in data["designs"][1]
    md = (out / "area.md").read_text()
    for name in ("tiny_a", "tiny_b", "an adder and half an accumulator per row", "Yosys 0.70", "## Per row"):
        assert name in md
    # neither is named bitmix...: both are in the generated Baselines section, with the storage rule and anchors
    from gen.area_markdown import STORAGE_RULE
    from gen.area_metrics import ANCHORS
    base = md[md.index("## Baselines"):md.index("## How each bitmix design was built")]
    assert STORAGE_RULE in base and "* **tiny_a**: an adder and half an accumulator per row." in base
    assert data["anchors"] == [dict(a) for a in ANCHORS] and "| BitMoD FP16xINT8 unit | 2,445 |" in base
    # a component priced on ECP5 through another: 3 x its counts, its Fmax, no run of its own
    d3 = Design(name="tiny_c", description="three adders", components={"add": Adder4, "acc": Acc4},
                per_row={"acc": 1.0}, macs_per_cycle={"int4": 1.0}, fpga_proxy={"acc": ("add", 3)})
    rep3 = report.build([d3], {"name": "test"}, tmp_path / "work", tmp_path / "out3", fpga=True, top=False,
                        progress=False, log=lambda *a: None, scheduler="serial")
    c3 = rep3["designs"][0]["components"]
    add_f, acc_f = c3["add"]["ecp5"], c3["acc"]["ecp5"]
    assert acc_f["proxy"] == "3 x add" and acc_f["lut4_equiv"] == 3 * add_f["lut4_equiv"] > 0
    assert acc_f["fmax_mhz"] == add_f["fmax_mhz"] and "seconds_pnr" not in acc_f
    assert c3["acc"]["metrics"]["ge"] != c3["add"]["metrics"]["ge"]          # the ASIC figures are its own
    assert rep3["timings"]["runs"] == 3                                      # 2 ASIC + 1 ECP5
    assert "| tiny_c | acc (ECP5: 3 x add) |" in (tmp_path / "out3" / "area.md").read_text()
    # the second run reads every result from the cache
    rep2 = report.build([d1, d2], {"name": "test"}, tmp_path / "work", tmp_path / "out", fpga=True, top=True,
                        top_fpga=False, progress=False, log=lambda *a: None, scheduler="serial")
    assert rep2["timings"]["cached_runs"] == rep2["timings"]["runs"] == rep["timings"]["runs"]


def test_pareto():
    from gen.sweep import pareto
    pts = [{"x": 1, "y": 3.0}, {"x": 2, "y": 2.0}, {"x": 2, "y": 1.0}, {"x": 4, "y": 2.0}, {"x": 1, "y": None}]
    assert pareto(pts, "x", "y") == [0, 3]


def test_sweep_on_a_tiny_engine(tools, tmp_path):
    from gen.config import EngineConfig
    from gen.sweep import run
    cfg = EngineConfig(rows=1, lanes=2, group_size=8, formats=("int4",), scale_formats=("fp16",), name="tiny")
    rep = run(cfg, lanes=(2,), rows=(1, 2), set_names=["int4"], work=tmp_path / "work", out=tmp_path / "out",
              progress=False, log=lambda *a: None, scheduler="serial")
    for f in ("sweep.json", "sweep.md", "sweep_pareto.png"):
        assert (tmp_path / "out" / f).stat().st_size > 0
    p1, p2 = sorted(rep["points"], key=lambda p: p["rows"])
    c = p1["components"]
    c2 = p2["components"]
    shared = ("rescale_unit", "act_frontend", "weight_port")
    assert p1["ge_per_row"] == pytest.approx(c["pe"]["ge"] + sum(c[k]["ge"] for k in shared), abs=0.01)
    assert p2["ge_per_row"] == pytest.approx(c2["pe"]["ge"] + sum(c2[k]["ge"] for k in shared) / 2, abs=0.01)
    # the PE and the front end do not depend on R; the rescale unit and the weight port (R rows of state) do
    assert c2["pe"]["ge"] == c["pe"]["ge"] and c2["act_frontend"]["ge"] == c["act_frontend"]["ge"]
    assert c2["rescale_unit"]["ge"] > c["rescale_unit"]["ge"] and c2["weight_port"]["ge"] > c["weight_port"]["ge"]
    assert p1["macs_per_cycle_4bit"] == 1.0                  # 2 lanes, INT4 = 2 terms
    assert p2["pareto"] and not p1["pareto"]


def test_sweep_serial_equals_local_cluster(tools, tmp_path):
    """The same small sweep run in-process and on a 2-worker Dask LocalCluster (separate caches, so the
    cluster really runs every tool): the same points, the same JSON apart from times and dates."""
    from gen.config import EngineConfig
    from gen.sweep import run
    cfg = EngineConfig(rows=1, lanes=2, group_size=8, formats=("int4",), scale_formats=("fp16",), name="tiny")
    docs = {}
    for sched in ("serial", "local"):
        run(cfg, lanes=(2, 4), rows=(1, 2), set_names=["int4"], work=tmp_path / sched, out=tmp_path / sched / "out",
            progress=False, log=lambda *a: None, scheduler=sched, workers=2)
        docs[sched] = json.loads((tmp_path / sched / "out" / "sweep.json").read_text())
    for d in docs.values():
        assert d["timings"]["errors"] == 0 and d["timings"]["cached_runs"] == 0
        for k in ("generated", "timings", "machine"):
            d.pop(k)
    assert docs["serial"] == docs["local"]
    assert len(docs["serial"]["points"]) == 4


# =========================================================================== targets on synthetic metrics
def _design(name, comps, per_row, macs, **params):
    """A report design entry as gen.report.build makes it, from made-up component metrics."""
    from gen.area_metrics import efficiency, four_bit_format, headline_format, row_totals
    keys = ("cells", "ge", "seq_ge", "transistors", "ff_bits", "depth", "lut4", "ff", "ccu2c", "lut4_equiv",
            "dp16kd", "dpr16x4", "pfumx", "l6mux21", "fmax_mhz")
    metrics = {c: {k: m.get(k, 0) for k in keys} for c, m in comps.items()}
    row = row_totals(per_row, metrics)
    return {"name": name, "description": f"{name} as built", "params": params, "per_row": per_row,
            "macs_per_cycle": macs, "format_4bit": four_bit_format(macs), "format_headline": headline_format(macs),
            "components": {c: {"metrics": m} for c, m in metrics.items()}, "row": row,
            "efficiency": efficiency(macs, row)}


def _synthetic(fp16xint8_ge=16000.0, int4_ge=7000.0, mac_fmax=20.0, bfp_ge=20000.0):
    """bitmix: 8,000 GE per row (PE 5,000, 1/16 of a 16,000 GE rescale unit and of a 32,000 GE front
    end), 4 MACs/cycle at int4 and bitmod4: 0.5 MACs/cycle/kGE."""
    shared = {"rescale_unit": 1 / 16, "act_frontend": 1 / 16}
    bm = _design("bitmix", {"pe": {"ge": 5000.0, "fmax_mhz": 30.0}, "decoder": {"ge": 250.0, "fmax_mhz": 90.0},
                            "rescale_unit": {"ge": 16000.0, "fmax_mhz": 25.0},
                            "act_frontend": {"ge": 32000.0, "fmax_mhz": 40.0}},
                 {"pe": 1.0, **shared}, {"int4": 4.0, "int8": 2.0, "bitmod4": 4.0}, lanes=8)
    int4 = _design("bitmix_int4_only", {"pe": {"ge": int4_ge}}, {"pe": 1.0}, {"int4": 4.0}, lanes=8)
    mac = _design("fp16xfp16_mac", {"pe": {"ge": 40000.0, "fmax_mhz": mac_fmax},
                                    "fp32_adder": {"ge": 1700.0, "fmax_mhz": 23.5}},
                  {"pe": 1.0}, {"fp16": 8.0}, lanes=8, code_bits=16)
    i8 = _design("fp16xint8_parallel", {"pe": {"ge": fp16xint8_ge}}, {"pe": 1.0}, {"int8": 8.0}, lanes=8, code_bits=8)
    bfp = _design("int8xbfp_parallel", {"pe": {"ge": bfp_ge}}, {"pe": 1.0}, {"int8": 8.0}, lanes=8)
    pe4 = _design("bitmix_pe4", {"pe": {"ge": 2600.0}, "decoder": {"ge": 200.0}}, {"pe": 1.0},
                  {"int4": 2.0}, lanes=4)
    return {"designs": [bm, int4, bfp, pe4, mac, i8]}


def test_targets_on_synthetic_metrics(monkeypatch):
    from gen import area_metrics as M
    monkeypatch.setattr(M, "_weight_stream_module", lambda: None)
    t = M.targets(_synthetic())
    assert [x["met"] for x in t] == [True, False, True, True, False, True]
    mac, i8, bfp, fmts, pe4, fmax = t
    # 0.5 / (8 / 40) = 2.5: met at exactly the target
    assert mac["target"] == "bitmix MACs/cycle/kGE at W4 >= 2.5x fp16xfp16_mac's (at fp16)"
    assert mac["measured"] == 2.5 and mac["by"] == ""
    assert mac["figures"] == "0.500 vs 0.200 MACs/cycle/kGE (W4 = int4 = bitmod4): 2.50x"
    assert mac["weight_bits"] == "4 vs 16"
    assert mac["limit"] == ("bitmix row area shares: pe 62%, rescale_unit 12%, act_frontend 25%, "
                            "decoders (inside pe) 25%")
    # 0.5 / 0.5 = 1.0 against 1.5: the row would have to be 4 / (1.5 * 0.5) = 5,333 GE
    assert i8["measured"] == 1.0 and i8["want"] == 1.5
    assert i8["by"] == ("0.50x short (50% more MACs/cycle/kGE needed: the bitmix row would have to shrink from "
                        "8,000 to 5,333 GE, 2,667 GE less)")
    assert i8["limit"].endswith("; largest: pe") and i8["weight_bits"] == "4 vs 8"
    assert bfp["target"] == "bitmix MACs/cycle/kGE at W4 above int8xbfp_parallel's (at int8)"
    assert bfp["measured"] == 1.25
    # 8,000 / 7,000 = 1.143 <= 1.15
    assert fmts["measured"] == 1.143 and fmts["figures"] == "8,000 vs 7,000 GE per row: 1.14x"
    assert fmts["limit"] == "the PE: 5,000 vs 7,000 GE"
    # 2,600 GE against 0.8 x 3,192 = 2,553.6
    assert pe4["want"] == 2553.6 and pe4["measured"] == 2600.0
    assert pe4["by"] == "46 GE over (2%)"
    assert pe4["limit"] == ("4 term decoders 800 GE (31% of the PE), shifters, adder tree and group sum "
                            "register 1,800 GE")
    assert pe4["target"].startswith("4-lane PE, full format set, <= 0.8 x 3,192 GE (BitMoD 4-lane PE, without "
                                    "its block registers; the authors' RTL synthesised with this project's flow)")
    assert fmax["measured"] == 25.0 and fmax["want"] == 20.0 and fmax["by"] == ""
    assert fmax["limit"].startswith("bitmix's slowest component: rescale_unit;")
    assert fmax["limit"].endswith("(its fp32 adder alone: 23.5 MHz)")


def test_targets_missed_by_how_much(monkeypatch):
    from gen import area_metrics as M
    monkeypatch.setattr(M, "_weight_stream_module", lambda: None)
    t = M.targets(_synthetic(fp16xint8_ge=10000.0, int4_ge=6000.0, mac_fmax=30.0, bfp_ge=16000.0))
    _, i8, bfp, fmts, _, fmax = t
    assert i8["measured"] == 0.625 and i8["met"] is False      # 0.5 / 0.8
    assert i8["by"].startswith("0.88x short (140% more MACs/cycle/kGE needed: the bitmix row would have to "
                               "shrink from 8,000 to 3,333 GE")
    assert bfp["measured"] == 1.0 and bfp["met"] is False      # equal is not above
    assert bfp["by"].startswith("0.00x short (0% more")
    assert fmts["measured"] == 1.333 and fmts["met"] is False
    assert fmts["by"] == "1,100 GE per row over (0.18x above 1.15x)"   # 8,000 - 1.15 x 6,000
    assert fmax["met"] is False and fmax["by"] == "5.0 MHz short (17%)"


def test_targets_without_measurements():
    from gen import area_metrics as M
    t = M.targets({"designs": []})
    assert len(t) == 6 and all(x["met"] is None and x["by"] == "" for x in t)
    assert t[0]["figures"] == "– vs – MACs/cycle/kGE (W4 = –)"


def test_weight_stream_bits_hook(monkeypatch):
    import types

    from gen import area_metrics as M
    monkeypatch.setattr(M, "_weight_stream_module", lambda: None)
    assert M.weight_stream_bits("int4") == 4 and M.weight_stream_bits("fp6_e3m2") == 6
    assert M.weight_stream_bits("fp16", 16) == 16 and M.weight_stream_bits("fp16") is None

    def bits_per_weight(fmt):
        if fmt == "fp16":
            raise ValueError("not a weight-stream format")
        return {"int4": 4.125, "int8": 8.125}[fmt]
    monkeypatch.setattr(M, "_weight_stream_module", lambda: types.SimpleNamespace(bits_per_weight=bits_per_weight))
    assert M.weight_stream_bits("int4") == 4.125 and M.weight_stream_bits("fp16", 16) == 16
    t = M.targets(_synthetic())
    assert t[0]["weight_bits"] == "4.125 vs 16"
    # the packed weight port's module names it stream_bits_per_weight; a module with neither falls back
    monkeypatch.setattr(M, "_weight_stream_module",
                        lambda: types.SimpleNamespace(stream_bits_per_weight=lambda f: {"int4": 5}[f]))
    assert M.weight_stream_bits("int4") == 5
    monkeypatch.setattr(M, "_weight_stream_module", lambda: types.SimpleNamespace())
    assert M.weight_stream_bits("int4") == 4


def test_anchors_are_the_stated_constants():
    from gen import area_metrics as M
    assert [(a["key"], a["ge"]) for a in M.ANCHORS] == [("bitmod_pe4", 3192), ("bitmod_pe4_regs", 4946),
                                                          ("bitmod_fp16xint8", 2445), ("hardfloat_mac", 5562)]
    assert M.anchor("hardfloat_mac")["provenance"] == "Berkeley HardFloat synthesised with this project's flow"
    with pytest.raises(KeyError, match=re.escape("no anchor 'x'; known: bitmod_pe4, bitmod_pe4_regs, "
                                                 "bitmod_fp16xint8, hardfloat_mac")):
        M.anchor("x")


def test_report_baselines_section_and_targets_table(monkeypatch):
    from gen import area_markdown as MD
    from gen import area_metrics as M
    monkeypatch.setattr(M, "_weight_stream_module", lambda: None)
    rep = {**_synthetic(), "anchors": list(M.ANCHORS)}
    assert "External anchors" not in "".join(MD.baselines_markdown(_synthetic()))
    lines = MD.baselines_markdown(rep)
    assert lines[0] == "## Baselines\n" and lines[1] == MD.STORAGE_RULE + "\n"
    built = [x for x in lines if x.startswith("* **")]
    assert [x.split("**")[1] for x in built] == ["int8xbfp_parallel", "fp16xfp16_mac", "fp16xint8_parallel"]
    assert built[1] == ("* **fp16xfp16_mac**: fp16xfp16_mac as built. Components: `pe` x 1, `fp32_adder` x 0 "
                        "(inside another) per row. Parameters: lanes=8.")
    assert "| BitMoD 4-lane PE, with its block registers | 4,946 | the authors' RTL synthesised with this " \
           "project's flow |" in lines
    assert "| HardFloat FP16xFP16 MAC with fp32 accumulation | 5,562 | Berkeley HardFloat synthesised with " \
           "this project's flow |" in lines
    assert "activation vector and the weight memory" in MD.STORAGE_RULE and "flip-flop cost" in MD.STORAGE_RULE
    tl = MD.targets_markdown(M.targets(rep))
    assert tl[2] == "| target | measured | met | missed by | what limits it | weight-stream bits/weight |"
    assert tl[5].startswith("| bitmix MACs/cycle/kGE at W4 >= 1.5x fp16xint8_parallel's (at int8) | 0.500 vs "
                            "0.500 MACs/cycle/kGE (W4 = int4 = bitmod4): 1.00x | **no** | 0.50x short")
    assert tl[5].endswith("| 4 vs 8 |")
    assert len(tl) == 4 + 6 + 1
