"""The term decoder: a weight code -> one signed power-of-two term per cycle.

One structure serves every format, built from the formats' fields (:mod:`sw.terms`, the golden
model's single definition of the terms) and equal to :func:`reference` for every format, code,
selector and term (exhaustive tests: ``tests/test_cocotb_units.py``, ``tests/test_rtl_decoder.py``):

* an operand ``u`` of ``2 * max_terms`` bits per lane: INT (:func:`sw.terms.is_booth`) the code
  sign-extended from its MSB (asymmetric INT: the MSB inverted, i.e. ``code - 2^(b-1)``);
  FP/BitMoD the significand ``sig = (e != 0) << M | m`` (the mantissa bits are the code's low
  bits, the hidden bit sits at bit ``M``, zeros above), with ``x = max(e, 1) - 1`` from the
  exponent field and the sign bit ``s`` (:func:`sw.terms.fp_parts`);
* one radix-4 Booth digit selector for every format: digit ``k = terms(f) - 1 - term`` is read
  from bits ``2k+1, 2k, 2k-1`` of ``u`` (bit -1 = 0); ``d_k = -2*u[2k+1] + u[2k] + u[2k-1]``
  gives ``zero = d_k == 0``, ``sign = (d_k < 0) ^ s``, ``shift = 2k + (|d_k| == 2) + x``
  (the lane computes ``(|d_k| == 2) + x``; ``2k`` is the same for every lane of a row);
* BitMoD's special value (the code of -0) as a patch: its term for this selector and term index
  comes from :func:`sw.terms.decompose` through the per-row control.

The decoder is split where the logic is shared: :class:`TermControl` (once per PE row) turns
``fmt``, the BitMoD selector and the term index into a :func:`control_layout` bundle (digit,
which source feeds each operand bit, MSB position and inversion, FP field layout, the special
value's term); :class:`LaneDecoder` (once per lane) holds only what depends on the lane's code.
:class:`TermDecoder` is the two together with the plain ``fmt/sel/term/code`` interface.
"""
from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from sw import terms as T

__all__ = ["TermDecoder", "TermControl", "LaneDecoder", "control_layout", "max_lane_shift", "reference", "fp_fields"]

fp_fields = T.fp_fields

#: Sources of an operand bit (``control_layout`` field ``wsrc``, 2 bits per Booth window bit).
SRC_ZERO, SRC_CODE, SRC_MSB, SRC_HIDDEN = 0, 1, 2, 3


def reference(fmt: str, code: int, sel: int, term: int) -> tuple[int, int, int]:
    """``(sign, shift, zero)`` the decoder must produce, straight from :func:`sw.terms.decompose`.

    ``code`` is masked to the format's width, ``sel`` is ignored by non-BitMoD formats, a
    zero term (and every ``term >= terms(fmt)``) is ``(0, 0, 1)``.
    """
    b = T.code_bits(fmt)
    s = sel if len(T.variants(fmt)) > 1 else 0
    ts = T.decompose(fmt, code & ((1 << b) - 1), s)
    if term >= len(ts) or ts[term].zero:
        return (0, 0, 1)
    return (ts[term].sign, ts[term].shift, 0)


def _check_args(formats, max_terms, shift_bits, code_bits) -> None:
    if not formats:
        raise ValueError("TermDecoder needs at least one format")
    if len(set(formats)) != len(formats):
        raise ValueError(f"formats {formats} list a format twice")
    for f in formats:
        T.check_hw_format(f)
        if T.code_bits(f) > code_bits:
            raise ValueError(f"code_bits={code_bits} is narrower than {f}'s {T.code_bits(f)}-bit codes")
        if T.terms(f) > max_terms:
            raise ValueError(f"max_terms={max_terms} is below {f}'s {T.terms(f)} terms")
        if T.max_shift(f) >= 1 << shift_bits:
            raise ValueError(f"shift_bits={shift_bits} cannot hold {f}'s largest shift {T.max_shift(f)}")


def _tops(formats) -> list[int]:
    """Positions of the formats' top code bit (INT: the sign to extend; FP: the sign ``s``)."""
    return sorted({T.code_bits(f) - 1 for f in formats})


def _fp_layouts(formats) -> list[tuple[int, int]]:
    return sorted({fp_fields(f)[:2] for f in formats if not T.is_booth(f)})


def _operand_bits(max_terms: int) -> int:
    return 2 * max_terms


