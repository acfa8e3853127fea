"""The engine's cycle model: cycles of a matrix-vector product, from the engine's shape alone.

One definition, read by the simulation report (its "model" column), the allocator's cost model
(``sw.eval.hwcost``) and the docs (``docs/engine.md``, "Timing"); a no-stall cocotb test holds the
RTL to it cycle for cycle. Cycles are counted from the cycle the first ``cmd`` beat moves (cycle 0)
to the cycle the last ``res`` beat moves, inclusive, with every stream always valid and ready.

A tile of ``R`` outputs streams ``K/L`` weight beats, each held for ``terms`` cycles
(``sw.terms.terms``): a group takes ``gc = G/L * terms`` cycles. ``K`` is padded up to a multiple
of ``G`` (the command carries ``n_groups = ceil(K/G)``). Event by event:

* a tile's command moves in the cycle after the previous tile's last step (cycle 0 for the
  first); its first step follows ``1 + fill`` cycles later (``fill``: 1 for the 6-bit formats,
  whose weight port first stores the block's ``seg2`` word; 0 otherwise);
* a group's last step (its hand-off to the shared rescale unit) comes ``gc`` cycles after the
  previous one, but at least ``rescale_cycles`` after the previous hand-off (the unit is busy),
  and a tile's first hand-off at least ``drain_cycles`` after the previous tile's last one (the
  accumulators are the result registers: the previous results must have left);
* the last results leave ``drain_cycles`` after the last hand-off.

With groups long enough (``gc >= rescale_cycles`` and ``gc + 1 + fill >= drain_cycles``, the
default engine for every format) this is

    cycles = ceil(out/R) * (ceil(in/G) * gc + 1 + fill) + drain_cycles

This module imports nothing but the standard library; ``gen.config.EngineConfig.shape`` gives the
shape of a configured engine, and :data:`DEFAULT` is the default config's (a test holds them equal).
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class EngineShape:
    """Rows ``R``, lanes ``L`` and group size ``G`` of an engine (``G`` a multiple of ``L``)."""
    rows: int = 4
    lanes: int = 8
    group_size: int = 128

    def __post_init__(self):
        for name in ("rows", "lanes", "group_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name}={v!r} must be a positive int")
        if self.group_size % self.lanes:
            raise ValueError(f"group_size={self.group_size} must be a multiple of lanes={self.lanes}")

    @property
    def steps_per_group(self) -> int:
        """Weight beats per group, ``G/L``."""
        return self.group_size // self.lanes

    @property
    def rescale_cycles(self) -> int:
        """Cycles between two group hand-offs to the shared rescale unit: one row per cycle and one
        to turn round (``R + 1``); with one row the unit also waits for its two-stage accumulation to
        see its own write (6). A group shorter than this stalls the PEs."""
        return self.rows + 1 if self.rows >= 2 else 6

    @property
    def drain_cycles(self) -> int:
        """Cycles from a tile's last hand-off until its results leave ``res`` (``R + 6``)."""
        return self.rows + 6

    def group_cycles(self, terms: int) -> int:
        """Cycles per group of a format with ``terms`` terms per weight (rescale stalls included)."""
        return max(self.steps_per_group * terms, self.rescale_cycles)

    def ideal_cycles(self, terms: int, outputs: int, k: int) -> int:
        """The PEs' busy cycles alone: ``ceil(outputs/R) * K/L * terms`` (the efficiency's denominator)."""
        return math.ceil(outputs / self.rows) * math.ceil(k / self.lanes) * terms

    def gemv_cycles(self, terms: int, outputs: int, k: int, fill: int = 0) -> int:
        """Cycles of an ``outputs x k`` matrix-vector product from the first command handshake to
        the last result beat, inclusive (the module docstring's events). ``fill``: the weight port's
        cycles before a tile's first beat (:func:`sw.weight_stream.fill_cycles`)."""
        for name, v in (("terms", terms), ("outputs", outputs), ("k", k)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name}={v!r} must be a positive int")
        if isinstance(fill, bool) or not isinstance(fill, int) or fill < 0:
            raise ValueError(f"fill={fill!r} must be a non-negative int")
        gc = self.steps_per_group * terms
        n_groups = math.ceil(k / self.group_size)
        tiles = math.ceil(outputs / self.rows)

        def tile(last):
            """The tile's last hand-off, given the previous tile's (None for the first)."""
            t = 0 if last is None else last + 1             # its command moves here
            t += fill
            for g in range(n_groups):
                t += gc
                if last is not None:
                    t = max(t, last + (self.drain_cycles if g == 0 else self.rescale_cycles))
                last = t
            return last
        first = tile(None)
        if tiles == 1:
            return first + self.drain_cycles + 1
        second = tile(first)                               # every later tile repeats the second's period
        return second + (tiles - 2) * (second - first) + self.drain_cycles + 1


#: The default engine's shape (4 rows x 8 lanes, G = 128).
DEFAULT = EngineShape()
