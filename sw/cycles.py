"""The engine's cycle model: cycles of a matrix-vector product, from the engine's shape alone.

One definition, read by the simulation report's "ideal", the allocator's cost model
(``sw.eval.hwcost``) and the docs (``docs/engine.md``, "Cycle model"); a no-stall cocotb test holds
the RTL to it. A tile of ``R`` outputs streams ``K/L`` weight beats, each held for ``terms`` cycles
(``sw.terms.terms``), plus one cycle to take the next command. ``K`` is padded up to a multiple of
``G`` (the command carries ``n_groups = ceil(K/G)``). The shared rescale unit is busy
``rescale_cycles`` per group; a group shorter than that makes the PEs wait at its end. The last
tile's results leave ``drain_cycles`` after its last step, once per layer.

    cycles = ceil(out/R) * (ceil(in/G) * max(G/L * terms, rescale_cycles) + 1) + drain_cycles

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
        """Cycles from a group's last PE step until the shared rescale unit takes the next group:
        the hand-off cycle, one row per cycle, one to turn round (``R + 2``); with one row the unit
        also waits for its pipeline to drain (7). A group shorter than this stalls the PEs."""
        return self.rows + 2 if self.rows >= 2 else 7

    @property
    def drain_cycles(self) -> int:
        """Cycles from a layer's last step until its last results leave ``res`` (``R + 6``)."""
        return self.rows + 6

    def group_cycles(self, terms: int) -> int:
        """Cycles per group of a format with ``terms`` terms per weight (rescale stalls included)."""
        return max(self.steps_per_group * terms, self.rescale_cycles)

    def ideal_cycles(self, terms: int, outputs: int, k: int) -> int:
        """The PEs' busy cycles alone: ``ceil(outputs/R) * K/L * terms`` (the efficiency's denominator)."""
        return math.ceil(outputs / self.rows) * math.ceil(k / self.lanes) * terms

    def gemv_cycles(self, terms: int, outputs: int, k: int) -> int:
        """Cycles of an ``outputs x k`` matrix-vector product from the first command handshake to
        the last result beat (see the module docstring)."""
        for name, v in (("terms", terms), ("outputs", outputs), ("k", k)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name}={v!r} must be a positive int")
        tiles = math.ceil(outputs / self.rows)
        return tiles * (math.ceil(k / self.group_size) * self.group_cycles(terms) + 1) + self.drain_cycles


#: The default engine's shape (4 rows x 8 lanes, G = 128).
DEFAULT = EngineShape()
