"""A design the area reports and sweeps compare, as a set of components priced per row.

A :class:`Design` is priced *per row* (one output row of the engine: what one PE costs):
``per_row`` says how many of each component one row needs (a block shared by the R rows counts
``1/R``). ``macs_per_cycle`` is the steady-state throughput of one row per weight format. ``top``
builds the whole engine (for whole-design figures and FPGA place and route).

``fpga_proxy`` prices a component on ECP5 through another: ``{"pe": ("lane", 8)}`` takes the
``pe``'s LUT, flip-flop and carry counts as 8 times the ``lane``'s and its Fmax as the ``lane``'s,
for a component that is that many copies of the other plus glue the proxy leaves out (the
report says which). Its GE and every ASIC figure are still its own.
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
    fpga_proxy: dict[str, tuple[str, float]] = field(default_factory=dict)
