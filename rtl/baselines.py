"""Floating-point bit-parallel baselines with the bitmix engine's stream interface.

Two engine tops, built from one :class:`gen.config.EngineConfig` (rows ``R``, lanes ``L``,
``group_size`` ``G``, ``max_groups``) with exactly the streams, payload layouts and
handshakes of :class:`rtl.engine.Engine`; only the weight code width ``B`` differs:

* :class:`Fp16MacEngine` (``B = 16``): FP16 weights x FP16 activations, FP32 accumulation.
* :class:`Fp16Int8Engine` (``B = 8``): INT8 weights with a per-group FP16 scale,
  dequantized per lane to FP16 (ANT/OliVe style: dequantize, then multiply), x FP16
  activations, FP32 accumulation.

Arithmetic of one row (``sw/baselines.py`` is the bit-exact model):

1. each cycle lane ``l`` takes the weight ``w`` and activation ``x`` of input
   ``k = s*L + l`` (step ``s``); FP16xINT8 first forms ``w = fp16_RNE(code * scale_g)``
   (:class:`rtl.fp16_mul.Int8Fp16Dequant`);
2. ``p = w * x`` exactly in fp32 (:class:`rtl.fp16_mul.Fp16Mul`; never rounded);
3. ``acc[l] = fp32_add_RNE(acc[l], p)`` from ``acc[l] = +0.0`` at the tile's first step
   (:class:`rtl.fp32.Fp32Adder`, one per lane, in the same cycle as the multiply);
4. after the tile's last step the ``L`` lane sums are reduced *by the lane adders
   themselves*, a halving tree: with ``n`` live sums and ``h = ceil(n/2)``,
   ``acc[l] = acc[l] + acc[l+h]`` for ``l < n-h`` (one level per cycle, ``ceil(log2 L)``
   levels), until ``acc[0]`` is the row's fp32 result. No extra adder.
"""
from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .engine import cmd_layout
from .fp16_mul import Fp16Mul, Int8Fp16Dequant
from .fp32 import Fp32Adder

__all__ = ["reduction_schedule", "baseline_meta_layout", "Fp16MacRow", "Fp16Int8Row",
           "Fp16MacEngine", "Fp16Int8Engine", "FP16_CODE_BITS", "INT8_CODE_BITS"]

FP16_CODE_BITS = 16
INT8_CODE_BITS = 8


def reduction_schedule(lanes: int) -> list[tuple[int, int]]:
    """The lane-reduction tree: per level ``(n, h)``: sums ``l < n - h`` add sum ``l + h``.

    ``n`` live sums shrink to ``h = ceil(n/2)`` per level; ``len()`` is ``ceil(log2 lanes)``.
    """
    out, n = [], lanes
    while n > 1:
        h = (n + 1) // 2
        out.append((n, h))
        n = h
    return out


def baseline_meta_layout(code_bits: int) -> data.StructLayout:
    """:func:`rtl.engine.meta_layout` with the baseline's code width (same field order)."""
    return data.StructLayout({"scale": 16, "sel": 2, "zp": code_bits})


