"""A design the area reports and sweeps compare, as a set of components priced per row.

A :class:`Design` is priced *per row* (one output row of the engine: what one PE costs):
``per_row`` says how many of each component one row needs (a block shared by the R rows counts
``1/R``). ``macs_per_cycle`` is the steady-state throughput of one row per weight format. ``top``
builds the whole engine (for whole-design figures and FPGA place and route).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Design:
    name: str
    description: str
    components: dict[str, Callable[[], object]]      # component name -> builder of a fresh component
    per_row: dict[str, float]                        # component name -> count per row
    macs_per_cycle: dict[str, float]                 # weight format -> MACs/cycle of one row
    top: Callable[[], object] | None = None
    params: dict = field(default_factory=dict)
