"""The sw.eval CLI/report on the tiny context: files, section keys, missing/raising modules."""
from __future__ import annotations

import json
import sys
import types

import pytest
import torch

from sw.eval import Section, Table, report
from sw.eval.__main__ import build_parser, main

MINE = ["reference", "weight_formats", "fp6", "act_kv", "studies", "minilm", "speed"]


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _stub_sections(monkeypatch):
    """adaquant: module missing; allocate: raises; qat: a stub that returns a Section."""
    bad = types.ModuleType("sw_eval_test_raising")
    bad.section = lambda ctx: (_ for _ in ()).throw(RuntimeError("boom in allocate"))
    ok = types.ModuleType("sw_eval_test_ok")
    ok.section = lambda ctx: Section("qat", "QAT stub", "stub text", [Table("t", ["a", "b"], [[1, 2.5]])],
                                     [], {"x": float("inf")})
    monkeypatch.setitem(sys.modules, "sw_eval_test_raising", bad)
    monkeypatch.setitem(sys.modules, "sw_eval_test_ok", ok)
    monkeypatch.setitem(report.SECTIONS, "adaquant", ("sw.eval._no_such_module_for_test", "section"))
    monkeypatch.setitem(report.SECTIONS, "allocate", ("sw_eval_test_raising", "section"))
    monkeypatch.setitem(report.SECTIONS, "qat", ("sw_eval_test_ok", "section"))


def test_cli_writes_report_with_every_section(tmp_path, monkeypatch):
    _stub_sections(monkeypatch)
    rc = main(["--tiny", "--out", str(tmp_path), "--no-progress"])
    assert rc == 1                                           # two sections failed
    doc = json.loads((tmp_path / "eval.json").read_text())
    assert list(doc["sections"]) == report.DEFAULT_SECTIONS      # the optional sweep only when asked
    assert "adaquant_sweep" in report.SECTIONS and "adaquant_sweep" not in report.DEFAULT_SECTIONS
    assert doc["errors"] == ["adaquant", "allocate"]
    assert "missing module" in doc["sections"]["adaquant"]["error"]
    assert "boom in allocate" in doc["sections"]["allocate"]["error"]
    assert doc["sections"]["qat"]["data"] == {"x": None}     # non-finite floats become null
    env = doc["environment"]
    assert env["preset"]["name"] == "smoke" and env["seed"] == 0
    assert env["versions"]["torch"] and env["protocol"]["windows"] == 2
    assert set(doc["seconds"]) == set(report.DEFAULT_SECTIONS)
    for k in MINE:
        s = doc["sections"][k]
        assert "error" not in s, (k, s.get("error"))
        assert s["tables"] and s["text"], k
    md = (tmp_path / "eval.md").read_text()
    for k in report.DEFAULT_SECTIONS:
        assert f"(`{k}`)" in md
    plots = [p for s in doc["sections"].values() for p in s["plots"]]
    assert {"weight_formats.png", "studies_exmy.png", "minilm.png"} <= set(plots)
    for p in plots:
        assert "![" in md and f"]({p})" in md
        assert (tmp_path / p).read_bytes()[:4] == b"\x89PNG"
    assert "## Run time" in md and "| allocate |" in md
    wf = doc["sections"]["weight_formats"]
    assert "bitmod4" in wf["data"]["results"] and ("**met**" in wf["text"] or "**missed**" in wf["text"])


