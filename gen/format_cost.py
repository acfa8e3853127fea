"""What each weight format costs in silicon: the bitmix row priced again with formats left out.

For the config's format set ``S`` and each leave-out set ``X`` (one format; every format of a kind:
INT, asymmetric INT, FP, BitMoD; every format of one code width), the components whose logic
depends on the weight formats (the PE with its term decoders, the rescale unit, whose zero-point
and sum widths follow the formats, and the weight port) are built for ``S - X`` and synthesised
on the GE flow only. The row saving of ``X`` is the row's GE with ``S`` minus the row's GE with
``S - X``, each component counted per row as in the design (the rescale unit and the weight port
at ``1/R``). A saving is what dropping ``X`` would buy, not ``X``'s share of the row: logic two
formats need (BitMoD4's lane shift of 4 also serves FP4) is saved only when both go.

The activation front end does not depend on the weight formats and is left out. The leave-out
sets come from :mod:`sw.terms` (the formats' kinds and code widths), never from a list here.
"""
from __future__ import annotations

import dataclasses

from sw import terms as T

__all__ = ["COMPONENTS", "KINDS", "kind", "leave_out_sets", "variant_components", "savings", "measure"]

#: The row components whose logic depends on the weight formats.
COMPONENTS = ("pe", "rescale_unit", "weight_port")

#: Kinds of weight format, in report order.
KINDS = ("INT", "INT asym", "FP", "BitMoD")


def kind(fmt: str) -> str:
    """The kind of a hardware weight format: ``"BitMoD"``, ``"INT asym"``, ``"INT"`` or ``"FP"``."""
    T.check_hw_format(fmt)
    if fmt in T.BITMOD:
        return "BitMoD"
    if T.is_booth(fmt):
        return "INT asym" if T.is_asym(fmt) else "INT"
    return "FP"


def leave_out_sets(formats) -> list[tuple[str, tuple[str, ...]]]:
    """``(label, formats left out)`` for every format, every kind with more than one format and
    every code width with more than one format in ``formats``, never the whole set."""
    formats = tuple(formats)
    out: list[tuple[str, tuple[str, ...]]] = [(f, (f,)) for f in formats] if len(formats) > 1 else []
    groups = [(f"all {k}", tuple(f for f in formats if kind(f) == k)) for k in KINDS]
    widths = sorted({T.code_bits(f) for f in formats})
    groups += [(f"all {b}-bit", tuple(f for f in formats if T.code_bits(f) == b)) for b in widths]
    seen = {x for _, x in out}
    for label, x in groups:
        if 1 < len(x) < len(formats) and x not in seen:
            out.append((label, x))
            seen.add(x)
    return out


def variant_components(cfg, design) -> dict[str, dict]:
    """``{label: {"formats": left out, "components": {component: builder}}}``: the bitmix ``design``'s
    format-dependent components built from ``cfg`` without each leave-out set (labels of
    :func:`leave_out_sets`). Leaving formats out only relaxes the config's rules, so every remainder
    is a legal config.
    The rescale unit depends on the formats only through its widths (:func:`rescale_params`); where
    they are unchanged it is listed under ``"same"`` instead (its saving is 0 by construction)."""
    from .designs import engine_design
    out = {}
    for label, x in leave_out_sets(cfg.formats):
        sub = dataclasses.replace(cfg, formats=tuple(f for f in cfg.formats if f not in x))
        comps = engine_design(sub, design.name, "").components
        same = ("rescale_unit",) if rescale_params(sub) == rescale_params(cfg) else ()
        out[label] = {"formats": x, "same": same,
                      "components": {c: comps[c] for c in COMPONENTS if c in comps and c not in same}}
    return out


def rescale_params(cfg) -> tuple:
    """What the rescale unit is built from besides the rows and scale formats: the group sum, activation
    sum and zero-point widths."""
    from rtl.engine import sum_bits, zpc_bits
    return (cfg.psum_width, sum_bits(cfg), zpc_bits(cfg))


def savings(per_row: dict, full: dict, variants: dict) -> list[dict]:
    """Rows of the format-cost table.

    ``per_row``: the design's per-row counts; ``full``: ``{component: GE}`` with the whole set;
    ``variants``: ``{label: {"formats": left out, "ge": {component: GE or None}, "same": components
    built exactly as with the whole set}}``. A row: ``label``, ``formats`` (left out), ``row_ge`` (the
    row's GE of :data:`COMPONENTS` without them), ``saved`` (GE per row) and ``by_component`` (GE per
    row saved in each), or ``error`` when a run gave no figure."""
    base = {c: full.get(c) for c in COMPONENTS if c in per_row}
    out = []
    for label, x in variants.items():
        ge = {**x["ge"], **{c: base.get(c) for c in x.get("same", ())}}
        row = {"label": label, "formats": list(x["formats"])}
        if any(v is None for v in base.values()) or any(ge.get(c) is None for c in base):
            row["error"] = "no GE figure (see area.json)"
        else:
            by = {c: per_row[c] * (base[c] - ge[c]) for c in base}
            row.update(row_ge=sum(per_row[c] * ge[c] for c in base), saved=sum(by.values()), by_component=by)
        out.append(row)
    return out


def measure(cfg, design_name: str, label: str, left_out, component: str, directory, cache, timeout) -> dict:
    """Emit ``component`` of the design built from ``cfg`` without ``left_out`` and synthesise it on
    the GE flow (through ``cache``); a job-engine task (module level, picklable). The result is the
    :func:`gen.area.asic_metrics` dict, or ``{"error": ...}``."""
    import re

    from . import area as A
    from .cache import cached
    from .designs import engine_design
    rest = tuple(f for f in cfg.formats if f not in set(left_out))
    sub = dataclasses.replace(cfg, formats=rest)
    name = re.sub(r"\W", "_", f"{design_name}_{component}_without_{label}")
    path = A.emit_component(engine_design(sub, design_name, "").components[component](), name, directory)
    parts = ("generic", "ge")
    return cached(cache, path, name, "asic", {"parts": list(parts)},
                  lambda: A.asic_metrics(path, name, parts, timeout=timeout), timeout=timeout)
