"""The format registry: the single source of truth for every element format.

>>> from sw import formats
>>> formats.names()[:3]
['int3', 'int4', 'int6']
>>> f = formats.get("fp4_e2m1"); f.bits, f.max
(4, 6.0)

Any ExMy minifloat is constructible by name (``get("fp5_e3m1")``) or with
:class:`MiniFloat`. RTL decoders, testbenches and reports take their tables from here.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable

from .element import ROUNDINGS, UNUSED, ElementFormat, check_rounding
from .integer import AsymmetricInt, SymmetricInt
from .minifloat import MiniFloat
from .scale import SCALE_FORMATS, ScaleFormat, e8m0, get_scale_format
from .special import SPECIAL_VALUES, VARIANT_ORDER, BitmodVariant, flint4

__all__ = ["names", "get", "scale_names", "get_scale_format", "ElementFormat", "MiniFloat", "SymmetricInt",
           "AsymmetricInt", "BitmodVariant", "ScaleFormat", "ROUNDINGS", "UNUSED", "VARIANT_ORDER",
           "SPECIAL_VALUES", "check_rounding", "bitmod_variants"]


def _fp3() -> MiniFloat:
    return MiniFloat(2, 0, name="fp3", description="{0,±1,±2,±4}: E2M0, bias 1, no specials")


_BUILDERS: dict[str, Callable[[], ElementFormat]] = {
    "int3": lambda: SymmetricInt(3),
    "int4": lambda: SymmetricInt(4),
    "int6": lambda: SymmetricInt(6),
    "int8": lambda: SymmetricInt(8),
    "int3_asym": lambda: AsymmetricInt(3),
    "int4_asym": lambda: AsymmetricInt(4),
    "fp3": _fp3,
    "fp4_e2m1": lambda: MiniFloat(2, 1),
    "fp5_e2m2": lambda: MiniFloat(2, 2),
    "fp6_e2m3": lambda: MiniFloat(2, 3),
    "fp6_e3m2": lambda: MiniFloat(3, 2),
    "fp8_e4m3": lambda: MiniFloat(4, 3),
    "fp8_e5m2": lambda: MiniFloat(5, 2),
    "flint4": flint4,
}
for _family, _base in (("fp4", "fp4_e2m1"), ("fp3", "fp3")):
    for _v in VARIANT_ORDER:
        _BUILDERS[f"{_family}_{_v}"] = (lambda b=_base, f=_family, v=_v: BitmodVariant(get(b), f, v))
_BUILDERS["e8m0"] = e8m0

_EXMY = re.compile(r"^fp(\d)_e(\d)m(\d)$")


def names(kind: str | None = None) -> list[str]:
    """Registered element-format names (``kind`` filters: int, fp, lut, scale).

    Without ``kind`` the scale-only ``e8m0`` is left out.
    """
    out = [n for n in _BUILDERS if n != "e8m0"] if kind is None else [n for n in _BUILDERS if get(n).kind == kind]
    return out


def scale_names() -> list[str]:
    return list(SCALE_FORMATS)


@lru_cache(maxsize=None)
def get(name: str) -> ElementFormat:
    """The element format called ``name``; any ``fpN_eXmY`` minifloat is built on demand."""
    if isinstance(name, ElementFormat):
        return name
    if name in _BUILDERS:
        return _BUILDERS[name]()
    m = _EXMY.match(name) if isinstance(name, str) else None
    if m:
        bits, e, mant = (int(g) for g in m.groups())
        if bits != 1 + e + mant:
            raise ValueError(f"format {name!r}: fp{bits} cannot have e{e}m{mant} (1 + {e} + {mant} != {bits})")
        return MiniFloat(e, mant)
    raise ValueError(f"unknown format {name!r}; known element formats: {', '.join(names())}; "
                     f"any ExMy minifloat as 'fpN_eXmY'")


def bitmod_variants(family: str) -> list[BitmodVariant]:
    """The four variants of ``family`` ('fp4' or 'fp3') in selector order."""
    if family not in SPECIAL_VALUES:
        raise ValueError(f"BitMoD family {family!r}; choose fp4 or fp3")
    return [get(f"{family}_{v}") for v in VARIANT_ORDER]
