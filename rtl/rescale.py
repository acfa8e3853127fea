"""The rescale unit: per-group rescale and fp32 accumulation, shared by all rows of the engine."""
from __future__ import annotations

from amaranth import Array, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from sw.datapath import SCALE_SIG_BITS

from .fp32 import Fp32Adder, ScaledIntToFp32

#: (exponent field position, exponent width, fraction width, exponent offset) per scale format.
SCALE_FIELDS = {"fp16": (10, 5, 10, -25), "bf16": (7, 8, 7, -134)}


class RescaleUnit(wiring.Component):
    """Zero-point correction, scale multiply, fp32 conversion and accumulation for ``R`` rows.

    All rows of the engine finish a group in the same cycle; their group sums then go
    through this one pipelined unit, one row per cycle, while the PEs compute the next group.
    For row ``r`` of a batch it computes, as ``sw.datapath`` steps 3-6:
    ``Pc = psum[r] - zpc[r] * sum_a``; ``Q = Pc * sig_s`` (sign and significand of ``scale[r]``);
    ``E = ea + es - unit``; ``acc[r] = fp32_add(acc[r], fp32_RNE(Q * 2^E))``. On a batch flagged
    ``last`` the sum goes to ``result[r]`` instead and ``acc[r]`` restarts at +0.0.

    Ports
    -----
    start : In(1)           take a batch (ignored unless ``ready``)
    psum : In(R x signed(psum_bits))   the rows' group sums, captured on ``start``
    sum_a : In(signed(sum_bits)), ea : In(signed(8)), unit : In(4), scale_fmt : In, last : In(1)
        the group's activation sum and block exponent, the format's unit exponent, the scale
        format index and the last-group flag; captured on ``start``
    scale : In(R x 16), zpc : In(R x signed(zpc_bits))
        each row's raw scale bits (fp16/bf16; e8m0 in bits [7:0]) and zero-point offset
        ``z - 2^(b-1)`` (0 for symmetric formats); NOT captured: they must stay stable from
        ``start`` until ``ready`` is high again (the engine's group registers do)
    ready : Out(1)          a batch is accepted this cycle
    done : Out(1)           one-cycle pulse: every ``result[r]`` of a ``last`` batch is written
    result : Out(R x 32)    the rows' fp32 results (bits); a ``last`` batch overwrites them from
        ``start + 5`` on, so the caller starts one only after the previous results were taken

    Timing: the unit issues one row per cycle (``R`` cycles per batch, ``ready`` low meanwhile)
    into a 5-stage pipeline (row select + zero point + scale decode, multiply, convert, add
    align, add round), so ``done`` rises ``R + 5`` cycles after ``start``. With ``R = 1`` a batch
    also waits for the previous one to leave the pipeline (the two-stage accumulation must
    see its own write). The engine overlaps the unit with the next group's compute: it stalls
    only when a group takes fewer than ``R`` cycles (``EngineConfig.warnings``).
    Reset (synchronous): idle, pipeline empty, every ``acc`` and ``result`` = +0.0.
    """

    STAGES = 5

    def __init__(self, scale_formats, rows: int, psum_bits: int, sum_bits: int, zpc_bits: int):
        if not isinstance(rows, int) or rows < 1:
            raise ValueError(f"rows={rows!r} must be a positive integer")
        self.scale_formats = list(scale_formats)
        unknown = [s for s in self.scale_formats if s not in SCALE_SIG_BITS]
        if unknown or not self.scale_formats:
            raise ValueError(f"scale_formats={self.scale_formats!r}: choose from {', '.join(SCALE_SIG_BITS)}")
        self.rows = rows
        self.psum_bits, self.sum_bits, self.zpc_bits = psum_bits, sum_bits, zpc_bits
        self.sig_bits = max(SCALE_SIG_BITS[s] for s in self.scale_formats)
        self.q_bits = psum_bits + self.sig_bits + 1
        super().__init__({
            "start": In(1),
            "psum": In(data.ArrayLayout(signed(psum_bits), rows)),
            "sum_a": In(signed(sum_bits)),
            "ea": In(signed(8)),
            "unit": In(4),
            "scale_fmt": In(range(max(2, len(self.scale_formats)))),
            "last": In(1),
            "scale": In(data.ArrayLayout(16, rows)),
            "zpc": In(data.ArrayLayout(signed(zpc_bits), rows)),
            "ready": Out(1),
            "done": Out(1),
            "result": Out(data.ArrayLayout(32, rows)),
        })

    def _decode_scale(self, m, scale, scale_fmt):
        """(significand, exponent, negative) of the raw scale bits, combinational."""
        sig = Signal(self.sig_bits)
        es = Signal(signed(9))
        neg = Signal()
        with m.Switch(scale_fmt):
            for i, sf in enumerate(self.scale_formats):
                with m.Case(i):
                    if sf == "e8m0":
                        m.d.comb += [sig.eq(1), es.eq(scale[:8] - 127)]
                    else:
                        pos, ew, fw, off = SCALE_FIELDS[sf]
                        e = scale[pos:pos + ew]
                        m.d.comb += [sig.eq(scale[:fw] | ((e != 0) << fw)),
                                     es.eq((e | (e == 0)) + off), neg.eq(scale[15])]
        return sig, es, neg

    def elaborate(self, platform):
        m = Module()
        R = self.rows
        row_bits = range(max(2, R))

        # ---------------------------------------------------------------- batch capture
        psum_c = Array(Signal(signed(self.psum_bits), name=f"psum_c{r}") for r in range(R))
        sum_a = Signal(signed(self.sum_bits))
        ea = Signal(signed(8))
        unit = Signal(4)
        sfmt = Signal.like(self.scale_fmt)
        last = Signal()
        issuing = Signal()
        row = Signal(row_bits)

        # pipeline valid bits: p[0] after stage 0 ... p[4] after the adder's first stage
        v = [Signal(name=f"v{i}") for i in range(self.STAGES - 1)]
        busy = issuing if R >= 2 else (issuing | v[0] | v[1] | v[2] | v[3])
        m.d.comb += self.ready.eq(~busy)

        with m.If(self.start & self.ready):
            m.d.sync += [issuing.eq(1), row.eq(0), sum_a.eq(self.sum_a), ea.eq(self.ea),
                         unit.eq(self.unit), sfmt.eq(self.scale_fmt), last.eq(self.last)]
            m.d.sync += [psum_c[r].eq(self.psum[r]) for r in range(R)]
        with m.Elif(issuing):
            m.d.sync += row.eq(row + 1)
            with m.If(row == R - 1):
                m.d.sync += issuing.eq(0)

        # ---------------------------------------------------------------- stage 0: select, zero point, scale
        scale_row = Array(self.scale[r] for r in range(R))[row]
        zpc_row = Array(self.zpc[r] for r in range(R))[row]
        sig, es, neg = self._decode_scale(m, scale_row, sfmt)
        pc = Signal(signed(self.psum_bits + 1))
        m.d.comb += pc.eq(psum_c[row] - zpc_row * sum_a)
        s1_pc = Signal(signed(self.psum_bits + 2))
        s1_sig = Signal(self.sig_bits)
        s1_e = Signal(signed(10))
        s1_row, s1_last = Signal(row_bits), Signal()
        m.d.sync += [v[0].eq(issuing), s1_pc.eq(pc), s1_sig.eq(sig), s1_e.eq(ea + es - unit),
                     s1_row.eq(row), s1_last.eq(last)]
        with m.If(neg):
            m.d.sync += s1_pc.eq(-pc)

        # ---------------------------------------------------------------- stage 1: Q = Pc * sig
        s2_q = Signal(signed(self.q_bits))
        s2_e = Signal(signed(10))
        s2_row, s2_last = Signal(row_bits), Signal()
        m.d.sync += [v[1].eq(v[0]), s2_q.eq(s1_pc * s1_sig), s2_e.eq(s1_e), s2_row.eq(s1_row),
                     s2_last.eq(s1_last)]

        # ---------------------------------------------------------------- stage 2: fp32_RNE(Q * 2^E)
        conv = m.submodules.conv = ScaledIntToFp32(self.q_bits, 10)
        m.d.comb += [conv.mant.eq(s2_q), conv.exp.eq(s2_e)]
        s3_q = Signal(32)
        s3_row, s3_last = Signal(row_bits), Signal()
        m.d.sync += [v[2].eq(v[1]), s3_q.eq(conv.result), s3_row.eq(s2_row), s3_last.eq(s2_last)]

        # ---------------------------------------------------------------- stages 3-4: acc[row] + q (2-stage adder)
        acc = Array(Signal(32, name=f"acc{r}") for r in range(R))
        add = m.submodules.add = Fp32Adder(stages=2)
        m.d.comb += [add.a.eq(acc[s3_row]), add.b.eq(s3_q)]
        s4_row, s4_last = Signal(row_bits), Signal()
        m.d.sync += [v[3].eq(v[2]), s4_row.eq(s3_row), s4_last.eq(s3_last)]
        result = Array(Signal(32, name=f"result{r}") for r in range(R))
        with m.If(v[3]):
            with m.If(s4_last):
                m.d.sync += [result[s4_row].eq(add.sum), acc[s4_row].eq(0)]
            with m.Else():
                m.d.sync += acc[s4_row].eq(add.sum)
        m.d.sync += self.done.eq(v[3] & s4_last & (s4_row == R - 1))   # after the last row's write
        m.d.comb += [self.result[r].eq(result[r]) for r in range(R)]
        return m
