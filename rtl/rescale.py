"""The rescale unit: per-group rescale and fp32 accumulation, shared by all rows of the engine."""
from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
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
    ``E = ea + es - unit``; ``acc[r] = fp32_add(first ? +0.0 : acc[r], fp32_RNE(Q * 2^E))``. A ``last``
    batch's sums are the tile's results.

    Ports
    -----
    start : In(1)           take a batch (ignored unless ``ready``)
    psum : In(R x signed(psum_bits))   the rows' group sums, captured on ``start``
    scale : In(R x 16), zpc : In(R x signed(zpc_bits))
        each row's raw scale bits (fp16/bf16; e8m0 in bits [7:0], [15:8] ignored) and zero-point
        offset ``z - 2^(b-1)`` (0 for symmetric formats); captured on ``start``
    sum_a : In(signed(sum_bits)), ea : In(signed(8)), unit : In(4), scale_fmt : In, last : In(1)
        the group's activation sum and block exponent, the format's unit exponent, the scale
        format index and the last-group flag; captured on ``start``. The batch after reset or
        after a ``last`` batch is a tile's first: it adds to +0.0 instead of ``acc[r]`` (a
        1-bit flag, set by reset and by a ``last`` batch)
    ready : Out(1)          a batch is accepted this cycle
    done : Out(1)           one-cycle pulse: every ``result[r]`` of a ``last`` batch is written
    result : Out(R x 32)    the rows' fp32 results (bits) of the latest ``last`` batch, valid
        from ``done``. ``result_registers=True`` (default): R registers written by a ``last``
        batch only (reset: +0.0), so they hold until the next tile's last batch.
        ``result_registers=False``: ``result`` is the accumulators themselves (R x 32 fewer
        flip-flops); they change again from ``start + 5`` of the next batch, so the caller
        starts the next tile's first batch only once the previous results were taken.

    Parameters: ``scale_formats``, ``rows``, ``psum_bits``, ``sum_bits``, ``zpc_bits``
    (positional), ``result_registers`` (keyword-only bool, default True).

    Storage: the captured ``psum``, ``scale`` and ``zpc`` of the R rows form one shift chain
    (row 0 at its head, shifting every cycle after the capture), so neither an R-way read
    multiplexer nor a hold multiplexer per bit is needed; the R fp32 accumulators form a ring
    (see ``elaborate``), so neither a read multiplexer nor a write decoder is needed either.

    Timing: the unit issues one row per cycle (``R`` cycles per batch, ``ready`` low meanwhile)
    into a 5-stage pipeline (row select + zero point + scale decode, multiply, convert, add
    align, add round), so ``done`` rises ``R + 5`` cycles after ``start``. With ``R = 1`` a batch
    also waits for the previous one to leave the pipeline (the two-stage accumulation must
    see its own write). The engine overlaps the unit with the next group's compute: it stalls
    only when a group takes fewer than ``R`` cycles (``EngineConfig.warnings``).
    Reset (synchronous): idle, pipeline empty. Datapath registers (the capture chain, the
    pipeline's data, the accumulators) are not reset (no reset gate per bit): nothing reads them
    before a batch writes them (a tile's first batch adds to +0.0, not to ``acc``), and ``result``
    is meaningful only after ``done``.
    """

    STAGES = 5

    def __init__(self, scale_formats, rows: int, psum_bits: int, sum_bits: int, zpc_bits: int, *,
                 result_registers: bool = True):
        try:
            self._check(scale_formats, rows, result_registers)
        except ValueError:
            self._MustUse__silence = True     # a rejected instance is not an "unused elaboratable"
            raise
        self.scale_formats = list(scale_formats)
        self.result_registers = result_registers
        self.rows = rows
        self.psum_bits, self.sum_bits, self.zpc_bits = psum_bits, sum_bits, zpc_bits
        self._init_ports()

    @staticmethod
    def _check(scale_formats, rows, result_registers):
        if not isinstance(rows, int) or rows < 1:
            raise ValueError(f"rows={rows!r} must be a positive integer")
        if not isinstance(result_registers, bool):
            raise ValueError(f"result_registers={result_registers!r} must be True or False")
        formats = list(scale_formats)
        unknown = [s for s in formats if s not in SCALE_SIG_BITS]
        if unknown or not formats:
            raise ValueError(f"scale_formats={formats!r}: choose from {', '.join(SCALE_SIG_BITS)}")

    def _init_ports(self):
        psum_bits, rows = self.psum_bits, self.rows
        self.sig_bits = max(SCALE_SIG_BITS[s] for s in self.scale_formats)
        self.q_bits = psum_bits + self.sig_bits + 1
        super().__init__({
            "start": In(1),
            "psum": In(data.ArrayLayout(signed(psum_bits), rows)),
            "sum_a": In(signed(self.sum_bits)),
            "ea": In(signed(8)),
            "unit": In(4),
            "scale_fmt": In(range(max(2, len(self.scale_formats)))),
            "last": In(1),
            "scale": In(data.ArrayLayout(16, rows)),
            "zpc": In(data.ArrayLayout(signed(self.zpc_bits), rows)),
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
        psum_c = [Signal(signed(self.psum_bits), name=f"psum_c{r}", reset_less=True) for r in range(R)]
        scale_c = [Signal(16, name=f"scale_c{r}", reset_less=True) for r in range(R)]
        zpc_c = [Signal(signed(self.zpc_bits), name=f"zpc_c{r}", reset_less=True) for r in range(R)]
        sum_a = Signal(signed(self.sum_bits), reset_less=True)
        ea = Signal(signed(8), reset_less=True)
        unit = Signal(4, reset_less=True)
        sfmt = Signal.like(self.scale_fmt)
        last = Signal(reset_less=True)
        first = Signal(reset_less=True)
        fresh = Signal(init=1)     # the next batch starts a tile: after reset or a `last` batch
        issuing = Signal()
        row = Signal(row_bits)

        # pipeline valid bits: p[0] after stage 0 ... p[4] after the adder's first stage
        v = [Signal(name=f"v{i}") for i in range(self.STAGES - 1)]
        busy = issuing if R >= 2 else (issuing | v[0] | v[1] | v[2] | v[3])
        m.d.comb += self.ready.eq(~busy)

        with m.If(self.start & self.ready):
            m.d.sync += [issuing.eq(1), row.eq(0), sum_a.eq(self.sum_a), ea.eq(self.ea),
                         unit.eq(self.unit), sfmt.eq(self.scale_fmt), last.eq(self.last),
                         first.eq(fresh), fresh.eq(self.last)]
            for r in range(R):
                m.d.sync += [psum_c[r].eq(self.psum[r]), scale_c[r].eq(self.scale[r]), zpc_c[r].eq(self.zpc[r])]
        with m.Else():
            # shift chain: the next row to the head. It shifts every cycle it does not load (no
            # hold, so no enable multiplexer per bit): a batch issues its R rows in R consecutive
            # cycles right after its capture, and what the chain holds after that is never read.
            for r in range(R - 1):
                m.d.sync += [psum_c[r].eq(psum_c[r + 1]), scale_c[r].eq(scale_c[r + 1]), zpc_c[r].eq(zpc_c[r + 1])]
        with m.If(~(self.start & self.ready) & issuing):
            m.d.sync += row.eq(row + 1)
            with m.If(row == R - 1):
                m.d.sync += issuing.eq(0)

        # ---------------------------------------------------------------- stage 0: select, zero point, scale
        sig, es, neg = self._decode_scale(m, scale_c[0], sfmt)
        pc = Signal(signed(self.psum_bits + 1), reset_less=True)
        m.d.comb += pc.eq(psum_c[0] - zpc_c[0] * sum_a)
        s1_pc = Signal(signed(self.psum_bits + 2), reset_less=True)
        s1_sig = Signal(self.sig_bits, reset_less=True)
        s1_e = Signal(signed(10), reset_less=True)
        s1_row, s1_last, s1_first = Signal(row_bits, reset_less=True), Signal(reset_less=True), Signal(reset_less=True)
        m.d.sync += [v[0].eq(issuing), s1_pc.eq(pc), s1_sig.eq(sig), s1_e.eq(ea + es - unit),
                     s1_row.eq(row), s1_last.eq(last), s1_first.eq(first)]
        with m.If(neg):
            m.d.sync += s1_pc.eq(-pc)

        # ---------------------------------------------------------------- stage 1: Q = Pc * sig
        s2_q = Signal(signed(self.q_bits), reset_less=True)
        s2_e = Signal(signed(10), reset_less=True)
        s2_row, s2_last, s2_first = Signal(row_bits, reset_less=True), Signal(reset_less=True), Signal(reset_less=True)
        m.d.sync += [v[1].eq(v[0]), s2_q.eq(s1_pc * s1_sig), s2_e.eq(s1_e), s2_row.eq(s1_row),
                     s2_last.eq(s1_last), s2_first.eq(s1_first)]

        # ---------------------------------------------------------------- stage 2: fp32_RNE(Q * 2^E)
        conv = m.submodules.conv = ScaledIntToFp32(self.q_bits, 10)
        m.d.comb += [conv.mant.eq(s2_q), conv.exp.eq(s2_e)]
        s3_q = Signal(32, reset_less=True)
        s3_row, s3_last, s3_first = Signal(row_bits, reset_less=True), Signal(reset_less=True), Signal(reset_less=True)
        m.d.sync += [v[2].eq(v[1]), s3_q.eq(conv.result), s3_row.eq(s2_row), s3_last.eq(s2_last),
                     s3_first.eq(s2_first)]

        # ---------------------------------------------------------------- stages 3-4: acc[row] + q (2-stage adder)
        # The accumulators form a ring in row order: the row at stage 4 is written at the tail
        # while the ring shifts one place, so the row at stage 3 is always at position 0 (nothing
        # at stage 4) or 1 (the previous row being written): a 2-way read, no R-way multiplexer
        # and no write decoder. After a batch's R writes the ring is back in row order.
        acc = [Signal(32, name=f"acc{r}", reset_less=True) for r in range(R)]
        add = m.submodules.add = Fp32Adder(stages=2)
        s4_row, s4_last = Signal(row_bits, reset_less=True), Signal(reset_less=True)
        m.d.sync += [v[3].eq(v[2]), s4_row.eq(s3_row), s4_last.eq(s3_last)]
        head = Signal(32, name="acc_head")
        m.d.comb += head.eq(Mux(v[3], acc[1 % R], acc[0]) if R > 1 else acc[0])
        m.d.comb += [add.a.eq(Mux(s3_first, 0, head)), add.b.eq(s3_q)]
        with m.If(v[3]):
            m.d.sync += [acc[r].eq(acc[r + 1]) for r in range(R - 1)]
            m.d.sync += acc[R - 1].eq(add.sum)
        m.d.sync += self.done.eq(v[3] & s4_last & (s4_row == R - 1))   # after the last row's write
        if self.result_registers:
            result = [Signal(32, name=f"result{r}") for r in range(R)]
            with m.If(v[3] & s4_last):
                with m.Switch(s4_row):
                    for r in range(R):
                        with m.Case(r):
                            m.d.sync += result[r].eq(add.sum)
        else:
            result = acc
        m.d.comb += [self.result[r].eq(result[r]) for r in range(R)]
        return m
