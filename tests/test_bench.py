"""sw.bench (structure of the report and its targets, never its timings) and sw.chunks."""
from __future__ import annotations

import pytest
import torch

from sw import bench, quantize
from sw.chunks import for_chunks


def test_bench_report_has_idle_and_loaded_runs_and_the_targets(monkeypatch):
    monkeypatch.setattr(bench, "CONFIGS", [("bitmod4 g128", "bitmod4", 128), ("int4 g128", "int4", 128)])
    rep = bench.run(rows=8, cols=256, repeat=1, load=True)
    assert [r["config"] for r in rep["results"]] == ["bitmod4 g128", "int4 g128"]
    r = rep["results"][0]
    assert r["slowdown"] == pytest.approx(r["loaded_median_s"] / r["median_s"])
    assert [t["target"] for t in bench.targets(rep)] == ["bitmod4 idle <= 1.0 s",
                                                         "bitmod4 under one competing process <= 2x idle"]
    md = bench.markdown(rep)
    assert "| config | bits/weight | best (s) | median (s) | Mweights/s | loaded median (s) | slowdown |" in md
    assert "| target | measured | met |" in md


def test_bench_targets_met_and_missed():
    rep = {"results": [{"format": "bitmod4", "median_s": 0.8, "slowdown": 2.5}]}
    assert [(t["value"], t["met"]) for t in bench.targets(rep)] == [(0.8, True), (2.5, False)]
    assert bench.targets({"results": [{"format": "int4", "median_s": 3.0}]}) == []


def test_for_chunks_covers_every_index_once_and_restores_torch_threads():
    before = torch.get_num_threads()
    seen = torch.zeros(1000, dtype=torch.int32)

    def fn(a, b):
        seen[a:b] += 1
    for_chunks(1000, 64, fn, threads=2)
    assert seen.tolist() == [1] * 1000
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="size=0 must be positive"):
        for_chunks(10, 0, fn)


def test_threaded_quantizer_equals_the_single_threaded_one():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(512, 1024, generator=g)
    a = quantize(w, "bitmod4", group_size=128)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        b = quantize(w, "bitmod4", group_size=128)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.scales, b.scales) and torch.equal(a.selectors, b.selectors)
