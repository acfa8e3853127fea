"""Work around Amaranth issue #1629 for event-driven simulators (Icarus).

Amaranth's Verilog puts ``if (\\$auto$verilog_backend...$N) begin end`` at the top of every
``always @*`` block so that one dummy register is in every sensitivity list; the register is
declared ``= 0`` but never changes, so Icarus never runs blocks whose real inputs stay
constant from time 0 (they stay X: e.g. a ``ready`` that depends only on a reset register).
:func:`kick` adds an ``initial`` that toggles the dummy register once at time 0, which runs
every such block once, as ``always_comb`` would. The logic is unchanged; synthesis and
Verilator do not need it.
"""
from __future__ import annotations

import re

_DECL = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+)\s+= 0;$", re.M)


def kick(verilog_text: str) -> str:
    return _DECL.sub(lambda m: f"{m.group(0)}\n{m.group(1)}initial #0 {m.group(2)}  = 1'h1;", verilog_text)
