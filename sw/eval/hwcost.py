"""Hardware cost model of a weight format on the bitmix engine, derived from the project itself.

Nothing here is a hand-written table:

* **bits per weight** (storage, metadata included) is :meth:`sw.quantize.FormatSpec.bits_per_weight`,
  read from the format registries: element bits + scale bits per group + zero point per group
  (asymmetric INT) + the BitMoD selector per group (+ NVFP4's fp32 tensor scale per tensor);
  :func:`probe_bits` measures the same number with ``sw.quantize`` on a probe tensor and the tests
  hold the two equal;
* **cycles** follow the engine's cycle model, :mod:`sw.cycles` (``terms(fmt)`` cycles per weight
  beat from ``sw.terms``); ``R``, ``L``, ``G`` come from :data:`sw.cycles.DEFAULT` (the default
  engine's shape) unless a shape is given (``gen.config.EngineConfig.shape`` for another config);
* **area** of the engine is read from ``build/reports/area.json`` (``bitmix area``): per-row
  GE of the ``bitmix`` design and of the ``bitmix_int4_only`` one; ``None`` when the report is absent.

Formats the engine cannot run (``nvfp4``, ``mxfp4``, ``fp8_e4m3``, and ``fp16`` meaning "keep the
layer in floating point") get bits but ``cycles = None``; a cycle-budgeted allocation excludes them.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from sw import terms as T
from sw.cycles import DEFAULT, EngineShape
from sw.quantize import format_spec, quantize
from sw.weight_stream import fill_cycles

#: Pseudo-format "keep the layer in floating point" (stored as fp16; not run on the engine).
KEEP_FLOAT = "fp16"
KEEP_FLOAT_BITS = 16.0
AREA_JSON = Path("build/reports/area.json")


def default_shape() -> EngineShape:
    """The engine shape the cost model uses by default (:data:`sw.cycles.DEFAULT`: 4 rows x 8 lanes, G=128)."""
    return DEFAULT


def is_engine_format(fmt: str) -> bool:
    """True when the engine has a decoder for ``fmt`` (``sw.terms.HW_FORMATS``)."""
    return fmt in T.HW_FORMATS


def _spec(fmt: str):
    try:
        return format_spec(fmt)
    except (ValueError, TypeError) as e:
        raise ValueError(f"fmt={fmt!r} is not a weight format ({e}); or {KEEP_FLOAT!r} to keep float") from None


def _element_bits(fmt: str) -> int:
    return _spec(fmt).bits


def bits_per_weight(fmt: str, group_size: int | None = 128, scale_format: str | None = None,
                    in_features: int | None = None, numel: int | None = None) -> float:
    """Exact storage bits per weight of ``fmt`` with metadata, as ``sw.quantize(...).bits_per_weight``.

    ``group_size=None`` means one group per output channel and needs ``in_features``. MX/NVFP4 use
    their fixed block and scale format (``group_size``/``scale_format`` are ignored for them); NVFP4's
    fp32 tensor scale adds ``32/numel`` when ``numel`` is given. ``fp16`` (keep float) is 16 bits.
    """
    if fmt == KEEP_FLOAT:
        return KEEP_FLOAT_BITS
    return _spec(fmt).bits_per_weight(group_size, scale_format, in_features=in_features, numel=numel)


def layer_bits_per_weight(fmt: str, out_features: int, in_features: int, group_size: int | None = 128,
                          scale_format: str | None = None) -> float:
    """Bits per weight of an ``out x in`` layer as stored by ``hooks.quantize_weight``.

    When the group (or the MX/NVFP4 block) does not divide ``in_features`` the last group is partial:
    ``in`` is zero-padded to ``in_p = ceil(in/g)*g``, so the metadata of every group is spread over the
    real weights, ``el + (bpw(in_p) - el) * out*in_p / (out*in)`` -- the same arithmetic as
    ``fakequant.quantize_dequant``. Equals :func:`bits_per_weight` when the group divides ``in``.
    """
    if fmt == KEEP_FLOAT:
        return KEEP_FLOAT_BITS
    block = _spec(fmt).block
    g = block if block is not None else (in_features if group_size is None else group_size)
    in_p = math.ceil(in_features / g) * g
    bpw = bits_per_weight(fmt, g, scale_format, numel=out_features * in_p)
    if in_p != in_features:
        el = _element_bits(fmt)
        bpw = el + (bpw - el) * (out_features * in_p) / (out_features * in_features)
    return bpw


def probe_bits(fmt: str, group_size: int | None = 128, scale_format: str | None = None,
               shape: tuple[int, int] = (4, 256)) -> float:
    """``sw.quantize(probe, fmt, ...).bits_per_weight`` on a seeded random ``shape`` probe tensor."""
    if fmt == KEEP_FLOAT:
        return KEEP_FLOAT_BITS
    w = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    kw = {} if _spec(fmt).block is not None else {"group_size": group_size, "scale_format": scale_format}
    return float(quantize(w, fmt, **kw).bits_per_weight)


def terms(fmt: str) -> int | None:
    """Cycles per weight beat (``sw.terms.terms``) for an engine format, ``None`` otherwise."""
    return T.terms(fmt) if is_engine_format(fmt) else None


def drain_cycles(shape: EngineShape | None = None) -> int:
    """Cycles from the last step of a layer until its last results leave ``res`` (:mod:`sw.cycles`)."""
    return (shape or DEFAULT).drain_cycles


def layer_cycles(fmt: str, out_features: int, in_features: int,
                 shape: EngineShape | None = None) -> int | None:
    """Engine cycles of one ``out x in`` matrix-vector product in ``fmt`` (``None``: not runnable),
    :meth:`sw.cycles.EngineShape.gemv_cycles` of the default engine unless ``shape`` is given."""
    for name, v in (("out_features", out_features), ("in_features", in_features)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name}={v!r} must be a positive int")
    t = terms(fmt)
    if t is None:
        return None
    return (shape or DEFAULT).gemv_cycles(t, out_features, in_features, fill=fill_cycles(fmt))


@dataclass(frozen=True)
class FormatCost:
    """One format's cost: bits per weight (metadata included), terms (cycles per beat) or None."""
    fmt: str
    bits: float
    terms: int | None
    engine: bool


