"""Per-group rescale and output accumulation of one row."""
from __future__ import annotations

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sw.datapath import SCALE_SIG_BITS

from .fp32 import Fp32Adder, ScaledIntToFp32

#: (exponent field position, exponent width, fraction width, exponent offset) per scale format.
SCALE_FIELDS = {"fp16": (10, 5, 10, -25), "bf16": (7, 8, 7, -134)}


class Rescaler(wiring.Component):
    """Zero-point correction, bit-serial scale multiply, fp32 conversion and accumulation.

    For each group (``start`` while ``ready``) it computes, as ``sw.datapath`` steps 3-6:
    ``Pc = psum - zpc * sum_a``; ``Q = Pc * sig_s`` one scale-significand bit per cycle
    (LSB first: 11 cycles for fp16, 8 for bf16, 1 for e8m0); ``E = ea + es - unit``;
    ``acc = fp32_add(acc, fp32_RNE(Q * 2^E))``. After the group flagged ``last`` the row's
    result is offered on ``result`` with ``done`` high, as soon as ``res_free`` is high; then
    ``acc`` restarts at +0.0.

    Ports
    -----
    start : In(1)           load a group (ignored unless ``ready``)
    psum : In(signed(psum_bits)), sum_a : In(signed(sum_bits)), zpc : In(signed(zpc_bits))
        group partial sum, the group's activation sum, zero-point offset ``z - 2^(b-1)``
        (0 for symmetric formats)
    scale : In(16)          raw scale bits (fp16/bf16; e8m0 in bits [7:0])
    scale_fmt : In          index into ``scale_formats``
    ea : In(signed(8)), unit : In(4)   activation block exponent, format unit exponent ``u``
    last : In(1)            the group is the last of its output
    res_free : In(1)        the result register of the top can take a result
    ready : Out(1)          idle: ``start`` is accepted this cycle
    done : Out(1), result : Out(32)    a row result (fp32 bits), valid while ``done``

    Timing: a group occupies the unit for ``1 + sig_bits + 1`` cycles (+1 for a last group),
    which the engine overlaps with the next group's compute. Reset: idle, ``acc = +0.0``.
    """

    def __init__(self, scale_formats, psum_bits: int, sum_bits: int, zpc_bits: int):
        self.scale_formats = list(scale_formats)
        self.psum_bits, self.sum_bits, self.zpc_bits = psum_bits, sum_bits, zpc_bits
        self.sig_bits = max(SCALE_SIG_BITS[s] for s in self.scale_formats)
        self.q_bits = psum_bits + self.sig_bits + 1
        super().__init__({
            "start": In(1),
            "psum": In(signed(psum_bits)),
            "sum_a": In(signed(sum_bits)),
            "zpc": In(signed(zpc_bits)),
            "scale": In(16),
            "scale_fmt": In(range(max(2, len(self.scale_formats)))),
            "ea": In(signed(8)),
            "unit": In(4),
            "last": In(1),
            "res_free": In(1),
            "ready": Out(1),
            "done": Out(1),
            "result": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        qb = self.q_bits
        # ---- scale decode (combinational, on the inputs)
        sig_in = Signal(self.sig_bits)
        es_in = Signal(signed(9))
        neg_in = Signal()
        nbits_in = Signal(range(self.sig_bits + 1))
        with m.Switch(self.scale_fmt):
            for i, sf in enumerate(self.scale_formats):
                with m.Case(i):
                    if sf == "e8m0":
                        m.d.comb += [sig_in.eq(1), es_in.eq(self.scale[:8] - 127), nbits_in.eq(1)]
                    else:
                        pos, ew, fw, off = SCALE_FIELDS[sf]
                        e = self.scale[pos:pos + ew]
                        m.d.comb += [
                            sig_in.eq(self.scale[:fw] | ((e != 0) << fw)),
                            es_in.eq((e | (e == 0)) + off),
                            neg_in.eq(self.scale[15]),
                            nbits_in.eq(fw + 1),
                        ]
        pc_in = Signal(signed(self.psum_bits + 1))
        m.d.comb += pc_in.eq(self.psum - self.zpc * self.sum_a)

        # ---- state
        pc = Signal(signed(qb))       # multiplicand, shifted left each cycle
        sig = Signal(self.sig_bits)   # multiplier, shifted right each cycle
        count = Signal(range(self.sig_bits + 1))
        q = Signal(signed(qb))
        e = Signal(signed(10))
        last = Signal()
        acc = Signal(32)
        res = Signal(32)

        conv = m.submodules.conv = ScaledIntToFp32(qb, 10)
        add = m.submodules.add = Fp32Adder()
        m.d.comb += [conv.mant.eq(q), conv.exp.eq(e), add.a.eq(acc), add.b.eq(conv.result),
                     self.result.eq(res)]

        with m.FSM(name="rescale"):
            with m.State("IDLE"):
                m.d.comb += self.ready.eq(1)
                with m.If(self.start):
                    m.d.sync += [
                        pc.eq(pc_in),
                        sig.eq(sig_in),
                        count.eq(nbits_in),
                        q.eq(0),
                        e.eq(self.ea + es_in - self.unit),
                        last.eq(self.last),
                    ]
                    with m.If(neg_in):
                        m.d.sync += pc.eq(-pc_in)
                    m.next = "MUL"
            with m.State("MUL"):
                with m.If(sig[0]):
                    m.d.sync += q.eq(q + pc)
                m.d.sync += [pc.eq(pc << 1), sig.eq(sig >> 1), count.eq(count - 1)]
                with m.If(count == 1):
                    m.next = "ACC"
            with m.State("ACC"):
                with m.If(last):
                    m.d.sync += [res.eq(add.sum), acc.eq(0)]
                    m.next = "FINAL"
                with m.Else():
                    m.d.sync += acc.eq(add.sum)
                    m.next = "IDLE"
            with m.State("FINAL"):
                with m.If(self.res_free):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
        return m
