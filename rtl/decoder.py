"""The term decoder: a weight code -> one signed power-of-two term per cycle.

The decoder is built from the formats' structure, checked against :mod:`sw.terms` (the golden
model's single definition of the term representation) exhaustively at construction time:

* INT formats (:func:`sw.terms.is_booth`) share one structural radix-4 Booth digit selector
  (per format only the MSB position, the MSB inversion and the digit count differ): the code is
  sign-extended to an even width (asymmetric INT first inverts its MSB, i.e. decodes
  ``code - 2^(b-1)``), digit ``k`` is read from bits ``2k+1, 2k, 2k-1`` (bit -1 = 0) and
  ``d_k = -2*b[2k+1] + b[2k] + b[2k-1]`` becomes ``sign = d_k < 0``,
  ``shift = 2k + (|d_k| == 2)``, ``zero = d_k == 0``.
* Every other format (FP3, FP4 E2M1, FP6 E3M2/E2M3, BitMoD3/4) is sign-magnitude with an
  ``E``-bit exponent field ``e`` and an ``M``-bit mantissa ``m`` (FP3: E2M0): in format units
  ``w_int = (-1)^s * sig * 2^x`` with ``sig = (e != 0) << M | m`` (at most 4 bits) and
  ``x = max(e, 1) - 1``. One shared field extractor (per format only ``M`` and the code width
  differ), one 64-entry table of the non-adjacent form of ``sig`` (term ``t`` -> digit sign and
  position, the same for every format: :func:`sw.terms.naf`) and a 3-bit adder ``shift = pos + x``.
  BitMoD's one special value (the code of -0) is a patch: ``(sign, sig, x)`` from the selector
  (BitMoD3 ``±3 * 2^sel[1]``, BitMoD4 ``±10`` or ``±16`` halves), ``sign = sel[0]``.

The decoder is split where the logic is shared: :class:`TermControl` (once per PE row) turns
``fmt``, the BitMoD selector and the term index into a :func:`control_layout` bundle (Booth
digit position, MSB position and inversion, FP field layout, the BitMoD special value's term);
:class:`LaneDecoder` (once per lane) holds only what depends on the lane's code.
:class:`TermDecoder` is the two together with the plain ``fmt/sel/term/code`` interface.
"""
from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from sw import terms as T

__all__ = ["TermDecoder", "TermControl", "LaneDecoder", "control_layout", "reference", "fp_fields"]


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


def _booth_msbs(formats) -> list[int]:
    return sorted({T.code_bits(f) - 1 for f in formats if T.is_booth(f)})


def _fp_layouts(formats) -> list[tuple[int, int]]:
    return sorted({fp_fields(f)[:2] for f in formats if not T.is_booth(f)})


def control_layout(formats, max_terms: int, shift_bits: int) -> data.StructLayout:
    """The per-row decode bundle :class:`TermControl` drives into every :class:`LaneDecoder`.

    ``booth``/``fp``: the format's family (neither: an unknown index, zero terms). Booth:
    ``digit`` k (the window of code bits ``2k+1, 2k, 2k-1``), ``used`` (``term < digits``),
    ``msb`` (index into the set's MSB positions), ``invert`` (asymmetric INT). FP: ``layout``
    (index into the set's (code bits, M) layouts), ``bitmod`` (the -0 code is the special value),
    the special value's term for this ``term`` (``sp_zero``, ``sp_neg``, ``sp_shift``) and
    ``term`` itself (the lane's NAF digit index).
    """
    formats = list(formats)
    nmax = max([T.terms(f) for f in formats if T.is_booth(f)] + [1])
    return data.StructLayout({
        "booth": 1, "fp": 1,
        "digit": range(max(2, nmax)), "used": 1,
        "msb": range(max(2, len(_booth_msbs(formats)))), "invert": 1,
        "layout": range(max(2, len(_fp_layouts(formats)))), "bitmod": 1,
        "sp_zero": 1, "sp_neg": 1, "sp_shift": shift_bits,
        "term": range(max(2, max_terms)),
    })


