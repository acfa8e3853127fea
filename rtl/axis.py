"""AXI4-Stream ports for a component with valid/ready streams (the engine's top).

:class:`AxisWrapper` instantiates the wrapped component and presents each of its
``amaranth.lib.stream`` members under the same name as an AXI4-Stream interface (AMBA
AXI4-Stream, ARM IHI 0051): an input stream becomes a subordinate (``In``) port, an output
stream a manager (``Out``) port. Every other member of the wrapped component is passed
through unchanged. The engine's streams (``cmd``, ``act``, ``wgt``, ``meta`` in, ``res`` out)
thus become ``<name>__tdata``, ``<name>__tvalid``, ``<name>__tready``, ``<name>__tlast``,
``<name>__tkeep`` in the Verilog.

Ports, per stream of payload width P (``B = ceil(P / 8)`` bytes):

* ``tdata``, ``8 B`` bits: the payload in bits ``P - 1 .. 0``, the pad bits above it are zero
  on outputs and ignored on inputs (the payload's byte 0 is byte lane 0, little-endian, as
  cocotbext-axi and most AXI4-Stream masters order frame bytes);
* ``tkeep``, ``B`` bits: all ones on outputs (every beat is whole); ignored on inputs, where a
  beat is always a whole payload;
* ``tlast``: on an output, 1 on every beat (a ``res`` beat is the R results of one tile);
  on an input it is accepted and ignored: the engine's command (``cmd``) carries K and
  the tile count, so a tile's ``act``/``wgt``/``meta`` beats need no delimiter. A source
  should set it on the last beat of each tile (what the testbench does);
* ``tvalid``, ``tready``: the stream's valid and ready.

Latency: 0 cycles (wires only; no register is added). Stalls: exactly the wrapped
component's: ``tready``/``tvalid`` are its ready/valid. Reset: none of its own (``clk``/``rst``
are the wrapped component's domain).

Constructor: ``AxisWrapper(inner)``: ``inner`` must be a ``wiring.Component`` with at least
one ``lib.stream`` member.
"""
from __future__ import annotations

from amaranth import Const, Module, Shape
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AxisSignature", "AxisWrapper", "stream_members"]


def AxisSignature(payload_bits: int) -> wiring.Signature:
    """The AXI4-Stream signature (manager view) for a payload of ``payload_bits`` bits."""
    if isinstance(payload_bits, bool) or not isinstance(payload_bits, int) or payload_bits < 1:
        raise ValueError(f"payload_bits must be a positive integer, not {payload_bits!r}")
    nbytes = (payload_bits + 7) // 8
    return wiring.Signature({
        "tdata": Out(8 * nbytes),
        "tkeep": Out(nbytes),
        "tlast": Out(1),
        "tvalid": Out(1),
        "tready": In(1),
    })


def stream_members(signature: wiring.Signature) -> dict[str, tuple[wiring.Flow, int]]:
    """``{name: (flow, payload_bits)}`` of the ``lib.stream`` members of ``signature``."""
    out = {}
    for name, member in signature.members.items():
        if member.is_signature and isinstance(member.signature, stream.Signature):
            out[name] = (member.flow, Shape.cast(member.signature.members["payload"].shape).width)
    return out


class AxisWrapper(wiring.Component):
    def __init__(self, inner):
        if not isinstance(inner, wiring.Component):
            raise TypeError(f"inner must be an amaranth.lib.wiring.Component, not {type(inner).__name__}")
        streams = stream_members(inner.signature)
        if not streams:
            raise ValueError("inner has no amaranth.lib.stream member to wrap")
        self.inner = inner
        self.streams = streams
        members = {}
        for name, member in inner.signature.members.items():
            if name in streams:
                flow, bits = streams[name]
                members[name] = In(AxisSignature(bits)) if flow == wiring.In else Out(AxisSignature(bits))
            else:
                members[name] = member
        super().__init__(wiring.Signature(members))

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self.inner
        for name, member in inner.signature.members.items():
            outer, port = getattr(self, name), getattr(inner, name)
            if name not in self.streams:
                if member.flow == wiring.In:
                    m.d.comb += port.eq(outer)
                else:
                    m.d.comb += outer.eq(port)
                continue
            flow, bits = self.streams[name]
            if flow == wiring.In:
                m.d.comb += [
                    port.payload.as_value().eq(outer.tdata[:bits]) if hasattr(port.payload, "as_value")
                    else port.payload.eq(outer.tdata[:bits]),
                    port.valid.eq(outer.tvalid),
                    outer.tready.eq(port.ready),
                ]
            else:
                payload = port.payload.as_value() if hasattr(port.payload, "as_value") else port.payload
                m.d.comb += [
                    outer.tdata.eq(payload),
                    outer.tvalid.eq(port.valid),
                    outer.tlast.eq(1),
                    outer.tkeep.eq(Const(-1, len(outer.tkeep))),
                    port.ready.eq(outer.tready),
                ]
        return m
