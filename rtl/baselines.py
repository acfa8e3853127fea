"""Floating-point bit-parallel baselines with the bitmix engine's stream interface.

Two engine tops, built from one :class:`gen.config.EngineConfig` (rows ``R``, lanes ``L``,
``group_size`` ``G``, ``max_groups``) with exactly the streams, payload layouts and
handshakes of :class:`rtl.engine.Engine`; only the weight code width ``B`` differs:

* :class:`Fp16MacEngine` (``B = 16``): FP16 weights x FP16 activations, FP32 accumulation.
  What a designer builds for fp16 weights: one IEEE fp16 multiplier (exact product in fp32)
  and one fp32 accumulator per lane, the lane adders reused for the final reduction.
* :class:`Fp16Int8Engine` (``B = 8``): INT8 weights with a per-group FP16 scale x FP16
  activations, the lean ``fma_int8`` design (ANT/OliVe, BitMoD baselines): integer
  products, a block-floating-point group sum, the scale applied once per group by the
  shared rescale unit (:class:`rtl.rescale.RescaleUnit`, the bitmix engine's own), fp32
  accumulation.

FP16 MAC arithmetic of one row (``sw/baselines.py`` is the bit-exact model):

1. each cycle lane ``l`` takes the weight ``w`` and activation ``x`` of input
   ``k = s*L + l`` (step ``s``);
2. ``p = w * x`` exactly in fp32 (:class:`rtl.fp16_mul.Fp16Mul`; never rounded);
3. ``acc[l] = fp32_add_RNE(acc[l], p)`` from ``acc[l] = +0.0`` at the tile's first step
   (:class:`rtl.fp32.Fp32Adder`, one per lane, in the same cycle as the multiply);
4. after the tile's last step the ``L`` lane sums are reduced *by the lane adders
   themselves*, a halving tree: with ``n`` live sums and ``h = ceil(n/2)``,
   ``acc[l] = acc[l] + acc[l+h]`` for ``l < n-h`` (one level per cycle, ``ceil(log2 L)``
   levels), until ``acc[0]`` is the row's fp32 result. No extra adder.

FP16xINT8 arithmetic: ``sw.baselines`` module docstring, steps 1-6 (exact 19-bit products
``int8 x ±sig11``, aligned to the group's running maximum exponent with ``F`` guard bits,
an exact adder tree and a block accumulator per row, then ``Q = P * sig_s``, fp32 RNE
conversion and fp32 RNE accumulation in the shared rescale unit).
"""
from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sw.baselines import GUARD_BITS, int8_psum_bits

from .act_frontend import act_layout
from .engine import cmd_layout
from .fp16_mul import Fp16Mul
from .fp32 import Fp32Adder
from .rescale import RescaleUnit

__all__ = ["reduction_schedule", "baseline_meta_layout", "Fp16MacRow", "Int8ActAlign", "Fp16Int8Row",
           "Int8GroupRescale", "Fp16MacEngine", "Fp16Int8Engine", "FP16_CODE_BITS", "INT8_CODE_BITS",
           "GUARD_BITS"]

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



def engine_ports(cfg, code_bits: int) -> dict:
    """The five streams every baseline engine shares with the bitmix engine: ``cmd`` and ``act``
    (the engine's layouts; ``emax`` unused), ``wgt`` (R x L slots of ``code_bits``), ``meta`` (R x
    :func:`baseline_meta_layout`), ``res`` (R x fp32)."""
    R, L = cfg.rows, cfg.lanes
    return {
        "cmd": In(stream.Signature(cmd_layout(cfg))),
        "act": In(stream.Signature(act_layout(L, "fp16"))),
        "wgt": In(stream.Signature(R * L * code_bits)),
        "meta": In(stream.Signature(data.ArrayLayout(baseline_meta_layout(code_bits), R))),
        "res": Out(stream.Signature(R * 32)),
    }

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


