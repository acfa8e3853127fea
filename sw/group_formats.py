"""The group-format registry: every format that fixes more than an element grid.

A *group format* names an element grid (or a set of them) together with how its groups are built:
BitMoD mixtures (one of four variants per group, a 2-bit selector), OCP MX (block 32, E8M0 scale)
and NVFP4 (block 16, E4M3 scale, fp32 tensor scale). Each format family declares its formats once,
in its own module (:mod:`sw.bitmod`, :mod:`sw.mx`, :mod:`sw.nvfp4`), with :func:`register`; every
consumer (``sw.quantize``, fake quantization, the learned quantizer, the hardware cost model, the
catalogue and the README table) reads this table and nothing else. Element formats have their own
registry, :mod:`sw.formats`; :func:`sw.quantize.format_spec` answers for both.

>>> import sw
>>> from sw import group_formats
>>> group_formats.get("mxfp4").block, group_formats.get("mxfp4").scale_format
(32, 'e8m0')
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .formats import ElementFormat

#: Keyword options a family's kernel may read (``sw.quantize``'s keyword arguments).
KERNEL_OPTIONS = ("mx_scale_rule", "tensor_scale")


@dataclass(frozen=True)
class GroupFormat:
    """One registered group format.

    Attributes
    ----------
    name: the format's name (``"bitmod4"``, ``"mxfp4"``, ...).
    family: ``"bitmod"``, ``"mx"`` or ``"nvfp4"``: the module that declared it.
    description: one line for the catalogue.
    variants: a callable giving the element format(s), in selector order (one unless BitMoD).
    kernel: ``kernel(x, fmt, group_size, axis, scale_format, rounding, options) -> QuantizedTensor``
        with ``x`` a checked float32 tensor and ``options`` a dict of :data:`KERNEL_OPTIONS`.
    block: the block size the format fixes (MX 32, NVFP4 16); ``None`` lets the caller choose the
        group size (default 128).
    scale_format: the scale format the format fixes (MX ``e8m0``, NVFP4 ``e4m3``); ``None`` lets
        the caller choose (default ``fp16``).
    selector_bits: metadata bits per group beside the scale (BitMoD's variant selector: 2).
    tensor_scale_bits: bits per tensor (NVFP4's fp32 tensor scale: 32).
    """
    name: str
    family: str
    description: str
    variants: Callable[[], tuple[ElementFormat, ...]] = field(repr=False)
    kernel: Callable = field(repr=False)
    block: int | None = None
    scale_format: str | None = None
    selector_bits: int = 0
    tensor_scale_bits: int = 0

    @property
    def element(self) -> ElementFormat:
        """The first (selector 0) element format."""
        return self.variants()[0]

    @property
    def bits(self) -> int:
        """Element bits."""
        return self.element.bits


_REGISTRY: dict[str, GroupFormat] = {}


def register(fmt: GroupFormat) -> GroupFormat:
    """Add ``fmt`` to the registry (a name may be registered once)."""
    if not isinstance(fmt, GroupFormat):
        raise TypeError(f"fmt must be a GroupFormat, not {type(fmt).__name__}")
    if fmt.name in _REGISTRY:
        raise ValueError(f"group format {fmt.name!r} is already registered")
    _REGISTRY[fmt.name] = fmt
    return fmt


def names(family: str | None = None) -> list[str]:
    """Registered group-format names in declaration order (``family`` filters)."""
    return [n for n, f in _REGISTRY.items() if family is None or f.family == family]


def find(name) -> GroupFormat | None:
    """The group format called ``name``, or ``None`` (an element format, or unknown)."""
    return _REGISTRY.get(name) if isinstance(name, str) else None


def get(name: str) -> GroupFormat:
    """The group format called ``name``; an error lists the registered ones."""
    fmt = find(name)
    if fmt is None:
        raise ValueError(f"unknown group format {name!r}; group formats: {', '.join(names())}")
    return fmt