def max_lane_shift(formats) -> int:
    """Largest lane part ``shift - 2k`` of a term of digit ``k`` over ``formats``' codes, selectors
    and terms (:func:`sw.terms.decompose`): the shift a lane applies before the adder tree; the
    row applies the rest, ``2k``, after it (:class:`rtl.pe.BitSerialPE`)."""
    out = 0
    for f in formats:
        n = T.terms(f)
        for sel in range(len(T.variants(f))):
            for code in range(1 << T.code_bits(f)):
                for t, term in enumerate(T.decompose(f, code, sel)):
                    if not term.zero:
                        out = max(out, term.shift - 2 * (n - 1 - t))
    return out


def control_layout(formats, max_terms: int, shift_bits: int) -> data.StructLayout:
    """The per-row decode bundle :class:`TermControl` drives into every :class:`LaneDecoder`.

    ``known``: ``fmt`` names a format (else zero terms). ``digit``: the Booth digit ``k`` read
    this cycle; ``used``: ``term < terms(f)``. ``wsrc``: for each bit ``i`` of the digit's Booth
    window (operand bit ``2k - 1 + i``, 2 bits each) its source: ``SRC_ZERO``, ``SRC_CODE``
    (code bit ``2k - 1 + i``), ``SRC_MSB`` (the top bit, INT sign extension) or ``SRC_HIDDEN``
    (FP hidden bit). ``top``: index into the formats' top-bit
    positions; ``invert``: asymmetric INT (top bit inverted). ``fp``: sign-magnitude format;
    ``layout``: index into the set's FP (code bits, M) layouts; ``bitmod``: the -0 code is the
    special value, whose term for this selector and term index is ``sp_zero``, ``sp_neg``,
    ``sp_shift``.
    """
    formats = list(formats)
    return data.StructLayout({
        "known": 1, "digit": range(max(2, max_terms)), "used": 1,
        "wsrc": data.ArrayLayout(2, 3),
        "top": range(max(2, len(_tops(formats)))), "invert": 1,
        "fp": 1, "layout": range(max(2, len(_fp_layouts(formats)))), "bitmod": 1,
        "sp_zero": 1, "sp_neg": 1, "sp_shift": shift_bits,
    })


def _take_args(component, formats, max_terms: int, shift_bits: int, code_bits: int) -> None:
    """Check the decoder parameters (:func:`_check_args`) and store them on ``component``; a rejected
    instance is silenced (it is not an "unused elaboratable")."""
    component.formats = list(formats)
    try:
        _check_args(component.formats, max_terms, shift_bits, code_bits)
    except ValueError:
        component._MustUse__silence = True
        raise
    component.max_terms, component.shift_bits, component.code_bits = max_terms, shift_bits, code_bits