class _LaneRow(wiring.Component):
    """Shared datapath of a baseline row: ``lanes`` products -> fp32 lane accumulators -> tree.

    Ports (besides the subclass's product inputs)
    -----
    en : In(1)        a MAC step: ``acc[l] <= fp32_add(first ? +0.0 : acc[l], p[l])`` for every lane
    first : In(1)     with ``en``: the tile's first step (the accumulators restart from +0.0)
    red : In(1)       a reduction level (never together with ``en``): level ``level`` of
                      :func:`reduction_schedule`, ``acc[l] <= fp32_add(acc[l], acc[l+h])`` for ``l < n-h``
    level : In        reduction level index
    sum0 : Out(32)    lane 0's adder output, combinational: on the last reduction level (or, with
                      one lane, on the last step) it is the row's result.

    Latency: the accumulators update on the clock edge of an ``en``/``red`` cycle and hold
    otherwise (stall). Reset clears them to +0.0.
    """

    code_bits = 16

    def __init__(self, lanes: int, extra: dict | None = None):
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes={lanes!r} must be a positive integer")
        self.lanes = lanes
        self.schedule = reduction_schedule(lanes)
        super().__init__({
            "x": In(lanes * 16),
            "w": In(lanes * self.code_bits),
            **(extra or {}),
            "en": In(1),
            "first": In(1),
            "red": In(1),
            "level": In(range(max(2, len(self.schedule)))),
            "sum0": Out(32),
        })

    def products(self, m: Module) -> list:
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        L = self.lanes
        prods = self.products(m)
        acc = [Signal(32, name=f"acc{l}") for l in range(L)]
        sums = []
        for l in range(L):
            add = m.submodules[f"add{l}"] = Fp32Adder()
            # partner of lane l on each reduction level where it is a left operand
            partner = prods[l]
            for k, (n, h) in enumerate(self.schedule):
                if l < n - h:
                    partner = Mux(self.level == k, acc[l + h], partner)
            m.d.comb += [
                add.a.eq(Mux(self.first & ~self.red, 0, acc[l])),
                add.b.eq(Mux(self.red, partner, prods[l])),
            ]
            sums.append(add.sum)
        m.d.comb += self.sum0.eq(sums[0])
        with m.If(self.en):
            m.d.sync += [acc[l].eq(sums[l]) for l in range(L)]
        with m.Elif(self.red):
            with m.Switch(self.level):
                for k, (n, h) in enumerate(self.schedule):
                    with m.Case(k):
                        m.d.sync += [acc[l].eq(sums[l]) for l in range(n - h)]
        return m


class Fp16MacRow(_LaneRow):
    """One row of the FP16xFP16 baseline: ``lanes`` x (fp16 multiplier, fp32 adder, accumulator).

    Ports: ``x`` In(lanes*16) fp16 activations (lane ``l`` at ``[16l+15:16l]``), ``w``
    In(lanes*16) fp16 weights (same placement), and the :class:`_LaneRow` controls
    ``en, first, red, level`` and output ``sum0``. Purely bit-parallel: one MAC per lane per
    ``en`` cycle; combinational path multiplier -> adder -> accumulator.
    """

    code_bits = FP16_CODE_BITS

    def __init__(self, lanes: int):
        super().__init__(lanes)

    def products(self, m):
        out = []
        for l in range(self.lanes):
            mul = m.submodules[f"mul{l}"] = Fp16Mul()
            m.d.comb += [mul.a.eq(self.w[16 * l:16 * l + 16]), mul.b.eq(self.x[16 * l:16 * l + 16])]
            out.append(mul.p)
        return out


class Fp16Int8Row(_LaneRow):
    """One row of the FP16xINT8 baseline: per lane an int8->fp16 dequantizer, an fp16
    multiplier, an fp32 adder and accumulator.

    Ports: ``x`` In(lanes*16) fp16 activations, ``w`` In(lanes*8) int8 codes (two's
    complement, lane ``l`` at ``[8l+7:8l]``), ``scale`` In(16) the row's fp16 group scale
    (shared by its lanes), and the :class:`_LaneRow` controls. Each ``en`` cycle lane ``l``
    computes ``fp16_RNE(code * scale) * x`` exactly and accumulates it; combinational path
    dequantizer -> multiplier -> adder -> accumulator.
    """

    code_bits = INT8_CODE_BITS

    def __init__(self, lanes: int):
        super().__init__(lanes, {"scale": In(16)})

    def products(self, m):
        out = []
        for l in range(self.lanes):
            dq = m.submodules[f"dequant{l}"] = Int8Fp16Dequant()
            mul = m.submodules[f"mul{l}"] = Fp16Mul()
            m.d.comb += [dq.code.eq(self.w[8 * l:8 * l + 8]), dq.scale.eq(self.scale),
                         mul.a.eq(dq.w), mul.b.eq(self.x[16 * l:16 * l + 16])]
            out.append(mul.p)
        return out


