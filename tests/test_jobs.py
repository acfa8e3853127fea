"""The job engine (sw.jobs): order, names, retries, failures by name, serial and Dask alike."""
from __future__ import annotations

import os

import pytest

from sw import jobs as J

CALLS: list[str] = []


def square(x):
    return x * x


def flaky(path):
    """Fails the first time it runs (marker file absent), succeeds the second."""
    if not os.path.exists(path):
        open(path, "w").close()
        raise RuntimeError("first attempt fails")
    return "second attempt"


def always_fails():
    raise ValueError("bad input 7")


def dies():
    os._exit(3)          # the worker process dies


def test_serial_runs_in_order_and_returns_by_name():
    jobs = [J.Job(f"sq{i}", square, (i,), weight=i) for i in range(5)]
    assert J.run(jobs, scheduler="serial", progress=False) == {f"sq{i}": i * i for i in range(5)}


def test_serial_retries_once_then_reports_by_name(tmp_path):
    out = J.run([J.Job("flaky", flaky, (str(tmp_path / "m"),)), J.Job("bad", always_fails),
                 J.Job("ok", square, (3,))], scheduler="serial", progress=False)
    assert out == {"flaky": "second attempt", "bad": {"error": "ValueError: bad input 7"}, "ok": 9}


def test_bad_arguments_name_the_parameter(monkeypatch):
    with pytest.raises(ValueError, match=r"^job names must be unique; repeated: a$"):
        J.run([J.Job("a", square, (1,)), J.Job("a", square, (2,))], scheduler="serial")
    with pytest.raises(ValueError, match=r"^scheduler='cluster': use 'serial', 'local' or a Dask scheduler address"):
        J.run([], scheduler="cluster")
    with pytest.raises(ValueError, match=r"^workers=0 must be a positive integer$"):
        J.run([], scheduler="serial", workers=0)
    monkeypatch.setenv(J.SCHEDULER_ENV, "tcp://10.1.2.3:8786")
    assert J.scheduler_from(None) == "tcp://10.1.2.3:8786" and J.scheduler_from("serial") == "serial"
    monkeypatch.delenv(J.SCHEDULER_ENV)
    assert J.scheduler_from(None) == "local"


@pytest.mark.slow
def test_local_cluster_equals_serial_and_reports_failures(tmp_path):
    jobs = [J.Job(f"sq{i}", square, (i,)) for i in range(6)]
    jobs += [J.Job("flaky", flaky, (str(tmp_path / "m"),)), J.Job("bad", always_fails)]
    out = J.run(jobs, scheduler="local", workers=2, progress=False)
    assert list(out) == [j.name for j in jobs]
    assert out == {**{f"sq{i}": i * i for i in range(6)}, "flaky": "second attempt",
                   "bad": {"error": "ValueError: bad input 7"}}
    # a job that kills its worker every time ends as KilledWorker under its name
    out = J.run([J.Job("dies", dies)], scheduler="local", workers=1, progress=False)
    assert out["dies"]["error"].startswith("KilledWorker: Attempted to run task 'dies")


# --------------------------------------------------------------------------- bitmix sim on the job engine
def test_sim_runs_are_named_jobs_and_a_failed_run_is_reported_by_name(monkeypatch, tmp_path):
    from gen.config import load
    from verif import sim

    cfg = load()
    jobs = sim.suite_jobs(cfg, "icarus", tmp_path, quick=True, waves=False)
    assert [j.name for j in jobs] == ["icarus/gemv", "icarus/int8", "icarus/throughput"]
    assert [j.args for j in jobs] == [(cfg, "icarus", tmp_path, p) for p in ("gemv", "int8", "throughput")]
    assert [j.kwargs for j in jobs] == [{"quick": True, "waves": False}] * 3

    def fake_run_part(cfg, simulator, root, part, quick=False, waves=True):
        if part == "int8":
            raise RuntimeError("simulator crashed")
        return [{"name": f"int4/fp16/{part}", "cycles": 200, "ideal": 100, "model": 200, "mismatches": 0,
                 "beats": 1, "violations": 0}]

    monkeypatch.setattr(sim, "run_part", fake_run_part)
    res = sim.suite(cfg, ["icarus"], tmp_path, quick=True, waves=False, scheduler="serial")
    assert res["icarus"]["failed"] == ["icarus/int8: RuntimeError: simulator crashed"]
    assert res["icarus"]["int8"] == []
    assert [r["efficiency"] for r in res["icarus"]["throughput"]] == [0.5]
    assert "**FAILED** icarus/int8: RuntimeError: simulator crashed" in sim.markdown(cfg, res)