def format_costs(formats: list[str] | tuple[str, ...], group_size: int | None = 128,
                 scale_format: str | None = None) -> list[FormatCost]:
    """:class:`FormatCost` of every format, in order."""
    return [FormatCost(f, bits_per_weight(f, group_size, scale_format), terms(f), is_engine_format(f))
            for f in formats]


def engine_area(path: Path | str = AREA_JSON) -> dict | None:
    """Per-row GE of the ``bitmix`` engine and the ``bitmix_int4_only`` one from ``area.json``.

    Returns ``{"bitmix_ge_per_row", "int4_only_ge_per_row", "ratio", "rows", "engine_ge",
    "int4_only_engine_ge", "generated"}``, or ``None`` when the report (or a design) is missing.
    """
    p = Path(path)
    if not p.is_file():
        return None
    doc = json.loads(p.read_text())
    designs = {d.get("name"): d for d in doc.get("designs", [])}
    try:
        mix, int4 = designs["bitmix"], designs["bitmix_int4_only"]
        mix_ge, int4_ge = float(mix["row"]["ge"]), float(int4["row"]["ge"])
    except (KeyError, TypeError, ValueError):
        return None
    rows = int(doc.get("config", {}).get("rows", DEFAULT.rows))
    return {"bitmix_ge_per_row": mix_ge, "int4_only_ge_per_row": int4_ge, "ratio": mix_ge / int4_ge,
            "rows": rows, "engine_ge": mix_ge * rows, "int4_only_engine_ge": int4_ge * rows,
            "generated": doc.get("generated")}