class _BaselineEngine(wiring.Component):
    row_class = None
    uses_scale = False

    def __init__(self, cfg):
        self.cfg = cfg
        R, L = cfg.rows, cfg.lanes
        B = self.row_class.code_bits
        self.code_bits = B
        self.levels = len(reduction_schedule(L))
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout(cfg))),
            "act": In(stream.Signature(L * 16)),
            "wgt": In(stream.Signature(R * L * B)),
            "meta": In(stream.Signature(data.ArrayLayout(baseline_meta_layout(B), R))),
            "res": Out(stream.Signature(R * 32)),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        R, L, B, S = cfg.rows, cfg.lanes, self.code_bits, cfg.steps_per_group
        levels = self.levels
        m = Module()

        # ------------------------------------------------------------ command / tile state
        active = Signal()
        reducing = Signal()
        lvl = Signal(range(max(2, levels)))
        n_groups = Signal.like(self.cmd.payload.n_groups)
        g = Signal(range(cfg.max_groups + 1))
        s = Signal(range(max(2, S)))
        with m.If(~active):
            m.d.comb += self.cmd.ready.eq(1)
            with m.If(self.cmd.valid):
                m.d.sync += [active.eq(1), reducing.eq(0), n_groups.eq(self.cmd.payload.n_groups),
                             g.eq(0), s.eq(0)]

        group_start = s == 0
        last_step = s == S - 1
        tile_end = last_step & (g == n_groups - 1)

        # ------------------------------------------------------------ result register
        res_valid = Signal()
        res_data = Signal(R * 32)
        res_free = ~res_valid | self.res.ready
        m.d.comb += [self.res.valid.eq(res_valid), self.res.payload.eq(res_data)]
        with m.If(self.res.ready):
            m.d.sync += res_valid.eq(0)

        # ------------------------------------------------------------ metadata
        if self.uses_scale:
            meta_r = Signal(data.ArrayLayout(baseline_meta_layout(B), R))
            meta_ok = ~group_start | self.meta.valid
        else:
            # FP16 weights carry no group scale: the meta stream is a sink (always ready,
            # beats discarded), so a host can send the same memory image as to the engine.
            m.d.comb += self.meta.ready.eq(1)
            meta_ok = Const(1)

        # ------------------------------------------------------------ MAC steps
        go = Signal()
        final_ok = res_free if levels == 0 else Const(1)
        m.d.comb += go.eq(active & ~reducing & self.act.valid & self.wgt.valid & meta_ok
                          & (~tile_end | final_ok))
        red_go = Signal()
        m.d.comb += red_go.eq(reducing & ((lvl != levels - 1) | res_free))

        rows = []
        for r in range(R):
            row = m.submodules[f"row{r}"] = self.row_class(L)
            rows.append(row)
            m.d.comb += [
                row.x.eq(self.act.payload),
                row.w.eq(self.wgt.payload[r * L * B:(r + 1) * L * B]),
                row.en.eq(go),
                row.first.eq((g == 0) & group_start),
                row.red.eq(red_go),
                row.level.eq(lvl),
            ]
            if self.uses_scale:
                m.d.comb += row.scale.eq(Mux(group_start, self.meta.payload[r].scale, meta_r[r].scale))
        write_res = Signal()
        with m.If(write_res):
            m.d.sync += [res_valid.eq(1), res_data.eq(Cat(*[row.sum0 for row in rows])),
                         active.eq(0), reducing.eq(0)]

        with m.If(go):
            m.d.comb += [self.act.ready.eq(1), self.wgt.ready.eq(1)]
            if self.uses_scale:
                with m.If(group_start):
                    m.d.comb += self.meta.ready.eq(1)
                    m.d.sync += meta_r.eq(self.meta.payload)
            m.d.sync += s.eq(s + 1)
            with m.If(last_step):
                m.d.sync += [s.eq(0), g.eq(g + 1)]
            with m.If(tile_end):
                if levels:
                    m.d.sync += [reducing.eq(1), lvl.eq(0)]
                else:
                    m.d.comb += write_res.eq(1)
        with m.If(red_go):
            m.d.sync += lvl.eq(lvl + 1)
            with m.If(lvl == levels - 1):
                m.d.comb += write_res.eq(1)
        return m