def test_section_subset_and_bad_names(tmp_path, capsys):
    assert main(["--tiny", "--out", str(tmp_path), "--no-progress", "--sections", "speed,reference"]) == 0
    doc = json.loads((tmp_path / "eval.json").read_text())
    assert list(doc["sections"]) == ["reference", "speed"]
    assert main(["--tiny", "--sections", "reference,bogus"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert report.parse_sections("all") == list(report.SECTIONS)
    assert report.parse_sections("adaquant,adaquant_sweep") == ["adaquant_sweep", "adaquant"]   # report order
    with pytest.raises(ValueError, match="or all"):
        report.parse_sections("all,reference")


def test_help_states_presets():
    h = build_parser().format_help()
    for s in ("quick", "full", "8192", "16384", "--sections", "--out", "--no-progress"):
        assert s in h


def test_modified_model_is_an_error(tmp_path, monkeypatch):
    from sw.eval import tiny_context
    ctx = tiny_context(tmp_path)
    mod = types.ModuleType("sw_eval_test_mutating")

    def section(c):
        with torch.no_grad():
            c.model.model.norm.weight.add_(1.0)       # not a linear: weights_restored cannot undo it
        return Section("qat", "mutating")
    mod.section = section
    monkeypatch.setitem(sys.modules, "sw_eval_test_mutating", mod)
    monkeypatch.setitem(report.SECTIONS, "qat", ("sw_eval_test_mutating", "section"))
    s = report.run_section(ctx, "qat")
    assert "left the model" in s.data["error"]


def test_fmt_cell():
    assert report.fmt_cell(22.44112) == "22.441" and report.fmt_cell(0.99999123) == "0.999991"
    assert report.fmt_cell(1.5e-5) == "1.500e-05" and report.fmt_cell(None) == "—"


def _untimed(x):
    """``x`` without run times: table columns and dict keys that name seconds."""
    if isinstance(x, dict):
        if "columns" in x and "rows" in x:
            keep = [i for i, c in enumerate(x["columns"]) if "second" not in c and c != "s"]
            return {**x, "columns": [x["columns"][i] for i in keep],
                    "rows": [[r[i] for i in keep] for r in x["rows"]]}
        return {k: _untimed(v) for k, v in x.items() if "second" not in k}
    if isinstance(x, list):
        return [_untimed(v) for v in x]
    return x


@pytest.mark.slow
def test_sections_as_jobs_give_the_in_process_figures(tmp_path):
    """The same sections run in process and as jobs on a 2-worker LocalCluster (one torch thread each,
    as here) give the same tables and data; a worker's context reuses the caller's float reference."""
    keys = "reference,weight_formats,fp6"
    assert main(["--tiny", "--out", str(tmp_path / "a"), "--no-progress", "--sections", keys]) == 0
    assert main(["--tiny", "--out", str(tmp_path / "b"), "--no-progress", "--sections", keys,
                 "--scheduler", "local", "--workers", "2", "--threads", "1"]) == 0
    a, b = (json.loads((tmp_path / d / "eval.json").read_text()) for d in ("a", "b"))
    assert list(b["sections"]) == ["reference", "weight_formats", "fp6"]
    for k in ("reference", "weight_formats", "fp6"):
        assert _untimed(b["sections"][k]["tables"]) == _untimed(a["sections"][k]["tables"]), k
        assert _untimed(b["sections"][k]["data"]) == _untimed(a["sections"][k]["data"]), k
    assert (tmp_path / "b" / "weight_formats.png").read_bytes()[:4] == b"\x89PNG"    # written by a worker
    assert main(["--tiny", "--scheduler", "nowhere"]) == 2


def test_a_failed_job_is_a_section_error(tmp_path, monkeypatch):
    from sw.eval import section_jobs, tiny_context
    ctx = tiny_context(tmp_path)
    monkeypatch.setattr(section_jobs, "run_section_job", lambda spec, key: 1 / 0)
    s = section_jobs.run_sections(ctx, ["reference"], scheduler="serial", progress=False)
    assert s[0].data == {"error": "ZeroDivisionError: division by zero"} and s[0].key == "reference"


def test_set_overrides_a_sections_parameters(tmp_path, capsys):
    from sw.eval.__main__ import parse_overrides
    assert parse_overrides(["gptq.slices=1", 'gptq.formats=["int4"]', "qat.weight=int4"]) == {
        "gptq": {"slices": 1, "formats": ["int4"]}, "qat": {"weight": "int4"}}
    with pytest.raises(ValueError, match=r"^'gptq\.slices' is not SECTION\.KEY=VALUE$"):
        parse_overrides(["gptq.slices"])
    with pytest.raises(ValueError, match=r"^'nope\.x=1': unknown section 'nope'; known: reference, "):
        parse_overrides(["nope.x=1"])
    assert main(["--tiny", "--sections", "gptq", "--set", "gptq=1"]) == 2
    assert "--set: 'gptq=1' is not SECTION.KEY=VALUE" in capsys.readouterr().err
    args = ["--tiny", "--out", str(tmp_path), "--no-progress", "--sections", "gptq", "--set", "gptq.slices=1",
            "--set", 'gptq.formats=["int4"]', "--set", 'gptq.variants=["GPTQ act-order"]']
    assert main(args) == 0
    doc = json.loads((tmp_path / "eval.json").read_text())
    rows = doc["sections"]["gptq"]["tables"][0]["rows"]
    assert doc["environment"]["overrides"] == {"gptq": {"slices": 1, "formats": ["int4"],
                                                        "variants": ["GPTQ act-order"]}}
    assert ('Overrides (`--set`): `gptq.slices=1`, `gptq.formats=["int4"]`, `gptq.variants=["GPTQ act-order"]`.'
            in (tmp_path / "eval.md").read_text())
    assert [(r[0], r[1]) for r in rows] == [("int4", "RTN"), ("int4", "GPTQ act-order")]
    assert main(args[:-2] + ["--set", "gptq.bogus=1"]) == 1           # the section records the error
    doc = json.loads((tmp_path / "eval.json").read_text())
    assert "gptq section: unknown parameter(s) bogus; known: block, " in doc["sections"]["gptq"]["error"]
