"""Weight port: packed weight words (``sw.weight_stream``) in, the engine's ``wgt`` beats out."""
from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sw import terms as T
from sw import weight_stream as WS

from .fp6_unpack import crumb_slice, nibble_slice

__all__ = ["WeightPort", "FormatPlan", "format_plan", "buffer_bytes", "msb_first_bits"]


def msb_first_bits(i: int, b: int) -> list[int]:
    """Beat bit positions of element ``i``'s code bits ``0 .. b-1`` in an MSB-first stream.

    The beat is the stream's bytes little-endian from a byte boundary; stream bit ``p`` (``p = 0``
    the most significant bit of element 0) sits at ``8*(p//8) + 7 - p%8``. For ``b`` = 2 and 4
    this is :func:`rtl.fp6_unpack.crumb_slice` / :func:`rtl.fp6_unpack.nibble_slice`.
    """
    return [8 * (p // 8) + 7 - p % 8 for p in (b * i + (b - 1 - j) for j in range(b))]


@dataclass(frozen=True)
class FormatPlan:
    """How the port reads one format: bytes per beat and row from the main stream (``codes``, or the
    split's ``seg4`` nibbles) and from the split's ``seg2`` crumbs, and its terms (cycles per beat)."""
    fmt: str
    split: bool
    main_bits: int      # element bits of the main stream (``codes``, or ``seg4`` for the split)
    order: str          # bit order of the main stream
    need_main: int      # bytes per beat and row of the main stream
    need_crumb: int     # bytes per beat and row of crumbs (0 unless split)
    terms: int


def format_plan(fmt: str, lanes: int) -> FormatPlan:
    segs = WS.segments(fmt)
    main = segs[-1]
    crumb = segs[0] if len(segs) > 1 else None
    return FormatPlan(fmt, crumb is not None, main.bits, main.order, lanes * main.bits // 8,
                      lanes * crumb.bits // 8 if crumb else 0, T.terms(fmt))


def _simulate(plan: FormatPlan, word: int, cap_main: int, cap_crumb: int, cycles: int = 240) -> int:
    """Beats the port hands out in the last ``cycles // 2`` of ``cycles`` cycles (the RTL's rules, in
    bytes), with words always offered and an engine that holds each beat for ``terms`` cycles."""
    fm = fc = ph = t = 0
    taken = 0
    for c in range(cycles):
        valid = fm >= plan.need_main and (not plan.split or fc >= plan.need_crumb)
        take = valid and t == plan.terms - 1
        t = 0 if take else t + 1 if valid else t
        fm1 = fm - plan.need_main * take
        fc1 = fc - plan.need_crumb * take
        to_crumb = plan.split and ph == 0
        if to_crumb and fc1 + word <= cap_crumb:
            fc1 += word
            ph = 1
        elif not to_crumb and fm1 + word <= cap_main:
            fm1 += word
            ph = (ph + 1) % 3 if plan.split else 0
        fm, fc = fm1, fc1
        taken += take and c >= cycles // 2
    return taken


def buffer_bytes(plans, word: int) -> tuple[int, int]:
    """``(bytes, crumb bytes)`` per row: the smallest buffer that reaches, for every plan, the rate
    of unbounded buffers on :func:`_simulate`. A split format keeps its nibbles in the low
    ``bytes - crumb bytes`` and its crumbs in the top ``crumb bytes`` of the same buffer; the other
    formats use all of it (crumb bytes 0 without a split format)."""
    plans = tuple(plans)
    big = 1 << 20
    target = {p.fmt: _simulate(p, word, big, big) for p in plans}

    def smallest(ok, lo):
        n = lo
        while not ok(n):
            n += 1
        return n

    whole = [p for p in plans if not p.split]
    split = [p for p in plans if p.split]
    cap = smallest(lambda c: all(_simulate(p, word, c, big) >= target[p.fmt] for p in whole),
                   max([word] + [p.need_main for p in whole])) if whole else 0
    crumb = 0
    if split:
        nib = smallest(lambda c: all(_simulate(p, word, c, big) >= target[p.fmt] for p in split),
                       max([word] + [p.need_main for p in split]))
        crumb = smallest(lambda c: all(_simulate(p, word, nib, c) >= target[p.fmt] for p in split),
                         max([word] + [p.need_crumb for p in split]))
        cap = max(cap, nib + crumb)
    return cap, crumb


def _drop(region, n: int):
    """``region`` shifted down by ``n`` bytes; left as it is when ``n`` is all of it (then every
    byte is above the fill and unread until a word lands on it: no logic for a take)."""
    return region if 8 * n == len(region) else region >> 8 * n


class WeightPort(wiring.Component):
    """Turns the packed weight stream into the engine's ``wgt`` beats, for the format on ``fmt``.

    Parameters (keyword-only)
    ----------
    formats : the engine's formats (``sw.terms.HW_FORMATS`` names); ``fmt`` indexes them
    rows, lanes, group_size : ``R``, ``L``, ``G`` of the engine
    word_bits : ``W``, bits per row per ``words`` beat; default ``4 * L``, with which every format
        keeps one ``wgt`` beat per ``terms(fmt)`` cycles (8-bit ones need ``8L`` bits per 4 cycles,
        6-bit ones ``6L`` per 2 or 3, 3- and 4-bit ones at most ``4L`` per cycle)

    Legal geometry (else ``ValueError``, see :func:`sw.weight_stream.check_geometry`): ``W`` a
    multiple of 8; for every stream of ``b``-bit elements of every format, ``L*b`` a multiple of 8
    (a beat is whole bytes: ``L`` even for 4-bit, a multiple of 4 for 6-bit (2-bit crumbs), of 8
    for 3-bit formats) and ``G*b`` a multiple of ``W`` (every tile starts on a word).

    Ports (flattened Verilog names in brackets)
    -----
    fmt : In(range(max(2, len(formats))))                    [fmt]
        The format of the current tile (index into ``formats``). Hold it from before the tile's
        first word is offered until its last ``wgt`` beat is taken; change it only while ``idle``.
        An index past the formats holds both streams (``words.ready`` and ``wgt.valid`` low).
    words : In(stream.Signature(R*W))                        [words__payload, __valid, __ready]
        Row ``r``'s next word at bits ``[r*W + W-1 : r*W]``: ``W/8`` bytes of the row's packed
        stream (``sw.pack``), byte ``j`` at bits ``[8j+7:8j]``. Schedule: the row's words in stream
        order; for 6-bit formats (4+2 split) per block of ``W/2`` weights the block's ``seg2`` word,
        then its two ``seg4`` words (``sw.weight_stream.tile_words`` builds the beats).
    wgt : Out(stream.Signature(R*L*B))                       [wgt__payload, __valid, __ready]
        Exactly the engine's ``wgt`` payload: the code of weight ``(r, s*L + l)`` in slot
        ``r*L + l`` at bits ``[(r*L+l)*B + B-1 : (r*L+l)*B]``, ``B = max code bits``, zero-extended.
    idle : Out(1)                                            [idle]
        Nothing held and the split schedule at its start: a tile boundary.
    clk, rst
        The ``sync`` domain; ``rst`` (synchronous, active high) empties the buffer.

    Behaviour. Per row one buffer of ``cap_bytes`` bytes (:func:`buffer_bytes`; 12 for the default
    engine's twelve formats with ``L = 8``), filled from the bottom; a 6-bit format keeps its
    nibbles in the low ``cap_bytes - crumb_bytes`` bytes and its crumbs in the top ``crumb_bytes``.
    Shared by the rows: the fill counters (bytes held; crumb bytes held), the split schedule phase
    and the write position. ``wgt.payload`` is wired from the bottom of the buffer (no output
    register, so it holds while ``valid & ~ready``); ``wgt.valid`` = enough bytes held for a beat,
    from flops and ``fmt`` only. Taking a beat shifts the buffer (each region) down by the beat's
    bytes; in the same cycle a word is taken if its region has room after the take
    (``words.ready`` depends combinationally on ``wgt.ready`` and ``fmt``). Latency: a word taken
    in cycle ``c`` is on ``wgt`` from cycle ``c+1``. The sizes are the smallest with which the
    port's cycle model sustains one beat per ``terms(fmt)`` cycles (or the best rate ``W``
    allows) for every format; either side may stall at any time. The data flops have no reset.
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
                word_bits = 4 * lanes
            WS.check_geometry(formats, lanes, group_size, word_bits)
        except ValueError:
            self._MustUse__silence = True     # a rejected instance is not an "unused elaboratable"
            raise
        self.formats = tuple(formats)
        self.rows, self.lanes, self.group_size, self.word_bits = rows, lanes, group_size, word_bits
        self.code_bits = max(T.code_bits(f) for f in formats)
        self.plans = tuple(format_plan(f, lanes) for f in formats)
        self.cap_bytes, self.crumb_bytes = buffer_bytes(self.plans, word_bits // 8)
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
        """The code bits (LSB first) of lane ``l`` in the buffers ``main``/``crumb`` of one row."""
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
        R, L, B, W = self.rows, self.lanes, self.code_bits, self.word_bits // 8
        cap, cc = self.cap_bytes, self.crumb_bytes
        nb = cap - cc                   # a split format's nibble bytes; its crumbs are above them
        any_split = cc > 0

        fm = Signal(range(cap + 1))     # bytes held (a split format: nibble bytes)
        fc = Signal(range(cc + 1))      # crumb bytes held
        ph = Signal(range(3))           # split schedule: 0 seg2 word next, 1 and 2 seg4 words
        # data flops without reset: only bytes below the fill counters are ever read
        buf = [Signal(8 * cap, name=f"buf{r}", reset_less=True) for r in range(R)]

        # per-format constants, one mux on fmt
        need_m = Signal(range(cap + 1))
        need_c = Signal(range(cc + 1))
        split = Signal()
        known = Signal()           # fmt names one of the formats (an index past them stalls both sides)
        with m.Switch(self.fmt):
            for i, p in enumerate(self.plans):
                with m.Case(i):
                    m.d.comb += [need_m.eq(p.need_main), need_c.eq(p.need_crumb), split.eq(p.split),
                                 known.eq(1)]

        valid = known & (fm >= need_m) & (~split | (fc >= need_c))
        take = valid & self.wgt.ready
        fm1 = Signal.like(fm)
        fc1 = Signal.like(fc)
        m.d.comb += [
            self.wgt.valid.eq(valid),
            fm1.eq(fm - Mux(take, need_m, 0)),
            fc1.eq(fc - Mux(take, need_c, 0)),
            self.idle.eq((fm == 0) & (fc == 0) & (ph == 0)),
        ]
        to_crumb = (split & (ph == 0)) if any_split else Const(0)
        room = Signal()
        pos = Signal(range(cap + 1))    # the byte a word taken this cycle lands on
        with m.If(to_crumb):
            m.d.comb += [room.eq(fc1 + W <= cc), pos.eq(nb + fc1)]
        with m.Else():
            m.d.comb += [room.eq(fm1 + W <= Mux(split, nb, cap)), pos.eq(fm1)]
        m.d.comb += self.words.ready.eq(room & known)
        load = self.words.valid & room & known
        load_m = load & ~to_crumb
        load_c = load & to_crumb

        m.d.sync += [fm.eq(fm1 + Mux(load_m, W, 0)), fc.eq(fc1 + Mux(load_c, W, 0))]
        with m.If(load & split):
            m.d.sync += ph.eq(Cat(ph == 0, ph == 1))   # 0 -> 1 -> 2 -> 0

        # the bytes a word lands on, shared by the rows
        mask = Signal(8 * cap)
        m.d.comb += mask.eq(Mux(load, Const((1 << 8 * W) - 1, 8 * W) << Cat(Const(0, 3), pos), 0))

        for r in range(R):
            word = self.words.payload[r * self.word_bits:(r + 1) * self.word_bits]
            # a take drops the beat's bytes: a mux of constant shifts (per region for a split format)
            kept = Signal(8 * cap)
            m.d.comb += kept.eq(buf[r])
            with m.If(take):
                with m.Switch(self.fmt):
                    for i, p in enumerate(self.plans):
                        with m.Case(i):
                            if p.split:
                                nib, cr = buf[r][:8 * nb], buf[r][8 * nb:]
                                m.d.comb += kept.eq(Cat(_drop(nib, p.need_main), _drop(cr, p.need_crumb)))
                            else:
                                m.d.comb += kept.eq(_drop(buf[r], p.need_main))
            placed = word << Cat(Const(0, 3), pos)
            m.d.sync += buf[r].eq((kept & ~mask) | (placed & mask))

        # output: from the buffers, one mux on fmt per slot
        payload = Signal(R * L * B)
        with m.Switch(self.fmt):
            for i, p in enumerate(self.plans):
                with m.Case(i):
                    slots = []
                    for r in range(R):
                        for l in range(L):
                            bits = self._slot_bits(p, l, buf[r], buf[r][8 * nb:])
                            slots.append(Cat(*bits, Const(0, B - len(bits))))
                    m.d.comb += payload.eq(Cat(*slots))
        m.d.comb += self.wgt.payload.eq(payload)
        return m