class TermControl(wiring.Component):
    """Per-row half of the term decoder: ``fmt``, ``sel``, ``term`` -> :func:`control_layout`.

    Parameters (keyword-only): ``formats``, ``max_terms``, ``shift_bits``, ``code_bits`` as
    :class:`TermDecoder`. Ports: ``fmt`` In(range(max(2, len(formats)))), ``sel`` In(2),
    ``term`` In(range(max(2, max_terms))), ``ctrl`` Out(control_layout(...)).
    Latency 0 (combinational), no state, no clock or reset.
    """

    def __init__(self, *, formats, max_terms: int, shift_bits: int, code_bits: int):
        _take_args(self, formats, max_terms, shift_bits, code_bits)
        super().__init__({
            "fmt": In(range(max(2, len(self.formats)))),
            "sel": In(2),
            "term": In(range(max(2, max_terms))),
            "ctrl": Out(control_layout(self.formats, max_terms, shift_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.ctrl
        tops, layouts = _tops(self.formats), _fp_layouts(self.formats)
        nbits = _operand_bits(self.max_terms)
        m.d.comb += c.sp_zero.eq(1)
        with m.Switch(self.fmt):
            for i, f in enumerate(self.formats):
                with m.Case(i):
                    n, b = T.terms(f), T.code_bits(f)
                    # every field is assigned in every case, so no field is driven by constants
                    # alone (an `always @*` without inputs never runs in event-driven simulators)
                    m.d.comb += [c.known.eq(1), c.used.eq(self.term < n), c.digit.eq(n - 1 - self.term),
                                 c.top.eq(tops.index(b - 1)), c.invert.eq(0), c.fp.eq(0), c.layout.eq(0),
                                 c.bitmod.eq(0), c.sp_zero.eq(1), c.sp_neg.eq(0), c.sp_shift.eq(0)]
                    if T.is_booth(f):
                        src = [SRC_CODE if j < b - 1 else SRC_MSB for j in range(nbits)]
                        m.d.comb += c.invert.eq(int(T.is_asym(f)))
                    else:
                        _, mb, _ = fp_fields(f)
                        src = [SRC_CODE if j < mb else SRC_HIDDEN if j == mb else SRC_ZERO for j in range(nbits)]
                        m.d.comb += [c.fp.eq(1), c.layout.eq(layouts.index(fp_fields(f)[:2]))]
                    # the sources of the window bits 2k-1, 2k, 2k+1 of this term's digit k
                    with m.Switch(self.term):
                        for t in range(min(n, 1 << len(self.term))):
                            k = n - 1 - t
                            with m.Case(t):
                                m.d.comb += [c.wsrc[i].eq(SRC_ZERO if 2 * k - 1 + i < 0 else src[2 * k - 1 + i])
                                             for i in range(3)]
                    if f in T.BITMOD:
                        # the special value (the code of -0) for this selector and term
                        m.d.comb += c.bitmod.eq(1)
                        with m.Switch(Cat(self.term, self.sel)):
                            for sel in range(4):
                                for t, term in enumerate(T.decompose(f, 1 << (b - 1), sel)):
                                    if term.zero or t >= 1 << len(self.term):
                                        continue
                                    with m.Case(t | (sel << len(self.term))):
                                        # its lane part: the row adds 2k (k = n - 1 - t)
                                        m.d.comb += [c.sp_zero.eq(0), c.sp_neg.eq(term.sign),
                                                     c.sp_shift.eq(term.shift - 2 * (n - 1 - t))]
        return m


class LaneDecoder(wiring.Component):
    """Per-lane half of the term decoder: ``code`` and the row's ``ctrl`` -> one term.

    Parameters (keyword-only): as :class:`TermControl`. Ports: ``code`` In(code_bits) (bits above
    the format's width ignored), ``ctrl`` In(control_layout(...)), ``sign`` Out(1), ``lane_shift``
    Out(shift_bits), ``zero`` Out(1) (on a zero term ``sign = 0`` and ``lane_shift`` is
    arbitrary: the PE gates the lane's activation to 0). The term is
    ``±2^(lane_shift + 2 * ctrl.digit)``: ``lane_shift = (|d_k| == 2) + x`` is at most
    :func:`max_lane_shift`, the row-common ``2 * digit`` is left to the caller.
    Latency 0 (combinational), no state, no clock or reset.
    """

    def __init__(self, *, formats, max_terms: int, shift_bits: int, code_bits: int):
        _take_args(self, formats, max_terms, shift_bits, code_bits)
        super().__init__({
            "code": In(code_bits),
            "ctrl": In(control_layout(self.formats, max_terms, shift_bits)),
            "sign": Out(1),
            "lane_shift": Out(shift_bits),
            "zero": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.ctrl
        tops, layouts = _tops(self.formats), _fp_layouts(self.formats)
        nbits = _operand_bits(self.max_terms)
        code = Cat(self.code, Const(0, max(0, nbits - len(self.code))))

        top = Signal(name="top_bit")                  # INT: the sign to extend; FP: s
        with m.Switch(c.top):
            for j, pos in enumerate(tops):
                with m.Case(j):
                    m.d.comb += top.eq(code[pos])
        msb = top ^ c.invert

        # FP fields: exponent e (x = max(e, 1) - 1, hidden = e != 0) and, for BitMoD, mag == 0
        x, hidden, special = Const(0, 3), Const(0, 1), Const(0, 1)
        if layouts:
            max_e = max(b - 1 - mb for b, mb in layouts)
            e = Signal(max_e, name="fp_e")
            mag0 = Signal(name="fp_mag_zero")
            with m.Switch(c.layout):
                for j, (b, mb) in enumerate(layouts):
                    with m.Case(j):
                        m.d.comb += [e.eq(code[mb:b - 1]), mag0.eq(code[:b - 1] == 0)]
            hidden = Signal(name="fp_hidden")
            x = Signal(max_e, name="fp_x")
            special = Signal(name="fp_special")
            m.d.comb += [hidden.eq(c.fp & (e != 0)), x.eq(Mux(hidden, e - 1, 0)), special.eq(c.bitmod & top & mag0)]

        # the digit's Booth window: code bits 2k-1, 2k, 2k+1 (k = digit, row-common), each then
        # replaced by its row-common source (the code bit, the sign extension, the hidden bit, 0)
        win = []
        for i in range(3):
            cb = Signal(name=f"window_code{i}")
            with m.Switch(c.digit):
                for k in range(self.max_terms):
                    j = 2 * k - 1 + i
                    if 0 <= j < len(self.code):
                        with m.Case(k):
                            m.d.comb += cb.eq(self.code[j])
            wb = Signal(name=f"window{i}")
            src = c.wsrc[i]
            m.d.comb += wb.eq(Mux(src[1], Mux(src[0], hidden, msb), src[0] & cb))
            win.append(wb)
        triple = Cat(*win)
        lo, mid, hi = triple[0], triple[1], triple[2]
        same = ~(hi ^ mid) & ~(mid ^ lo)               # d_k == 0
        two = (hi ^ mid) & ~(mid ^ lo)                 # |d_k| == 2
        d_zero = Signal(name="booth_zero")
        m.d.comb += d_zero.eq(~c.used | same)
        d_shift = Signal(self.shift_bits, name="booth_lane_shift")
        m.d.comb += d_shift.eq(two + x)
        d_neg = hi ^ (c.fp & top)

        zero = Signal(name="term_zero")
        m.d.comb += zero.eq(~c.known | Mux(special, c.sp_zero, d_zero))
        m.d.comb += [self.zero.eq(zero),
                     self.sign.eq(Mux(special, c.sp_neg, d_neg) & ~zero),
                     self.lane_shift.eq(Mux(special, c.sp_shift, d_shift))]
        return m


class TermDecoder(wiring.Component):
    """Combinational term decoder for a set of weight formats (:class:`TermControl` +
    :class:`LaneDecoder`).

    Parameters (positional, kept for compatibility)
    ----------
    formats : list[str]
        Formats the decoder is built with (each in :data:`sw.terms.HW_FORMATS`); ``fmt``
        indexes this list.
    max_terms : int
        Size of the term index range (``>= terms(f)`` for every format).
    shift_bits : int
        Width of ``shift`` (``>= max_shift(f).bit_length()`` for every format).
    code_bits : int
        Width of ``code`` (``>= code_bits(f)`` for every format).

    Ports (flattened Verilog names are the same)
    -----
    code : In(code_bits)
        The weight code in the low ``code_bits(f)`` bits; the upper bits are ignored for
        narrower formats.
    fmt : In(range(max(2, len(formats))))
        Index into ``formats``. An index ``>= len(formats)`` yields zero terms.
    sel : In(2)
        BitMoD selector (0 ER+, 1 ER-, 2 EA+, 3 EA-); ignored by non-BitMoD formats.
    term : In(range(max(2, max_terms)))
        Which term, 0 = most significant. ``term >= terms(f)`` yields a zero term.
    sign : Out(1)
        1: the term is negative.
    shift : Out(shift_bits)
        The term is ``±2^shift`` (in format units, see :func:`sw.terms.unit_exp`).
    zero : Out(1)
        1: the term is zero (a no-op); then ``sign = 0`` and ``shift = 0``.

    ``(sign, shift, zero)`` equals :func:`reference` ``(formats[fmt], code, sel, term)``
    (i.e. :func:`sw.terms.decompose`) for every input, including the unused INT code
    ``-2^(b-1)`` and terms beyond ``terms(f)``.

    Latency 0 (purely combinational), no state, no clock or reset.
    (``fmt`` and ``term`` are at least 1 bit wide so that no port has zero width.)
    """

    def __init__(self, formats, max_terms: int, shift_bits: int, code_bits: int):
        self.formats = list(formats)
        try:
            _check_args(self.formats, max_terms, shift_bits, code_bits)
        except ValueError:
            self._MustUse__silence = True     # a rejected instance is not an "unused elaboratable"
            raise
        self.max_terms, self.shift_bits, self.code_bits = max_terms, shift_bits, code_bits
        super().__init__({
            "code": In(code_bits),
            "fmt": In(range(max(2, len(self.formats)))),
            "sel": In(2),
            "term": In(range(max(2, max_terms))),
            "sign": Out(1),
            "shift": Out(shift_bits),
            "zero": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        kw = dict(formats=self.formats, max_terms=self.max_terms, shift_bits=self.shift_bits,
                  code_bits=self.code_bits)
        ctl = m.submodules.control = TermControl(**kw)
        lane = m.submodules.lane = LaneDecoder(**kw)
        m.d.comb += [ctl.fmt.eq(self.fmt), ctl.sel.eq(self.sel), ctl.term.eq(self.term),
                     lane.ctrl.eq(ctl.ctrl), lane.code.eq(self.code),
                     self.sign.eq(lane.sign), self.zero.eq(lane.zero),
                     self.shift.eq(Mux(lane.zero, 0, lane.lane_shift + (ctl.ctrl.digit << 1)))]
        return m
