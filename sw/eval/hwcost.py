"""Hardware cost model of a weight format on the bitmix engine, derived from the project itself.

Nothing here is a hand-written table:

* **bits per weight** (storage, metadata included) is the exact formula of
  :attr:`sw.QuantizedTensor.bits_per_weight` -- element bits + scale bits per group + zero point
  per group (asymmetric INT) + the 2-bit BitMoD selector per group (+ NVFP4's fp32 tensor scale
  per tensor); :func:`probe_bits` measures the same number with ``sw.quantize`` on a probe tensor
  and the tests hold the two equal;
* **cycles** follow the engine's cycle model (``docs/engine.md``, "Cycle model"): a tile of ``R``
  outputs streams ``K/L`` weight beats, each held for ``terms(fmt)`` cycles (``sw.terms.terms``),
  plus one cycle to take the next command. The command carries ``n_groups = K/G``, so ``K`` is
  padded up to a multiple of the engine's group size ``G`` (padded codes are zero). The shared
  rescale unit is busy ``cfg.rescale_cycles`` (``R + 2``) per group; when a group's
  ``G/L * terms`` is shorter the PEs wait at each group end (``gen`` warns about such configs;
  never the case for the default 4x8, G=128 engine). The last tile's results reach ``res``
  ``R + 6`` cycles after its last step (the drain, once per layer). So a layer of ``out x in``
  weights takes ``ceil(out/R) * (ceil(in/G) * max(G/L * terms, rescale) + 1) + R + 6`` cycles.
  ``R``, ``L``, ``G`` come from :mod:`gen.config`'s default config unless a config is given;
* **area** of the engine is read from ``build/reports/area.json`` (``python -m gen area``): per-row
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

from gen import config as gen_config
from sw import formats as F
from sw import terms as T
from sw.quantize import quantize

#: Pseudo-format "keep the layer in floating point" (stored as fp16; not run on the engine).
KEEP_FLOAT = "fp16"
KEEP_FLOAT_BITS = 16.0
AREA_JSON = Path("build/reports/area.json")

_GROUP_FORMATS = {"bitmod3": "fp3", "bitmod4": "fp4"}          # BitMoD: 2-bit selector per group
_BLOCK_FORMATS = {"mxfp4": (32, "e8m0", 0), "mxfp6_e2m3": (32, "e8m0", 0), "mxfp6_e3m2": (32, "e8m0", 0),
                  "mxfp8_e4m3": (32, "e8m0", 0), "mxint8": (32, "e8m0", 0), "nvfp4": (16, "e4m3", 32)}


def default_config() -> gen_config.EngineConfig:
    """The engine config the cost model uses by default (``gen.config.load()``: 4 rows x 8 lanes, G=128)."""
    return gen_config.load()


def is_engine_format(fmt: str) -> bool:
    """True when the engine has a decoder for ``fmt`` (``sw.terms.HW_FORMATS``)."""
    return fmt in T.HW_FORMATS


def _element_bits(fmt: str) -> int:
    if fmt in _GROUP_FORMATS:
        return F.bitmod_variants(_GROUP_FORMATS[fmt])[0].bits
    if fmt in _BLOCK_FORMATS:
        from sw.quantize import variants_for
        return variants_for(fmt)[0].bits
    try:
        return F.get(fmt).bits
    except ValueError:
        raise ValueError(f"fmt={fmt!r} is not a weight format; known: {', '.join(F.names())}, "
                         f"{', '.join(_GROUP_FORMATS)}, {', '.join(_BLOCK_FORMATS)}, {KEEP_FLOAT!r}") from None


def bits_per_weight(fmt: str, group_size: int | None = 128, scale_format: str | None = None,
                    in_features: int | None = None, numel: int | None = None) -> float:
    """Exact storage bits per weight of ``fmt`` with metadata, as ``sw.quantize(...).bits_per_weight``.

    ``group_size=None`` means one group per output channel and needs ``in_features``. MX/NVFP4 use
    their fixed block and scale format (``group_size``/``scale_format`` are ignored for them); NVFP4's
    fp32 tensor scale adds ``32/numel`` when ``numel`` is given. ``fp16`` (keep float) is 16 bits.
    """
    if fmt == KEEP_FLOAT:
        return KEEP_FLOAT_BITS
    elem = _element_bits(fmt)
    if fmt in _BLOCK_FORMATS:
        block, sf, tensor_bits = _BLOCK_FORMATS[fmt]
        return elem + F.get_scale_format(sf).bits / block + (tensor_bits / numel if numel else 0.0)
    g = group_size if group_size is not None else in_features
    if isinstance(g, bool) or not isinstance(g, int) or g <= 0:
        raise ValueError(f"group_size={group_size!r} must be a positive int (or None with in_features given)")
    meta = F.get_scale_format(scale_format or "fp16").bits
    if fmt in _GROUP_FORMATS:
        meta += 2                                   # BitMoD variant selector
    elif isinstance(F.get(fmt), F.AsymmetricInt):
        meta += elem                                # integer zero point
    return elem + meta / g


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
    g = _BLOCK_FORMATS[fmt][0] if fmt in _BLOCK_FORMATS else (in_features if group_size is None else group_size)
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
    kw = {} if fmt in _BLOCK_FORMATS else {"group_size": group_size, "scale_format": scale_format}
    return float(quantize(w, fmt, **kw).bits_per_weight)


def terms(fmt: str) -> int | None:
    """Cycles per weight beat (``sw.terms.terms``) for an engine format, ``None`` otherwise."""
    return T.terms(fmt) if is_engine_format(fmt) else None


def drain_cycles(cfg: gen_config.EngineConfig | None = None) -> int:
    """Cycles from the last step of a layer until its last results leave ``res`` (``R + 6``,
    docs/engine.md's cycle model)."""
    return (cfg or default_config()).rows + 6


def layer_cycles(fmt: str, out_features: int, in_features: int,
                 cfg: gen_config.EngineConfig | None = None) -> int | None:
    """Engine cycles of one ``out x in`` matrix-vector product in ``fmt`` (``None``: not runnable).

    ``ceil(out/R) * (n_groups * max(G/L * terms, cfg.rescale_cycles) + 1) + drain``,
    ``n_groups = ceil(in/G)`` (see the module docstring). For the default engine this is
    ``ceil(out/4) * (ceil(in/128) * 16 * terms + 1) + 10``.
    """
    for name, v in (("out_features", out_features), ("in_features", in_features)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name}={v!r} must be a positive int")
    t = terms(fmt)
    if t is None:
        return None
    cfg = cfg or default_config()
    group = max(cfg.steps_per_group * t, cfg.rescale_cycles)
    tiles = math.ceil(out_features / cfg.rows)
    return tiles * (math.ceil(in_features / cfg.group_size) * group + 1) + drain_cycles(cfg)


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
    rows = int(doc.get("config", {}).get("rows", default_config().rows))
    return {"bitmix_ge_per_row": mix_ge, "int4_only_ge_per_row": int4_ge, "ratio": mix_ge / int4_ge,
            "rows": rows, "engine_ge": mix_ge * rows, "int4_only_engine_ge": int4_ge * rows,
            "generated": doc.get("generated")}
