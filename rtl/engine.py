"""The bitmix engine: R rows x L lanes of bit-serial PEs behind one activation front end."""
from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sw import terms as T
from sw.weight_stream import is_split

from .act_frontend import ActFrontEnd, act_layout
from .pe import BitSerialPE, ParallelPE
from .rescale import RescaleUnit
from .weight_port import WeightPort


def cmd_layout(cfg) -> data.StructLayout:
    return data.StructLayout({
        "fmt": range(max(2, len(cfg.formats))),
        "scale_fmt": range(max(2, len(cfg.scale_formats))),
        "n_groups": range(cfg.max_groups + 1),
    })


def meta_layout(cfg) -> data.StructLayout:
    return data.StructLayout({"scale": 16, "sel": 2, "zp": cfg.code_bits})


def sum_bits(cfg) -> int:
    return cfg.act_bits + max(1, (cfg.group_size - 1).bit_length()) + 1


def zpc_bits(cfg) -> int:
    """Width of a zero-point offset ``z - 2^(b-1)``: ``b`` of the widest asymmetric format (2 if none)."""
    return max([2] + [T.code_bits(f) for f in cfg.formats if T.is_asym(f)])


class Engine(wiring.Component):
    """GEMV engine ``y = W x`` built from a :class:`gen.config.EngineConfig`.

    One *command* computes ``R`` outputs (one *tile*: weight rows ``r = 0..R-1``) over
    ``K = n_groups * G`` inputs. Streams (``amaranth.lib.stream``: a beat transfers when
    ``valid & ready``; ``payload`` is stable while ``valid & ~ready``):

    cmd : In, one beat per tile
        ``fmt`` (index into ``cfg.formats``), ``scale_fmt`` (index into
        ``cfg.scale_formats``), ``n_groups`` (1..``max_groups``).
    act : In, ``L x 16`` bits, ``K/L`` beats per tile
        lane ``l`` at bits ``[16l+15:16l]``: an fp16, or an int8 in bits [7:0] (``act_mode``).
        Beat ``s`` of a tile carries inputs ``k = s*L .. s*L + L-1``. The vector is re-sent for
        every tile.
    wgt : In, ``R x W`` bits (``W = cfg.word_bits = 8L``), the packed weights
        row ``r``'s next word of its packed stream (the ``sw.pack`` memory image: ``W/8`` bytes,
        little-endian) at bits ``[r*W + W-1 : r*W]``, so the stream carries the format's element
        bits per weight (4 for INT4/FP4/BitMoD4, 3 for the 3-bit formats, 6 for FP6 in the 4+2
        split, 8 for INT8); ``K * bits / W`` beats per tile, schedule and layout in
        :class:`rtl.weight_port.WeightPort` (``sw.weight_stream.tile_words`` builds them). Words are
        taken only while a tile is active (after its command) and never past the tile's last word.
    meta : In, ``R x (16 + 2 + B)`` bits, one beat per group per tile
        row ``r`` at bits ``[r*(18+B) + 17+B : r*(18+B)]``: ``scale`` (raw fp16/bf16 bits, or
        e8m0 in [7:0]) in the low 16 bits, then the BitMoD ``sel`` (2 bits), then the zero
        point ``zp`` (asymmetric INT; B bits).
    res : Out, ``R x 32`` bits, one beat per tile
        row ``r``'s fp32 result at bits ``[32r+31:32r]``, equal bit for bit to
        ``sw.datapath.gemv``.

    Throughput: ``terms(fmt)`` cycles per ``wgt`` beat when every input stream keeps up, i.e.
    ``K/L * terms`` cycles per tile plus one cycle to take the next command; the shared rescale
    unit (:class:`rtl.rescale.RescaleUnit`, one row per cycle) works on a group's R sums while
    the PEs compute the next group, so the PEs wait at a group end only when a group takes
    fewer than R cycles. Any stream may stall at any
    time; the engine then waits. Reset (synchronous, active high) drops all state: after it,
    start again with a command and the first beats of a tile.
    """

    def __init__(self, cfg, pe: str = "bitserial"):
        if pe not in ("bitserial", "parallel"):
            raise ValueError(f"pe={pe!r}; choose 'bitserial' or 'parallel' (the bit-parallel baseline)")
        self.cfg = cfg
        self.pe_kind = pe
        R, L = cfg.rows, cfg.lanes
        cfg.check_weight_stream()
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout(cfg))),
            "act": In(stream.Signature(act_layout(L, cfg.act_mode))),
            "wgt": In(stream.Signature(R * cfg.word_bits)),
            "meta": In(stream.Signature(data.ArrayLayout(meta_layout(cfg), R))),
            "res": Out(stream.Signature(R * 32)),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        R, L, B, S = cfg.rows, cfg.lanes, cfg.code_bits, cfg.steps_per_group
        m = Module()

        fe = m.submodules.frontend = ActFrontEnd(lanes=L, group_size=cfg.group_size, act_bits=cfg.act_bits,
                                                 mode=cfg.act_mode)
        wiring.connect(m, wiring.flipped(self.act), fe.act)
        al = fe.aligned
        wp = m.submodules.weight_port = WeightPort.for_config(cfg, word_bits=cfg.word_bits)
        wgt = wp.wgt

        # ---------------------------------------------------------------- command / tile state
        active = Signal()
        fmt = Signal.like(self.cmd.payload.fmt)
        sfmt = Signal.like(self.cmd.payload.scale_fmt)
        n_groups = Signal.like(self.cmd.payload.n_groups)
        g = Signal(range(cfg.max_groups + 1))
        s = Signal(range(max(2, S)))
        t = Signal(range(max(2, cfg.max_terms)))
        with m.If(~active):
            m.d.comb += self.cmd.ready.eq(1)
            with m.If(self.cmd.valid):
                p = self.cmd.payload
                m.d.sync += [active.eq(1), fmt.eq(p.fmt), sfmt.eq(p.scale_fmt),
                             n_groups.eq(p.n_groups), g.eq(0), s.eq(0), t.eq(0)]

        # per-format constants
        terms_of = (lambda f: 1) if self.pe_kind == "parallel" else T.terms
        n_terms = Array(Const(terms_of(f), range(cfg.max_terms + 1)) for f in cfg.formats)[fmt]
        unit = Array(Const(T.unit_exp(f), 4) for f in cfg.formats)[fmt]
        asym = [(i, T.code_bits(f)) for i, f in enumerate(cfg.formats) if T.is_asym(f)]

        def zp_offset(zp):
            """``z - 2^(b-1)`` of the asymmetric format's ``b``-bit zero point: its MSB inverted, read
            as a signed ``b``-bit number (bits of ``zp`` above ``b`` ignored); 0 for other formats."""
            out = Signal(signed(zpc_bits(cfg)))
            with m.Switch(fmt):
                for i, b in asym:
                    with m.Case(i):
                        m.d.comb += out.eq(Cat(zp[:b - 1], ~zp[b - 1]).as_signed())
            return out

        # ---------------------------------------------------------------- metadata of the group
        # The group's meta beat is read in place for the whole group (a stream source holds its
        # payload until the beat is taken) and taken at the group's last step: no copy of it.
        group_start = (s == 0) & (t == 0)
        meta_cur = self.meta.payload

        # ---------------------------------------------------------------- rescale hand-off
        # At a group's last step the rescale unit captures every row's next psum (the PE's sum
        # including this cycle's term), the group's scales and zero points from the meta beat
        # being taken, and the activation sum and block exponent from the act beat being taken.
        ru = m.submodules.rescale = RescaleUnit(cfg.scale_formats, R, cfg.psum_width, sum_bits(cfg),
                                                zpc_bits(cfg), result_registers=False)
        res_valid = Signal()
        res_pending = Signal()     # a last group is in the rescale unit: its results are coming
        res_free = (~res_valid | self.res.ready) & ~res_pending
        # the first group of a tile restarts the accumulators, which are also the result
        # registers, so the previous tile's result must be taken (or be taken this cycle)
        resc_free = ru.ready & (~(g == 0) | res_free)

        # ---------------------------------------------------------------- the step
        last_term = t == n_terms - 1
        last_step = s == S - 1
        group_end = last_term & last_step
        inputs_ok = al.valid & wgt.valid & self.meta.valid
        go = Signal()
        m.d.comb += go.eq(active & inputs_ok & (~group_end | resc_free))

        pes = []
        for r in range(R):
            pe_cls = ParallelPE if self.pe_kind == "parallel" else BitSerialPE
            pe = pe_cls(cfg.formats, L, cfg.act_bits, B, cfg.max_terms, cfg.shift_bits, cfg.psum_width)
            m.submodules[f"pe{r}"] = pe
            pes.append(pe)
            m.d.comb += [
                pe.mant.eq(al.payload.mant),
                pe.codes.eq(wgt.payload[r * L * B:(r + 1) * L * B]),
                pe.fmt.eq(fmt),
                pe.sel.eq(meta_cur[r].sel),
                pe.term.eq(t),
                pe.en.eq(go),
                pe.first.eq(group_start),
            ]

        with m.If(go):
            m.d.sync += t.eq(t + 1)
            with m.If(last_term):
                m.d.comb += [al.ready.eq(1), wgt.ready.eq(1)]
                m.d.sync += [t.eq(0), s.eq(s + 1)]
                with m.If(last_step):
                    m.d.comb += self.meta.ready.eq(1)
                    m.d.sync += [s.eq(0), g.eq(g + 1)]
                    with m.If(g == n_groups - 1):
                        m.d.sync += [active.eq(0), g.eq(0)]
        start = go & group_end

        # ---------------------------------------------------------------- packed weights in
        # The port unpacks the tile's words for the latched format, reading each word in place. It
        # is offered words only while the tile is active, and not in the tile's last step when the
        # format is a 6-bit one: that beat comes from the port's flops, and the port would load the
        # next block's seg2 word with it, which belongs to the next tile (whose format is not
        # known yet); the next tile then starts with that load (one cycle).
        split = Array(Const(int(is_split(f)), 1) for f in cfg.formats)[fmt]
        take_words = active & ~((g == n_groups - 1) & last_step & split)
        m.d.comb += [
            wp.fmt.eq(fmt),
            wp.words.payload.eq(self.wgt.payload),
            wp.words.valid.eq(self.wgt.valid & take_words),
            self.wgt.ready.eq(wp.words.ready & take_words),
        ]
        m.d.comb += [
            ru.start.eq(start),
            ru.sum_a.eq(al.payload.sum_a),
            ru.ea.eq(al.payload.ea),
            ru.unit.eq(unit),
            ru.scale_fmt.eq(sfmt),
            ru.last.eq(g == n_groups - 1),
        ]
        for r in range(R):
            m.d.comb += [ru.psum[r].eq(pes[r].psum_next), ru.scale[r].eq(meta_cur[r].scale),
                         ru.zpc[r].eq(zp_offset(meta_cur[r].zp))]

        # ---------------------------------------------------------------- results
        m.d.comb += [self.res.valid.eq(res_valid), self.res.payload.eq(ru.result)]
        with m.If(self.res.ready):
            m.d.sync += res_valid.eq(0)
        with m.If(ru.done):
            m.d.sync += [res_valid.eq(1), res_pending.eq(0)]
        with m.If(start & (g == n_groups - 1)):
            m.d.sync += res_pending.eq(1)
        return m