_ENGINE_DOC = """

    Streams (``amaranth.lib.stream``; a beat moves on a rising edge with ``valid & ready``;
    a source holds ``payload`` stable and ``valid`` high until then) -- identical to
    :class:`rtl.engine.Engine` for the same config, with ``B = {B}``:

    cmd : In(``cmd_layout(cfg)``), one beat per tile of ``R`` outputs
        ``n_groups`` (``K = n_groups * G``, 1..``max_groups``) is used; ``fmt`` and
        ``scale_fmt`` are accepted and ignored (one weight format, {scale_note}).
    act : In(``L*16``), ``K/L`` beats per tile
        lane ``l`` at ``[16l+15:16l]``: the fp16 activation of input ``k = s*L + l`` (beat
        ``s``), taken as is (no block alignment). Re-sent for every tile.
    wgt : In(``R*L*{B}``), ``K/L`` beats per tile
        the {wdesc} of (row ``r``, input ``s*L + l``)
        at ``[(rL+l){B} + {Bm1} : (rL+l){B}]``.
    meta : In(``R x (18+{B})``)
        {meta_note}.
        Row ``r`` at ``[r(18+{B}) + {mtop} : r(18+{B})]``: ``scale`` [15:0], ``sel`` [17:16],
        ``zp`` above ({meta_fields}).
    res : Out(``R*32``), one beat per tile
        row ``r``'s fp32 result at ``[32r+31:32r]``, equal bit for bit to
        {golden}.

    Cycle model: one ``act`` and one ``wgt`` beat per cycle (all ``R x L`` lanes do one
    multiply-accumulate each), then ``ceil(log2 L)`` cycles of lane reduction (the last one
    writes the result register, waiting there while ``res`` is full), then one cycle to take
    the next command: ``K/L + ceil(log2 L) + 1`` cycles per tile, ideal ``K/L``.

    Latency: ``res.valid`` rises ``ceil(log2 L)`` clock edges after the edge that moves the
    tile's last ``act``/``wgt`` beat (on that same edge with one lane), unless the previous
    result is still waiting on ``res``.

    Stalls and reset: any input may stall at any time and ``res`` may be back-pressured; the
    engine then waits without losing state. A synchronous, active-high reset clears the state
    (accumulators +0.0, no result pending, no tile in flight); after it, start again with a
    command.
    """


class Fp16MacEngine(_BaselineEngine):
    __doc__ = ("""FP16 x FP16 MAC baseline: ``R`` rows x ``L`` lanes, each lane an fp16 multiplier
    (exact product in fp32) and an fp32 accumulator (:class:`Fp16MacRow`).""" + _ENGINE_DOC.format(
        B=16, Bm1=15, mtop=33, scale_note="no group scale", wdesc="fp16 weight (raw bits)",
        meta_note="always ready: every beat is accepted and discarded (fp16 weights carry\n        no "
                  "group scale; a host may send the engine's one beat per group per tile, or none)",
        meta_fields="all ignored", golden="``sw.baselines.fp16_mac_gemv(w, x, L)``"))
    row_class = Fp16MacRow
    uses_scale = False


class Fp16Int8Engine(_BaselineEngine):
    __doc__ = ("""FP16 x INT8 bit-parallel baseline (ANT/OliVe style): ``R`` rows x ``L`` lanes, each
    lane an int8 x fp16-scale dequantizer to fp16 (RNE), an fp16 multiplier (exact product in
    fp32) and an fp32 accumulator (:class:`Fp16Int8Row`).""" + _ENGINE_DOC.format(
        B=8, Bm1=7, mtop=25, scale_note="the scale is always fp16",
        wdesc="int8 code (two's complement, ``sw.quantize(w, 'int8')``)",
        meta_note="one beat per group per tile, taken with the group's first ``wgt`` beat",
        meta_fields="``scale`` = the row's fp16 group scale; ``sel``, ``zp`` ignored",
        golden="``sw.baselines.fp16_int8_gemv(q, x, L)``"))
    row_class = Fp16Int8Row
    uses_scale = True