class TermControl(wiring.Component):
    """Per-row half of the term decoder: ``fmt``, ``sel``, ``term`` -> :func:`control_layout`.

    Parameters (keyword-only): ``formats``, ``max_terms``, ``shift_bits``, ``code_bits`` as
    :class:`TermDecoder`. Ports: ``fmt`` In(range(max(2, len(formats)))), ``sel`` In(2),
    ``term`` In(range(max(2, max_terms))), ``ctrl`` Out(control_layout(...)).
    Latency 0 (combinational), no state.
    """

    def __init__(self, *, formats, max_terms: int, shift_bits: int, code_bits: int):
        self.formats = list(formats)
        try:
            _check_args(self.formats, max_terms, shift_bits, code_bits)
        except ValueError:
            self._MustUse__silence = True
            raise
        self.max_terms, self.shift_bits, self.code_bits = max_terms, shift_bits, code_bits
        super().__init__({
            "fmt": In(range(max(2, len(self.formats)))),
            "sel": In(2),
            "term": In(range(max(2, max_terms))),
            "ctrl": Out(control_layout(self.formats, max_terms, shift_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.ctrl
        msbs, layouts = _booth_msbs(self.formats), _fp_layouts(self.formats)
        m.d.comb += [c.term.eq(self.term), c.sp_zero.eq(1)]
        with m.Switch(self.fmt):
            for i, f in enumerate(self.formats):
                with m.Case(i):
                    if T.is_booth(f):
                        _check_booth_model(f)
                        n = T.terms(f)
                        m.d.comb += [c.booth.eq(1), c.used.eq(self.term < n), c.digit.eq(n - 1 - self.term),
                                     c.msb.eq(msbs.index(T.code_bits(f) - 1)), c.invert.eq(int(T.is_asym(f)))]
                    else:
                        _check_fp_model(f)
                        m.d.comb += [c.fp.eq(1), c.layout.eq(layouts.index(fp_fields(f)[:2]))]
                        if f in T.BITMOD:
                            # the special value (the code of -0) for this selector and term
                            m.d.comb += c.bitmod.eq(1)
                            b = T.code_bits(f)
                            with m.Switch(Cat(self.term, self.sel)):
                                for sel in range(4):
                                    ts = T.decompose(f, 1 << (b - 1), sel)
                                    for t, term in enumerate(ts):
                                        if term.zero or t >= 1 << len(self.term):
                                            continue
                                        with m.Case(t | (sel << len(self.term))):
                                            m.d.comb += [c.sp_zero.eq(0), c.sp_neg.eq(term.sign),
                                                         c.sp_shift.eq(term.shift)]
        return m


class LaneDecoder(wiring.Component):
    """Per-lane half of the term decoder: ``code`` and the row's ``ctrl`` -> one term.

    Parameters (keyword-only): as :class:`TermControl`. Ports: ``code`` In(code_bits) (bits above
    the format's width ignored), ``ctrl`` In(control_layout(...)), ``sign`` Out(1), ``shift``
    Out(shift_bits), ``zero`` Out(1) (``sign = shift = 0`` on a zero term).
    Latency 0 (combinational), no state.
    """

    def __init__(self, *, formats, max_terms: int, shift_bits: int, code_bits: int):
        self.formats = list(formats)
        try:
            _check_args(self.formats, max_terms, shift_bits, code_bits)
        except ValueError:
            self._MustUse__silence = True
            raise
        self.max_terms, self.shift_bits, self.code_bits = max_terms, shift_bits, code_bits
        super().__init__({
            "code": In(code_bits),
            "ctrl": In(control_layout(self.formats, max_terms, shift_bits)),
            "sign": Out(1),
            "shift": Out(shift_bits),
            "zero": Out(1),
        })

    def _booth(self, m, c):
        msbs = _booth_msbs(self.formats)
        nmax = max(T.terms(f) for f in self.formats if T.is_booth(f))
        width = 2 * nmax
        code = Cat(self.code, Const(0, max(0, width - len(self.code))))
        msb = Signal(name="booth_msb")
        with m.Switch(c.msb):
            for j, pos in enumerate(msbs):
                with m.Case(j):
                    m.d.comb += msb.eq(code[pos] ^ c.invert)

        def ext_bit(j):       # code bit below the MSB, the (inverted) MSB from there on up
            if j < min(msbs):
                return code[j]
            if j >= max(msbs):
                return msb
            below = Signal(name=f"booth_below{j}")
            m.d.comb += below.eq(c.msb > max(i for i, p in enumerate(msbs) if p <= j))
            return Mux(below, code[j], msb)
        u = Cat(Const(0, 1), *[ext_bit(j) for j in range(width)])   # u[i + 1] = bit i, u[0] = bit -1
        triple = Signal(3, name="booth_window")
        with m.Switch(c.digit):
            for k in range(nmax):
                with m.Case(k):
                    m.d.comb += triple.eq(u[2 * k:2 * k + 3])
        lo, mid, hi = triple[0], triple[1], triple[2]
        same = ~(hi ^ mid) & ~(mid ^ lo)               # d_k == 0
        two = (hi ^ mid) & ~(mid ^ lo)                 # |d_k| == 2
        zero = Signal(name="booth_zero")
        m.d.comb += zero.eq(~c.used | same)
        return hi & ~zero, Mux(zero, 0, Cat(two, c.digit)), zero

    def _fp(self, m, c):
        layouts = _fp_layouts(self.formats)
        max_e = max(b - 1 - mb for b, mb in layouts)
        s_, mag0 = Signal(name="fp_s"), Signal(name="fp_mag_zero")
        e, mant = Signal(max_e, name="fp_e"), Signal(3, name="fp_m")
        hidden = Signal(4, name="fp_hidden")
        with m.Switch(c.layout):
            for j, (b, mb) in enumerate(layouts):
                with m.Case(j):
                    m.d.comb += [s_.eq(self.code[b - 1]), e.eq(self.code[mb:b - 1]),
                                 mag0.eq(self.code[:b - 1] == 0), hidden.eq(1 << mb)]
                    if mb:
                        m.d.comb += mant.eq(self.code[:mb])
        sig = Signal(4, name="fp_sig")
        x = Signal(3, name="fp_x")
        m.d.comb += [sig.eq(Mux(e != 0, hidden, 0) | mant), x.eq(Mux(e == 0, 0, e - 1))]
        # non-adjacent form of sig: digit `term` -> (negative, position), zero past its digits
        d_neg, d_pos, d_zero = Signal(name="naf_neg"), Signal(3, name="naf_pos"), Signal(name="naf_zero")
        m.d.comb += d_zero.eq(1)
        tb = len(c.term)
        with m.Switch(Cat(sig, c.term)):
            for v in range(16):
                for t, (d, pos) in enumerate(sorted(T.naf(v), key=lambda dp: -dp[1])):
                    if t < 1 << tb:
                        with m.Case(v | (t << 4)):
                            m.d.comb += [d_neg.eq(int(d < 0)), d_pos.eq(pos), d_zero.eq(0)]
        special = Signal(name="fp_special")
        m.d.comb += special.eq(c.bitmod & s_ & mag0)
        zero = Signal(name="fp_zero")
        m.d.comb += zero.eq(Mux(special, c.sp_zero, d_zero))
        sign = Mux(special, c.sp_neg, s_ ^ d_neg) & ~zero
        shift = Mux(zero, 0, Mux(special, c.sp_shift, d_pos + x))
        return sign, shift, zero

    def elaborate(self, platform):
        m = Module()
        c = self.ctrl
        m.d.comb += self.zero.eq(1)           # neither family (unknown format index): zero term
        if any(T.is_booth(f) for f in self.formats):
            sign, shift, zero = self._booth(m, c)
            with m.If(c.booth):
                m.d.comb += [self.sign.eq(sign), self.shift.eq(shift), self.zero.eq(zero)]
        if any(not T.is_booth(f) for f in self.formats):
            sign, shift, zero = self._fp(m, c)
            with m.If(c.fp):
                m.d.comb += [self.sign.eq(sign), self.shift.eq(shift), self.zero.eq(zero)]
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
                     self.sign.eq(lane.sign), self.shift.eq(lane.shift), self.zero.eq(lane.zero)]
        return m


_BOOTH_CHECKED: set[str] = set()


def _check_booth_model(fmt: str) -> None:
    """The structural Booth logic (mirrored here in Python) must equal sw.terms.decompose."""
    if fmt in _BOOTH_CHECKED:
        return
    b, n = T.code_bits(fmt), T.terms(fmt)
    for code in range(1 << b):
        x = code ^ (1 << (b - 1)) if T.is_asym(fmt) else code
        if x >> (b - 1):
            x |= ((1 << (2 * n - b)) - 1) << b      # sign extension
        u = x << 1
        for t in range(n):
            k = n - 1 - t
            lo, mid, hi = (u >> 2 * k) & 1, (u >> (2 * k + 1)) & 1, (u >> (2 * k + 2)) & 1
            same = lo == mid == hi
            got = (0, 0, 1) if same else (hi, 2 * k + ((hi ^ mid) & (1 - (mid ^ lo))), 0)
            want = reference(fmt, code, 0, t)
            if got != want:
                raise AssertionError(f"Booth structure disagrees with sw.terms for {fmt} code {code} "
                                     f"term {t}: {got} != {want}")
    _BOOTH_CHECKED.add(fmt)


def fp_fields(fmt: str) -> tuple[int, int, int]:
    """``(code bits, mantissa bits M, exponent bits E)`` of a sign-magnitude FP/BitMoD format."""
    v = T.variants(fmt)[0]
    base = getattr(v, "base", v)           # a BitMoD variant: its FP base format's fields
    return v.bits, base.m, base.e


_FP_CHECKED: set[str] = set()


def _check_fp_model(fmt: str) -> None:
    """The sign/exponent/mantissa structure (mirrored here in Python) must equal sw.terms.decompose."""
    if fmt in _FP_CHECKED:
        return
    b, mb, _ = fp_fields(fmt)
    for sel in range(4):
        for code in range(1 << b):
            s, mag = code >> (b - 1), code & ((1 << (b - 1)) - 1)
            e, mant = mag >> mb, mag & ((1 << mb) - 1)
            if fmt in T.BITMOD and s and mag == 0:
                # the special value (the RTL takes its terms from sw.terms): sign and magnitude
                w = T.int_value(fmt, code, sel)
                neg, sig, x = int(w < 0), abs(w), 0
            else:
                neg, sig, x = s, ((e != 0) << mb) | mant, max(e, 1) - 1
            digits = sorted(T.naf(sig), key=lambda dp: -dp[1])
            for t in range(4):
                got = (0, 0, 1) if t >= len(digits) else (neg ^ int(digits[t][0] < 0), digits[t][1] + x, 0)
                want = reference(fmt, code, sel, t)
                if got != want:
                    raise AssertionError(f"FP structure disagrees with sw.terms for {fmt} code {code} sel {sel} "
                                         f"term {t}: {got} != {want}")
    _FP_CHECKED.add(fmt)
