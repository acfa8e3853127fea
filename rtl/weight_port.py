"""Weight port: packed weight words (``sw.weight_stream``) in, the engine's ``wgt`` beats out, read in place."""
from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sw import terms as T
from sw import weight_stream as WS

from .fp6_unpack import crumb_slice, nibble_slice

__all__ = ["WeightPort", "Phase", "FormatPlan", "format_plan", "msb_first_bits"]


def msb_first_bits(i: int, b: int) -> list[int]:
    """Beat bit positions of element ``i``'s code bits ``0 .. b-1`` in an MSB-first stream.

    The beat is the stream's bytes little-endian from a byte boundary; stream bit ``p`` (``p = 0``
    the most significant bit of element 0) sits at ``8*(p//8) + 7 - p%8``. For ``b`` = 2 and 4
    this is :func:`rtl.fp6_unpack.crumb_slice` / :func:`rtl.fp6_unpack.nibble_slice`.
    """
    return [8 * (p // 8) + 7 - p % 8 for p in (b * i + (b - 1 - j) for j in range(b))]


@dataclass(frozen=True)
class Phase:
    """One step of a format's schedule (one value of the shared phase counter).

    ``main`` / ``crumb``: the beat's bits of the main stream (``codes`` or ``seg4``) and of the
    ``seg2`` crumbs, LSB first, as pieces ``("word", lo, hi)`` (the offered word, read in place)
    or ``("flops", lo, hi)``; ``main`` empty: no beat (the FP6 ``seg2`` load). ``needs_word``: the
    beat reads the offered word. ``take``: when the word is taken: ``"load"`` (as soon as offered,
    no beat), ``"beat"`` (with the beat), ``"opt"`` (with the beat if one is offered) or ``""``.
    ``save``: ``((flop_lo, src, lo, hi), ...)``, bits ``[lo, hi)`` of the word (``src = "word"``) or
    of the flops (``"flops"``, their value before the take) written to the flops from ``flop_lo``
    when the word is taken.
    ``next``: the phase after the beat (or the load); ``"opt"`` goes to ``next`` with a word and to
    0 without."""
    main: tuple
    crumb: tuple
    needs_word: bool
    take: str
    save: tuple
    next: int


@dataclass(frozen=True)
class FormatPlan:
    """How the port reads one format with ``W = 8L``: its schedule and flop bits per row."""
    fmt: str
    split: bool
    main_bits: int      # element bits of the main stream (``codes``, or ``seg4`` for the split)
    order: str          # bit order of the main stream
    phases: tuple
    flop_bits: int
    terms: int


def _plain_phases(b: int, L: int, W: int) -> tuple[tuple, int]:
    """One stream of ``b``-bit elements: beats of ``L*b`` bits cut from words of ``W`` bits, over a
    period of ``lcm(W, L*b)`` bits. A beat inside a word reads it in place; the word is taken with
    the last beat that ends in it, keeping its top bits in the flops when the next beat straddles
    into the next word. Returns the phases and the flop bits (the longest such tail)."""
    beat = L * b
    n = math.lcm(W, beat) // beat
    tails = []
    for j in range(n):
        s, e = j * beat, (j + 1) * beat
        if s // W != (e - 1) // W:
            tails.append(W - s % W)
    tb = max(tails, default=0)
    phases = []
    for j in range(n):
        s, e = j * beat, (j + 1) * beat
        w1 = (e - 1) // W
        if s // W == w1:
            main = (("word", s - w1 * W, e - w1 * W),)
        else:
            t = W - s % W
            main = (("flops", tb - t, tb), ("word", 0, e - w1 * W))
        last = j == n - 1 or ((j + 2) * beat - 1) // W != w1
        nxt_straddles = last and j < n - 1 and ((j + 1) * beat) // W == w1
        phases.append(Phase(main, (), True, "beat" if last else "",
                            ((0, "word", W - tb, W),) if nxt_straddles else (), (j + 1) % n))
    return tuple(phases), tb


def _split_phases(L: int, W: int) -> tuple:
    """FP6 4+2 split, ``W = 8L``: per block of ``4L`` weights the ``seg2`` word (4 beats of crumbs)
    is loaded into the flops, the two ``seg4`` words (2 beats each) are read in place. With the
    block's third beat the second ``seg4`` word's upper half goes to the flops' upper half, where
    it lies in the word (no mux), after the fourth beat's crumbs move down to the first beat's
    (used) place; so the fourth beat is all flops and the next block's ``seg2`` word loads with it."""
    c, h = 2 * L, 4 * L
    load = ((0, "word", 0, W),)
    return (
        Phase((), (), True, "load", load, 1),
        Phase((("word", 0, h),), (("flops", 0, c),), True, "", (), 2),
        Phase((("word", h, W),), (("flops", c, 2 * c),), True, "beat", (), 3),
        Phase((("word", 0, h),), (("flops", 2 * c, 3 * c),), True, "beat",
              ((h, "word", h, W), (0, "flops", 3 * c, 4 * c)), 4),
        Phase((("flops", h, W),), (("flops", 0, c),), False, "opt", load, 1),
    )


def format_plan(fmt: str, lanes: int) -> FormatPlan:
    """The schedule of ``fmt`` with ``L = lanes`` and ``W = 8L``."""
    W = WS.default_word_bits(lanes)
    segs = WS.segments(fmt)
    main = segs[-1]
    if len(segs) > 1:
        return FormatPlan(fmt, True, main.bits, main.order, _split_phases(lanes, W), W, T.terms(fmt))
    phases, tb = _plain_phases(main.bits, lanes, W)
    return FormatPlan(fmt, False, main.bits, main.order, phases, tb, T.terms(fmt))


def _any(terms: list):
    """The OR of ``terms`` (a 1-bit 0 for none)."""
    if not terms:
        return Const(0, 1)
    out = terms[0]
    for t in terms[1:]:
        out = out | t
    return out


def _window_offsets(plan: FormatPlan, L: int) -> list[int]:
    """Per phase of a plain format, the start of its beat in ``V = Cat(flops, word)`` (the format's
    ``flop_bits`` first), in ``L``-bit chunks."""
    out = []
    for s in plan.phases:
        lo = s.main[0][1] + (plan.flop_bits if s.main[0][0] == "word" else 0)
        assert lo % L == 0
        out.append(lo // L)
    return out


def _window(v, sh, width: int, chunk: int):
    """``v[sh*chunk : sh*chunk + width]`` (zeros past ``v``), one 2:1 mux stage per bit of ``sh``."""
    x = v
    for b in reversed(range(len(sh))):
        step = (1 << b) * chunk
        w = width + ((1 << b) - 1) * chunk          # what the stages below still need
        x = Cat(x, Const(0, max(0, step + w - len(x))))
        x = Mux(sh[b], x[step:step + w], x[:w])
    return x[:width]


class WeightPort(wiring.Component):
    """Turns the packed weight stream into the engine's ``wgt`` beats, for the format on ``fmt``,
    reading each offered word in place.

    Parameters (keyword-only)
    ----------
    formats : the engine's formats (``sw.terms.HW_FORMATS`` names); ``fmt`` indexes them
    rows, lanes, group_size : ``R``, ``L``, ``G`` of the engine
    word_bits : ``W``, bits per row per ``words`` beat; ``None`` or ``8 * L``
        (:func:`sw.weight_stream.default_word_bits`), the only width the port reads in place

    Legal geometry (else ``ValueError``, see :func:`sw.weight_stream.check_geometry`): for every
    stream of ``b``-bit elements of every format, ``L*b`` a multiple of 8 (a beat is whole bytes:
    ``L`` even for 4-bit, a multiple of 4 for 6-bit (2-bit crumbs), of 8 for 3-bit formats) and
    ``G*b`` a multiple of ``W`` (every tile starts on a word; with ``G`` a multiple of ``L`` a tile
    is then whole schedule periods, so the phase counter is 0 at every tile boundary).

    Ports (flattened Verilog names in brackets)
    -----
    fmt : In(range(max(2, len(formats))))                    [fmt]
        The format of the current tile (index into ``formats``). Hold it from before the tile's
        first word is offered until its last ``wgt`` beat is taken; change it only while ``idle``.
        An index past the formats holds both streams (``words.ready`` and ``wgt.valid`` low).
    words : In(stream.Signature(R*W))                        [words__payload, __valid, __ready]
        Row ``r``'s next word at bits ``[r*W + W-1 : r*W]``: ``W/8 = L`` bytes of the row's packed
        stream (``sw.pack``), byte ``j`` at bits ``[8j+7:8j]``. Schedule: the row's words in stream
        order; for 6-bit formats (4+2 split) per block of ``4L`` weights the block's ``seg2`` word,
        then its two ``seg4`` words (``sw.weight_stream.tile_words`` builds the beats). The source
        must hold payload and valid until ready (the port reads the word in place).
    wgt : Out(stream.Signature(R*L*B))                       [wgt__payload, __valid, __ready]
        Exactly the engine's ``wgt`` payload: the code of weight ``(r, s*L + l)`` in slot
        ``r*L + l`` at bits ``[(r*L+l)*B + B-1 : (r*L+l)*B]``, ``B = max code bits``, zero-extended.
    idle : Out(1)                                            [idle]
        Phase counter at 0 and nothing held in the flops: a tile boundary.
    clk, rst
        The ``sync`` domain; ``rst`` (synchronous, active high) sets the phase counter to 0.

    Behaviour. A phase counter shared by the rows (:class:`Phase`; up to 8 phases, 3-bit formats)
    selects, per format, which bits of the offered word (and of the row's flops) form the beat:
    INT8 one beat per word (a wire), 4-bit two beats per word, 3-bit eight beats per three words
    (a beat that straddles two words takes the previous word's tail, ``2L`` bits, from the flops),
    6-bit four beats per block of three words (``seg2`` word in ``8L`` flops, the ``seg4`` words in
    place). Flops per row: ``8L`` with a 6-bit format, else ``2L`` with a 3-bit format, else none;
    shared by the formats (the 3-bit tail in their top ``2L`` bits, where the top of a ``seg2``
    word lands too), without reset (a phase reads only bits saved earlier in its period). Formats
    with the same schedule and bit mapping share one class (``fmt`` decodes to it); each output bit
    is an AND-OR of the (class, phase) selects that drive it.
    ``wgt.payload`` and ``wgt.valid`` are combinational from the offered word, the flops, the
    phase and ``fmt`` (no output register; they hold while ``valid & ~ready`` because the source
    holds its word); ``wgt.valid`` follows ``words.valid`` except in the FP6 phases without a word.
    ``words.ready`` is ``wgt.ready`` in a phase that takes the word with its beat (the word's last
    beat), 1 in the FP6 ``seg2`` load phase, else 0. Latency: 0 cycles (a word's first beat is on
    ``wgt`` in the cycle it is offered), except the FP6 ``seg2`` word: loaded in one cycle without a
    beat at a tile start, and with the previous block's last beat inside a tile. Throughput: every
    format keeps one beat per ``terms(fmt)`` cycles, at most one per cycle (FP6 after its tile's
    first load). Either side may stall at any time.
    """

    def __init__(self, *, formats, rows: int, lanes: int, group_size: int, word_bits: int | None = None):
        try:
            if isinstance(formats, str) or not isinstance(formats, (list, tuple)) or not formats:
                raise ValueError(f"formats={formats!r} must be a non-empty list of format names")
            for f in formats:
                if f not in T.HW_FORMATS:
                    raise ValueError(f"formats: {f!r} has no hardware decoder; choose from {', '.join(T.HW_FORMATS)}")
            if len(set(formats)) != len(formats):
                raise ValueError(f"formats={list(formats)!r} lists a format twice")
            for name, v in (("rows", rows), ("lanes", lanes), ("group_size", group_size)):
                if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                    raise ValueError(f"{name}={v!r} must be a positive int")
            if group_size % lanes:
                raise ValueError(f"group_size={group_size} is not a multiple of lanes={lanes}")
            if word_bits is None:
                word_bits = WS.default_word_bits(lanes)
            elif word_bits != WS.default_word_bits(lanes):
                raise ValueError(f"word_bits={word_bits!r}: the port reads words in place and needs "
                                 f"word_bits = 8 * lanes = {WS.default_word_bits(lanes)}")
            WS.check_geometry(formats, lanes, group_size, word_bits)
        except ValueError:
            self._MustUse__silence = True     # a rejected instance is not an "unused elaboratable"
            raise
        self.formats = tuple(formats)
        self.rows, self.lanes, self.group_size, self.word_bits = rows, lanes, group_size, word_bits
        self.code_bits = max(T.code_bits(f) for f in formats)
        self.plans = tuple(format_plan(f, lanes) for f in formats)
        self.flop_bits = max(p.flop_bits for p in self.plans)
        self.n_phases = max(len(p.phases) for p in self.plans)
        super().__init__({
            "fmt": In(range(max(2, len(formats)))),
            "words": In(stream.Signature(rows * word_bits)),
            "wgt": Out(stream.Signature(rows * lanes * self.code_bits)),
            "idle": Out(1),
        })

    @classmethod
    def for_config(cls, cfg, *, word_bits: int | None = None) -> "WeightPort":
        """The port for a :class:`gen.config.EngineConfig`-like object (formats, rows, lanes, group_size)."""
        return cls(formats=cfg.formats, rows=cfg.rows, lanes=cfg.lanes, group_size=cfg.group_size,
                   word_bits=word_bits)

    def _slot_bits(self, plan: FormatPlan, l: int, main, crumb) -> list:
        """The code bits (LSB first) of lane ``l`` from a beat's ``main`` / ``crumb`` bits."""
        if plan.split:
            lo, hi = nibble_slice(l)
            clo, chi = crumb_slice(l)
            return [main[i] for i in range(lo, hi)] + [crumb[i] for i in range(clo, chi)]
        b = plan.main_bits
        if plan.order == "lsb_first":
            return [main[b * l + j] for j in range(b)]
        return [main[i] for i in msb_first_bits(l, b)]

    def elaborate(self, platform):
        m = Module()
        R, L, B, W = self.rows, self.lanes, self.code_bits, self.word_bits

        ph = Signal(range(max(2, self.n_phases)))     # shared phase counter
        flops = [Signal(self.flop_bits, name=f"flops{r}", reset_less=True) for r in range(R)] \
            if self.flop_bits else []
        words = [self.words.payload[r * W:(r + 1) * W] for r in range(R)]

        # formats with the same schedule and bit mapping share one class: fmt -> class, then one
        # mux per slot selected by (class, phase)
        fmt_keys = [(p.split, p.main_bits, p.order) for p in self.plans]
        classes = list(dict.fromkeys(fmt_keys))
        cplans = [self.plans[fmt_keys.index(k)] for k in classes]
        cls = Signal(range(max(2, len(classes))))
        # a format with fewer flop bits than the port uses the top of the flops: the 3-bit tail,
        # the top 2L bits of a word, lands on the same flop bits as the top of an FP6 seg2 word
        off = [self.flop_bits - p.flop_bits for p in cplans]
        known = Signal()          # fmt names one of the formats (an index past them stalls both sides)
        with m.Switch(self.fmt):
            for i, k in enumerate(fmt_keys):
                with m.Case(i):
                    m.d.comb += [cls.eq(classes.index(k)), known.eq(1)]

        beat = Signal()           # this phase hands out a beat
        need = Signal()           # ... that reads the offered word
        take_load = Signal()      # the word is taken as soon as offered (no beat)
        take_beat = Signal()      # the word is taken with the beat
        opt = Signal()            # ... if offered (the beat itself is all flops)
        nxt = Signal.like(ph)
        payload = Signal(R * L * B)
        sel = [[Signal(name=f"sel{i}_{k}") for k in range(len(p.phases))] for i, p in enumerate(cplans)]
        with m.Switch(cls):
            for i, p in enumerate(cplans):
                with m.Case(i):
                    with m.Switch(ph):
                        for k, s in enumerate(p.phases):
                            with m.Case(k):
                                m.d.comb += [beat.eq(bool(s.main)), need.eq(s.needs_word),
                                             take_load.eq(s.take == "load"),
                                             take_beat.eq(s.take in ("beat", "opt")),
                                             opt.eq(s.take == "opt"), nxt.eq(s.next)]
                                m.d.comb += sel[i][k].eq(1)

        # the payload as an AND-OR: per output bit, its distinct source bits, each ANDed with the
        # OR of the (class, phase) selects that read it (a bit no select drives is 0: slots wider
        # than the format's codes); the select ORs are shared by every bit with the same set
        def bit_keys(pieces, base):
            return [(src, (base if src == "flops" else 0) + b) for src, lo, hi in pieces for b in range(lo, hi)]

        drive = [[{} for _ in range(B)] for _ in range(L)]     # the same for every row
        rot = {}            # class -> its window offset per phase (a window of V, see below)
        for i, p in enumerate(cplans):
            if not p.split and len(p.phases) > 2:
                rot[i] = _window_offsets(p, L)
                main = [("rot", (i, b)) for b in range(L * p.main_bits)]
                for l in range(L):
                    for j, key in enumerate(self._slot_bits(p, l, main, ())):
                        drive[l][j].setdefault(key, []).extend((i, k) for k in range(len(p.phases)))
                continue
            for k, s in enumerate(p.phases):
                if s.main:
                    main, crumb = bit_keys(s.main, off[i]), bit_keys(s.crumb, off[i])
                    for l in range(L):
                        for j, key in enumerate(self._slot_bits(p, l, main, crumb)):
                            drive[l][j].setdefault(key, []).append((i, k))
        # a class with many phases (3-bit: 8) reads its beat as a window of V = Cat(its flop bits,
        # the word) at a whole number of L-bit chunks, selected by a logarithmic shifter per row
        shifts = {}
        for i, offs in rot.items():
            sh = Signal(range(max(2, max(offs) + 1)), name=f"shift{i}")
            with m.Switch(ph):
                for k, o in enumerate(offs):
                    with m.Case(k):
                        m.d.comb += sh.eq(o)
            shifts[i] = sh
        windows = {}
        for r in range(R):
            for i in rot:
                p = cplans[i]
                v = Cat(flops[r][off[i]:off[i] + p.flop_bits] if p.flop_bits else Const(0, 0), words[r])
                windows[r, i] = _window(v, shifts[i], L * p.main_bits, L)

        def src_bit(r, src, b):
            if src == "rot":
                return windows[r, b[0]][b[1]]
            return (words[r] if src == "word" else flops[r])[b]

        ors = {}

        def select(pairs):
            if len(pairs) == 1:
                return sel[pairs[0][0]][pairs[0][1]]
            if tuple(pairs) not in ors:
                ors[tuple(pairs)] = Signal(name=f"sel_or{len(ors)}")
                m.d.comb += ors[tuple(pairs)].eq(_any([sel[i][k] for i, k in pairs]))
            return ors[tuple(pairs)]

        slots = []
        for r in range(R):
            for l in range(L):
                slots.append(Cat(*(_any([select(pairs) & src_bit(r, src, b)
                                         for (src, b), pairs in drive[l][j].items()]) for j in range(B))))
        m.d.comb += payload.eq(Cat(*slots))

        valid = known & beat & (~need | self.words.valid)
        take = valid & self.wgt.ready
        m.d.comb += [
            self.wgt.valid.eq(valid),
            self.wgt.payload.eq(payload),
            self.words.ready.eq(known & (take_load | (take_beat & self.wgt.ready))),
            self.idle.eq(ph == 0),
        ]
        got = self.words.valid & self.words.ready
        with m.If(take_load & got):
            m.d.sync += ph.eq(nxt)
        with m.If(take):
            with m.If(opt & ~got):
                m.d.sync += ph.eq(0)
            with m.Else():
                m.d.sync += ph.eq(nxt)

        # words kept in the flops (data flops without reset: a phase reads only bits saved before it)
        if flops:
            with m.If(got):
                with m.Switch(cls):
                    for i, p in enumerate(cplans):
                        with m.Case(i):
                            with m.Switch(ph):
                                for k, s in enumerate(p.phases):
                                    if s.save:
                                        with m.Case(k):
                                            for f0, src, lo, hi in s.save:
                                                f0 += off[i]
                                                for r in range(R):
                                                    v = (words[r] if src == "word" else flops[r])[lo:hi]
                                                    m.d.sync += flops[r][f0:f0 + hi - lo].eq(v)
        return m
