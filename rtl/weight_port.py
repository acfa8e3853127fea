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
    """How the port reads one format: bytes per beat from the main and the crumb buffer, and terms."""
    fmt: str
    split: bool
    main_bits: int      # element bits of the main stream (``codes``, or ``seg4`` for the split)
    order: str          # bit order of the main stream
    need_main: int      # bytes per beat and row from the main buffer
    need_crumb: int     # bytes per beat and row from the crumb buffer (0 unless split)
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
    """Smallest ``(main, crumb)`` buffer bytes per row that reach, for every plan, the rate of
    unbounded buffers on :func:`_simulate` (the crumb buffer is 0 without a split format)."""
    plans = tuple(plans)
    big = 1 << 20
    lo_m = max(word, max(p.need_main for p in plans))
    need_c = max(p.need_crumb for p in plans)
    lo_c = max(word, need_c) if need_c else 0
    target = {p.fmt: _simulate(p, word, big, big) for p in plans}
    cap_m = lo_m
    while not all(_simulate(p, word, cap_m, big) >= target[p.fmt] for p in plans):
        cap_m += 1
    cap_c = lo_c
    while need_c and not all(_simulate(p, word, cap_m, cap_c) >= target[p.fmt] for p in plans if p.split):
        cap_c += 1
    return cap_m, cap_c


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
        Both buffers empty and the split schedule at its start: a tile boundary.
    clk, rst
        The ``sync`` domain; ``rst`` (synchronous, active high) empties the buffers.

    Behaviour: per row a main buffer of ``cap_main`` bytes (and, with a 6-bit format, a crumb
    buffer of ``cap_crumb`` bytes) that fills from the bottom; the fill counters and the split
    schedule phase are shared by all rows. ``wgt.payload`` is wired from the bottom of the buffers
    (no output register), ``wgt.valid`` = enough bytes for one beat (a flop-only function). Taking
    a beat shifts the buffers down by its bytes; a word is taken when its buffer has room after
    this cycle's take (``words.ready`` depends combinationally on ``wgt.ready``). Latency: a word
    loaded in cycle ``c`` can appear on ``wgt`` in cycle ``c+1``. The buffer sizes are the
    smallest that sustain one beat per ``terms(fmt)`` cycles (or the best rate ``W`` allows) for
    every format, found on the port's cycle model. Any side may stall at any time.
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
        self.cap_main, self.cap_crumb = buffer_bytes(self.plans, word_bits // 8)
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
        cm, cc = self.cap_main, self.cap_crumb
        any_split = cc > 0

        fm = Signal(range(cm + 1))
        fc = Signal(range(cc + 1))
        ph = Signal(range(3))
        # data flops without reset: only bytes below the fill counters are ever read
        bufm = [Signal(8 * cm, name=f"main{r}", reset_less=True) for r in range(R)]
        bufc = [Signal(8 * cc, name=f"crumb{r}", reset_less=True) for r in range(R)] if any_split else []

        # per-format constants, one mux on fmt
        need_m = Signal(range(cm + 1))
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
        to_crumb = split & (ph == 0) if any_split else Const(0)
        room = Signal()
        m.d.comb += room.eq(((fc1 + W) <= cc) if any_split else 0)
        with m.If(~to_crumb):
            m.d.comb += room.eq((fm1 + W) <= cm)
        m.d.comb += self.words.ready.eq(room & known)
        load = self.words.valid & room
        load_m = load & ~to_crumb
        load_c = load & to_crumb

        m.d.sync += [fm.eq(fm1 + Mux(load_m, W, 0)), fc.eq(fc1 + Mux(load_c, W, 0))]
        with m.If(load & split):
            m.d.sync += ph.eq(Cat(ph == 0, ph == 1))   # 0 -> 1 -> 2 -> 0

        # per-format shift amount on a take, as a mux of constant shifts
        def shifted(buf, need_of):
            out = Signal.like(buf)
            m.d.comb += out.eq(buf)
            with m.If(take):
                with m.Switch(self.fmt):
                    for i, p in enumerate(self.plans):
                        n = need_of(p)
                        if n:
                            with m.Case(i):
                                m.d.comb += out.eq(buf >> (8 * n))
            return out

        # where a loaded word lands: bytes fill .. fill+W-1 (after this cycle's take), shared by the rows
        def write_mask(cap, fill, load):
            mask = Signal(8 * cap)
            m.d.comb += mask.eq(Mux(load, Const((1 << 8 * W) - 1, 8 * W) << Cat(Const(0, 3), fill), 0))
            return mask

        mask_m = write_mask(cm, fm1, load_m)
        mask_c = write_mask(cc, fc1, load_c) if any_split else None
        for r in range(R):
            word = self.words.payload[r * self.word_bits:(r + 1) * self.word_bits]
            kept = shifted(bufm[r], lambda p: p.need_main)
            placed = word << Cat(Const(0, 3), fm1)
            m.d.sync += bufm[r].eq((kept & ~mask_m) | (placed & mask_m))
            if any_split:
                keptc = shifted(bufc[r], lambda p: p.need_crumb)
                placedc = word << Cat(Const(0, 3), fc1)
                m.d.sync += bufc[r].eq((keptc & ~mask_c) | (placedc & mask_c))

        # output: from the buffers, one mux on fmt per slot
        payload = Signal(R * L * B)
        with m.Switch(self.fmt):
            for i, p in enumerate(self.plans):
                with m.Case(i):
                    slots = []
                    for r in range(R):
                        crumb = bufc[r] if p.split else None
                        for l in range(L):
                            bits = self._slot_bits(p, l, bufm[r], crumb)
                            slots.append(Cat(*bits, Const(0, B - len(bits))))
                    m.d.comb += payload.eq(Cat(*slots))
        m.d.comb += self.wgt.payload.eq(payload)
        return m