class _BaselineEngine(wiring.Component):
    row_class = None

    def __init__(self, cfg):
        self.cfg = cfg
        L = cfg.lanes
        B = self.row_class.code_bits
        self.code_bits = B
        self.levels = len(reduction_schedule(L))
        super().__init__(engine_ports(cfg, B))

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
                row.x.eq(self.act.payload.x),
                row.w.eq(self.wgt.payload[r * L * B:(r + 1) * L * B]),
                row.en.eq(go),
                row.first.eq((g == 0) & group_start),
                row.red.eq(red_go),
                row.level.eq(lvl),
            ]
        write_res = Signal()
        with m.If(write_res):
            m.d.sync += [res_valid.eq(1), res_data.eq(Cat(*[row.sum0 for row in rows])),
                         active.eq(0), reducing.eq(0)]

        with m.If(go):
            m.d.comb += [self.act.ready.eq(1), self.wgt.ready.eq(1)]
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
    act : In(``act_layout(L, "fp16")``), ``K/L`` beats per tile (``emax`` ignored)
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
    (exact product in fp32) and an fp32 accumulator (:class:`Fp16MacRow`).

    Why this is what a competent designer builds for fp16 weights: every product carries its
    own exponent (the weight's plus the activation's), there is no group scale to factor out
    and no exponent shared by the rows, so the standard FP16 MAC keeps one exact fp16
    multiplier (11x11 bits, never rounded) and one fp32 RNE accumulator per lane, and reuses
    the lane adders for the final reduction instead of adding a tree of its own.""" + _ENGINE_DOC.format(
        B=16, Bm1=15, mtop=33, scale_note="no group scale", wdesc="fp16 weight (raw bits)",
        meta_note="always ready: every beat is accepted and discarded (fp16 weights carry\n        no "
                  "group scale; a host may send the engine's one beat per group per tile, or none)",
        meta_fields="all ignored", golden="``sw.baselines.fp16_mac_gemv(w, x, L)``"))
    row_class = Fp16MacRow




# ============================================================================== FP16 x INT8
def _check_pos(name: str, value, owner: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name}={value!r} must be a positive integer")


def _check_guard_bits(guard_bits, owner: str) -> None:
    if isinstance(guard_bits, bool) or not isinstance(guard_bits, int) or not 0 <= guard_bits <= 16:
        raise ValueError(f"{owner}: guard_bits={guard_bits!r} must be an int in 0..16")


#: widest group sum the rescale unit's fp32 converter takes (``psum_bits + 12 <= 54``)
MAX_INT8_PSUM_BITS = 42


class Int8ActAlign(wiring.Component):
    """FP16xINT8 baseline: fp16 activation decode and the running block exponent, shared by
    the ``R`` rows (one per engine, like bitmix's activation front end but with no buffer).

    Ports
    -----
    x : In(lanes*16)
        the step's fp16 activations, lane ``l`` at ``[16l+15:16l]`` (finite; an exponent field
        31 is aligned as if it were a normal exponent, as in the bitmix engine).
    en : In(1), first : In(1)
        ``en``: a step is taken (the block exponent register updates); ``first``: the group's
        first step (the running maximum restarts).
    sx : Out(lanes*12)
        lane ``l`` at ``[12l+11:12l]``: ``±sig`` (two's complement, 12 bits), ``sig = (e != 0)
        << 10 | frac``.
    d : Out(lanes*5)
        lane ``l`` at ``[5l+4:5l]``: ``E_s - e'`` (0..30), ``e' = max(e, 1)``.
    da : Out(5)
        ``E_s - E_{s-1}`` (0..30): how far the rows' block accumulators shift right this step
        (``E_s`` itself with ``first``, where the rows ignore it).
    e : Out(5)
        ``E_s = max(first ? 0 : E_{s-1}, max_l e')``, the block exponent after this step.

    Latency: all outputs combinational from ``x``, ``first`` and the 5-bit register ``E_{s-1}``,
    which takes ``e`` on a clock edge with ``en`` and holds otherwise (stall). Reset: ``E = 0``.
    """

    def __init__(self, *, lanes: int):
        _check_pos("lanes", lanes, "Int8ActAlign")
        self.lanes = lanes
        super().__init__({"x": In(lanes * 16), "en": In(1), "first": In(1), "sx": Out(lanes * 12),
                          "d": Out(lanes * 5), "da": Out(5), "e": Out(5)})

    def elaborate(self, platform):
        m = Module()
        L = self.lanes
        effs = []
        for l in range(L):
            v = self.x[16 * l:16 * l + 16]
            exp, frac = v[10:15], v[:10]
            eff = Signal(5, name=f"eff{l}")
            sig = Signal(11, name=f"sig{l}")
            m.d.comb += [eff.eq(Mux(exp == 0, 1, exp)), sig.eq(Cat(frac, exp != 0)),
                         self.sx[12 * l:12 * l + 12].eq(Mux(v[15], -sig, sig))]
            effs.append(eff)
        vals = list(effs)
        lvl = 0
        while len(vals) > 1:                                  # balanced max tree
            nxt = []
            for i in range(0, len(vals) - 1, 2):
                mx = Signal(5, name=f"emax_l{lvl}_{i // 2}")
                m.d.comb += mx.eq(Mux(vals[i] > vals[i + 1], vals[i], vals[i + 1]))
                nxt.append(mx)
            if len(vals) % 2:
                nxt.append(vals[-1])
            vals, lvl = nxt, lvl + 1
        e_reg = Signal(5)
        prev = Signal(5)
        m.d.comb += [prev.eq(Mux(self.first, 0, e_reg)),
                     self.e.eq(Mux(vals[0] > prev, vals[0], prev)),
                     self.da.eq(self.e - prev)]
        for l in range(L):
            m.d.comb += self.d[5 * l:5 * l + 5].eq(self.e - effs[l])
        with m.If(self.en):
            m.d.sync += e_reg.eq(self.e)
        return m


class Fp16Int8Row(wiring.Component):
    """One row of the FP16xINT8 baseline: ``lanes`` 8x12-bit signed multipliers (exact 19-bit
    products), alignment shifters, an exact adder tree and a block-floating-point group sum.

    Ports
    -----
    sx : In(lanes*12), d : In(lanes*5), da : In(5)
        from :class:`Int8ActAlign` (shared by the rows): signed significands, per-lane
        alignment shifts, accumulator shift.
    w : In(lanes*8)
        int8 codes (two's complement), lane ``l`` at ``[8l+7:8l]``.
    en : In(1), first : In(1)
        take a step; with ``first`` the group sum restarts.
    psum : Out(signed(psum_bits))
        the group sum ``P`` (``psum_bits = sw.baselines.int8_psum_bits(group_size,
        guard_bits)``), registered: ``P <= T`` (``first``) or ``P <= (P >>> da) + T`` with
        ``T = sum_l ((w_l * sx_l) << guard_bits) >>> d_l`` (``>>>``: arithmetic shift = floor).

    Latency: ``psum`` reflects a step one clock edge after its ``en`` cycle; combinational path
    multiplier -> shifter -> adder tree -> accumulator adder, as bitmix's PE (decoder ->
    shifter -> tree -> group sum). With ``en`` low ``psum`` holds (stall). Reset: ``psum = 0``.
    """

    code_bits = INT8_CODE_BITS

    def __init__(self, *, lanes: int, group_size: int, guard_bits: int = GUARD_BITS):
        _check_pos("lanes", lanes, "Fp16Int8Row")
        _check_pos("group_size", group_size, "Fp16Int8Row")
        _check_guard_bits(guard_bits, "Fp16Int8Row")
        if group_size % lanes:
            raise ValueError(f"Fp16Int8Row: group_size={group_size} is not a multiple of lanes={lanes}")
        self.lanes, self.group_size, self.guard_bits = lanes, group_size, guard_bits
        self.psum_bits = int8_psum_bits(group_size, guard_bits)
        super().__init__({"sx": In(lanes * 12), "d": In(lanes * 5), "da": In(5), "w": In(lanes * 8),
                          "en": In(1), "first": In(1), "psum": Out(signed(self.psum_bits))})

    def elaborate(self, platform):
        m = Module()
        L, F = self.lanes, self.guard_bits
        aw = 19 + F
        vals = []
        for l in range(L):
            p = Signal(signed(19), name=f"prod{l}")
            a = Signal(signed(aw), name=f"al{l}")
            m.d.comb += [p.eq(self.w[8 * l:8 * l + 8].as_signed() * self.sx[12 * l:12 * l + 12].as_signed()),
                         a.eq((p << F) >> self.d[5 * l:5 * l + 5])]
            vals.append(a)
        width, lvl = aw, 0
        while len(vals) > 1:                                  # balanced, exact adder tree
            width += 1
            nxt = []
            for i in range(0, len(vals) - 1, 2):
                t = Signal(signed(width), name=f"tree_l{lvl}_{i // 2}")
                m.d.comb += t.eq(vals[i] + vals[i + 1])
                nxt.append(t)
            if len(vals) % 2:
                nxt.append(vals[-1])
            vals, lvl = nxt, lvl + 1
        with m.If(self.en):
            with m.If(self.first):
                m.d.sync += self.psum.eq(vals[0])
            with m.Else():
                m.d.sync += self.psum.eq((self.psum >> self.da) + vals[0])
        return m


class Int8GroupRescale(wiring.Component):
    """The bitmix engine's shared rescale unit (:class:`rtl.rescale.RescaleUnit`, reused as is)
    for the FP16xINT8 baseline: fp16 scales only, no zero point (``zpc = 0``, ``sum_a = 0``,
    ``unit = 0`` tied off, so synthesis removes the zero-point multiplier).

    Ports
    -----
    start : In(1), psum : In(R x signed(psum_bits)), ea : In(signed(8)), last : In(1),
    scale : In(R x 16), ready : Out(1), done : Out(1), result : Out(R x 32)
        as :class:`rtl.rescale.RescaleUnit` (``ea`` the group sums' unit exponent; ``scale``
        raw fp16 bits, stable from ``start`` until ``ready``).

    Latency: ``R`` issue cycles into the 5-stage pipeline, ``done`` ``R + 5`` cycles after
    ``start``; stalls are the caller's (start only when ``ready``). Reset: the unit's.
    """

    def __init__(self, *, rows: int, psum_bits: int):
        _check_pos("rows", rows, "Int8GroupRescale")
        if isinstance(psum_bits, bool) or not isinstance(psum_bits, int) or not 2 <= psum_bits <= MAX_INT8_PSUM_BITS:
            raise ValueError(f"Int8GroupRescale: psum_bits={psum_bits!r} must be an int in 2..{MAX_INT8_PSUM_BITS} "
                             "(the rescale unit's fp32 converter takes at most 54 bits)")
        self.rows, self.psum_bits = rows, psum_bits
        super().__init__({
            "start": In(1), "psum": In(data.ArrayLayout(signed(psum_bits), rows)), "ea": In(signed(8)),
            "last": In(1), "scale": In(data.ArrayLayout(16, rows)),
            "ready": Out(1), "done": Out(1), "result": Out(data.ArrayLayout(32, rows)),
        })

    def elaborate(self, platform):
        m = Module()
        R = self.rows
        ru = m.submodules.unit = RescaleUnit(["fp16"], R, self.psum_bits, 2, 2)
        m.d.comb += [ru.start.eq(self.start), ru.ea.eq(self.ea), ru.last.eq(self.last), ru.sum_a.eq(0),
                     ru.unit.eq(0), ru.scale_fmt.eq(0), self.ready.eq(ru.ready), self.done.eq(ru.done)]
        for r in range(R):
            m.d.comb += [ru.psum[r].eq(self.psum[r]), ru.scale[r].eq(self.scale[r]), ru.zpc[r].eq(0),
                         self.result[r].eq(ru.result[r])]
        return m


class Fp16Int8Engine(wiring.Component):
    """FP16 x INT8 baseline, the lean ``fma_int8`` design: ``R`` rows x ``L`` lanes of exact
    ``int8 x ±sig11`` products (:class:`Fp16Int8Row`), one shared :class:`Int8ActAlign` and one
    shared rescale unit (:class:`Int8GroupRescale` = :class:`rtl.rescale.RescaleUnit`).

    Why this is what a competent designer builds for int8 weights with fp16 group scales: an
    int8 weight has no exponent, so the product's exponent is the activation's alone -- the
    same for every row. The fp16 activation is therefore split once (shared) into sign,
    11-bit significand and exponent; each lane multiplies the int8 code by the signed
    significand exactly (8x12 bits, no rounding, no per-weight dequantization), shifts the
    product to the group's running block exponent (shift amounts shared by the rows), and an
    integer adder tree plus one block accumulator per row form the group sum; the group scale
    is applied once per group, one row per cycle, in the pipelined rescale unit the bitmix
    engine uses, with fp32 RNE accumulation. No fp adder runs per lane or per weight.

    Constructor: ``Fp16Int8Engine(cfg, *, guard_bits=sw.baselines.GUARD_BITS)``; ``guard_bits``
    (``F``, 0..16) fraction bits kept below each aligned product, group sum width
    ``int8_psum_bits(G, F)`` (at most 42).

    Streams (``amaranth.lib.stream``; a beat moves on a rising edge with ``valid & ready``;
    a source holds ``payload`` stable and ``valid`` high until then) -- identical to
    :class:`rtl.engine.Engine` for the same config, with ``B = 8``:

    cmd : In(``cmd_layout(cfg)``), one beat per tile of ``R`` outputs
        ``n_groups`` (``K = n_groups * G``, 1..``max_groups``) is used; ``fmt`` and
        ``scale_fmt`` are accepted and ignored (int8 weights, fp16 scales).
    act : In(``act_layout(L, "fp16")``), ``K/L`` beats per tile (``emax`` ignored)
        lane ``l`` at ``[16l+15:16l]``: the fp16 activation of input ``k = s*L + l`` (beat
        ``s``), finite. Re-sent for every tile.
    wgt : In(``R*L*8``), ``K/L`` beats per tile
        the int8 code (two's complement, ``sw.quantize(w, 'int8')``) of (row ``r``, input
        ``s*L + l``) at ``[(rL+l)8 + 7 : (rL+l)8]``.
    meta : In(``R x 26``), one beat per group per tile, taken with the group's first ``wgt`` beat
        row ``r`` at ``[26r + 25 : 26r]``: ``scale`` [15:0] the row's fp16 group scale (finite),
        ``sel`` [17:16] and ``zp`` [25:18] ignored.
    res : Out(``R*32``), one beat per tile
        row ``r``'s fp32 result at ``[32r+31:32r]``, equal bit for bit to
        ``sw.baselines.fp16_int8_gemv(q, x, L, guard_bits=F)``.

    Cycle model: one ``act`` and one ``wgt`` beat per cycle (all ``R x L`` lanes multiply),
    one cycle to take each command; the rows' group sums go to the rescale unit the cycle
    after a group's last step and it works ``R`` cycles on them while the rows compute the
    next group; as in the bitmix engine the unit is free again ``R + 2`` cycles after a group
    end, so a group of fewer than ``R + 2`` steps (``G/L < R + 2``) waits at its end. Back to
    back, ``T`` tiles take ``T (K/L + 1) + R + 6`` cycles from the first command to the last
    result (``sw.baselines.int8_gemv_cycles``, for ``G/L >= R + 2``).

    Latency: ``res.valid`` rises ``R + 6`` clock edges after the edge that moves the tile's last
    ``act``/``wgt`` beat. A tile's last group waits at its last step while the previous
    tile's result is still pending or not taken.

    Stalls and reset: any input may stall at any time and ``res`` may be back-pressured; the
    engine then waits without losing state. A synchronous, active-high reset clears the state
    (group sums 0, block exponent 0, rescale unit idle and its accumulators +0.0, no result
    pending, no tile in flight); after it, start again with a command.
    """

    def __init__(self, cfg, *, guard_bits: int = GUARD_BITS):
        _check_guard_bits(guard_bits, "Fp16Int8Engine")
        if cfg.group_size % cfg.lanes:
            raise ValueError(f"Fp16Int8Engine: group_size={cfg.group_size} is not a multiple of lanes={cfg.lanes}")
        pb = int8_psum_bits(cfg.group_size, guard_bits)
        if pb > MAX_INT8_PSUM_BITS:
            raise ValueError(f"Fp16Int8Engine: group_size={cfg.group_size} with guard_bits={guard_bits} needs a "
                             f"{pb}-bit group sum; the rescale unit takes at most {MAX_INT8_PSUM_BITS}")
        self.cfg, self.guard_bits, self.psum_bits = cfg, guard_bits, pb
        self.code_bits = INT8_CODE_BITS
        super().__init__(engine_ports(cfg, INT8_CODE_BITS))

    def elaborate(self, platform):
        cfg = self.cfg
        R, L, B, S, F = cfg.rows, cfg.lanes, INT8_CODE_BITS, cfg.steps_per_group, self.guard_bits
        m = Module()

        # ------------------------------------------------------------ command / tile state
        active = Signal()
        n_groups = Signal.like(self.cmd.payload.n_groups)
        g = Signal(range(cfg.max_groups + 1))
        s = Signal(range(max(2, S)))
        with m.If(~active):
            m.d.comb += self.cmd.ready.eq(1)
            with m.If(self.cmd.valid):
                m.d.sync += [active.eq(1), n_groups.eq(self.cmd.payload.n_groups), g.eq(0), s.eq(0)]
        group_start = s == 0
        last_step = s == S - 1

        # ------------------------------------------------------------ group scales
        meta_r = Signal(data.ArrayLayout(16, R))
        scale_cur = Signal(data.ArrayLayout(16, R))
        for r in range(R):
            m.d.comb += scale_cur[r].eq(Mux(group_start, self.meta.payload[r].scale, meta_r[r]))

        # ------------------------------------------------------------ rescale hand-off
        load = Signal()                 # the rescale unit takes the group finished last cycle
        last_r = Signal()
        ea_r = Signal(signed(8))
        scale_r = Signal(data.ArrayLayout(16, R))
        ru = m.submodules.rescale = Int8GroupRescale(rows=R, psum_bits=self.psum_bits)
        res_valid = Signal()
        res_pending = Signal()          # a last group is in the rescale unit: its results are coming
        res_free = (~res_valid | self.res.ready) & ~res_pending
        resc_free = ru.ready & ~load & (~(g == n_groups - 1) | res_free)

        # ------------------------------------------------------------ the step
        go = Signal()
        m.d.comb += go.eq(active & self.act.valid & self.wgt.valid & (~group_start | self.meta.valid)
                          & (~last_step | resc_free))
        al = m.submodules.align = Int8ActAlign(lanes=L)
        m.d.comb += [al.x.eq(self.act.payload.x), al.en.eq(go), al.first.eq(group_start)]
        rows = []
        for r in range(R):
            row = m.submodules[f"row{r}"] = Fp16Int8Row(lanes=L, group_size=cfg.group_size, guard_bits=F)
            rows.append(row)
            m.d.comb += [row.sx.eq(al.sx), row.d.eq(al.d), row.da.eq(al.da),
                         row.w.eq(self.wgt.payload[r * L * B:(r + 1) * L * B]),
                         row.en.eq(go), row.first.eq(group_start)]

        with m.If(go):
            m.d.comb += [self.act.ready.eq(1), self.wgt.ready.eq(1)]
            m.d.sync += s.eq(s + 1)
            with m.If(group_start):
                m.d.comb += self.meta.ready.eq(1)
                m.d.sync += [meta_r[r].eq(self.meta.payload[r].scale) for r in range(R)]
            with m.If(last_step):
                m.d.sync += [s.eq(0), g.eq(g + 1), last_r.eq(g == n_groups - 1),
                             ea_r.eq(al.e - (25 + F)), scale_r.eq(scale_cur)]
                with m.If(g == n_groups - 1):
                    m.d.sync += [active.eq(0), g.eq(0)]
        m.d.sync += load.eq(go & last_step)

        m.d.comb += [ru.start.eq(load), ru.ea.eq(ea_r), ru.last.eq(last_r)]
        for r in range(R):
            m.d.comb += [ru.psum[r].eq(rows[r].psum), ru.scale[r].eq(scale_r[r])]

        # ------------------------------------------------------------ results
        m.d.comb += [self.res.valid.eq(res_valid), self.res.payload.eq(ru.result)]
        with m.If(self.res.ready):
            m.d.sync += res_valid.eq(0)
        with m.If(ru.done):
            m.d.sync += [res_valid.eq(1), res_pending.eq(0)]
        with m.If(load & last_r):
            m.d.sync += res_pending.eq(1)
        return m
