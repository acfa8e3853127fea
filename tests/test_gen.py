"""gen: elaboration to Verilog + manifest + summary, and the hygiene checks on a small design."""
import json

import pytest

from gen.__main__ import main
from gen.config import from_toml_text
from gen.elaborate import emit
from gen.hygiene import check_dir

SMALL = """[engine]
rows = 2
lanes = 4
group_size = 16
formats = ["int4", "bitmod4", "fp6_e3m2", "int4_asym"]
scale_formats = ["fp16", "e8m0"]
max_groups = 8
"""


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("verilog")
    cfg = from_toml_text(SMALL, "small")
    return cfg, out, emit(cfg, out)


def test_emit_writes_every_component_and_a_manifest(small):
    cfg, out, man = small
    assert set(man["files"]) == {"bitmix_engine", "bitmix_term_decoder", "bitmix_pe", "bitmix_act_frontend",
                                 "bitmix_rescale_unit", "bitmix_weight_port", "bitmix_fp32_convert",
                                 "bitmix_fp32_adder"}
    for name in man["files"]:
        assert (out / f"{name}.v").read_text().count(f"module {name}(") == 1
    disk = json.loads((out / "manifest.json").read_text())
    assert disk["config"]["formats"] == ["int4", "bitmod4", "fp6_e3m2", "int4_asym"]
    assert [f["terms"] for f in disk["formats"]] == [2, 2, 2, 2]
    ports = {p["name"]: p for p in disk["ports"]["bitmix_engine"]}
    # R words of 8L bits of the packed weight stream, R x (16 + 2 + B) metadata, R fp32 results
    assert ports["wgt__payload"]["width"] == 2 * 8 * 4
    assert ports["meta__payload"]["width"] == 2 * (18 + 6)
    assert ports["res__payload"]["width"] == 2 * 32
    assert ports["cmd__payload"]["fields"] == [{"name": "fmt", "offset": 0, "width": 2},
                                               {"name": "scale_fmt", "offset": 2, "width": 1},
                                               {"name": "n_groups", "offset": 3, "width": 4}]
    assert "4 rows" not in (out / "summary.txt").read_text() and "2 rows x 4 lanes" in man["summary"]


@pytest.mark.synth
def test_hygiene_yosys_check_and_verilator_lint(small):
    cfg, out, man = small
    results = check_dir(out, list(man["files"]))
    failures = {(n, c): log for n, checks in results.items() for c, (ok, log) in checks.items() if not ok}
    assert not failures, failures


def test_cli_verilog_and_help(tmp_path, capsys):
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL)
    assert main(["verilog", "--config", str(cfg), "--out", str(tmp_path / "v")]) == 0
    assert "wrote 8 Verilog files" in capsys.readouterr().out
    assert main(["default-config"]) == 0
    assert "[engine]" in capsys.readouterr().out
    assert main(["--help"]) == 0
    assert "verilog,lint,hygiene,check,default-config,area,sweep" in capsys.readouterr().err
    assert main(["nope"]) == 2
