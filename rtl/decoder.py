"""The term decoder: a weight code -> one signed power-of-two term per cycle.

The decoder is generated from :mod:`sw.terms` (the golden model's single definition of the
term representation); nothing here is a hand-written copy of a table:

* INT formats (:func:`sw.terms.is_booth`) share one structural radix-4 Booth digit selector
  (per format only the MSB position, the MSB inversion and the digit count differ): the code is
  sign-extended to an even width (asymmetric INT first inverts its MSB, i.e. decodes
  ``code - 2^(b-1)``), digit ``k`` is read from bits ``2k+1, 2k, 2k-1`` (bit -1 = 0) and
  ``d_k = -2*b[2k+1] + b[2k] + b[2k-1]`` becomes ``sign = d_k < 0``,
  ``shift = 2k + (|d_k| == 2)``, ``zero = d_k == 0``. The structure is checked against
  :func:`sw.terms.decompose` exhaustively at construction time.
* Every other format (FP3, FP4, BitMoD, FP6) is a ROM filled from
  :func:`sw.terms.term_table`: an ``m.Switch`` over ``{term, sel, code}`` whose unlisted
  entries (zero terms, ``term >= terms(f)``) fall to the default "zero term".
"""
from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sw import terms as T

__all__ = ["TermDecoder", "reference"]


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


class TermDecoder(wiring.Component):
    """Combinational term decoder for a set of weight formats.

    Parameters
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
            self._check(max_terms, shift_bits, code_bits)
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

    def _check(self, max_terms: int, shift_bits: int, code_bits: int) -> None:
        if not self.formats:
            raise ValueError("TermDecoder needs at least one format")
        if len(set(self.formats)) != len(self.formats):
            raise ValueError(f"formats {self.formats} list a format twice")
        for f in self.formats:
            T.check_hw_format(f)
            if T.code_bits(f) > code_bits:
                raise ValueError(f"code_bits={code_bits} is narrower than {f}'s {T.code_bits(f)}-bit codes")
            if T.terms(f) > max_terms:
                raise ValueError(f"max_terms={max_terms} is below {f}'s {T.terms(f)} terms")
            if T.max_shift(f) >= 1 << shift_bits:
                raise ValueError(f"shift_bits={shift_bits} cannot hold {f}'s largest shift {T.max_shift(f)}")

    # ------------------------------------------------------------------ per-format logic
    def _booth(self, m: Module, booth: list[tuple[int, str]]):
        """One structural radix-4 Booth digit selector shared by every INT format of the set.

        Per format only three constants differ, selected by ``fmt``: the code's MSB position
        ``b-1`` (sign extension from there), whether the MSB is inverted (asymmetric INT:
        ``code - 2^(b-1)``) and the digit count ``n``. Returns (sign, shift, zero) signals.
        """
        nmax = max(T.terms(f) for _, f in booth)
        width = 2 * nmax
        for _, f in booth:
            _check_booth_model(f)
        msb_pos = Signal(range(max(2, width)), name="booth_msb_pos")
        n_digits = Signal(range(nmax + 1), name="booth_digits")
        invert = Signal(name="booth_invert_msb")
        with m.Switch(self.fmt):
            for i, f in booth:
                with m.Case(i):
                    m.d.comb += [msb_pos.eq(T.code_bits(f) - 1), n_digits.eq(T.terms(f)),
                                 invert.eq(int(T.is_asym(f)))]
        code = Cat(self.code, Const(0, max(0, width - len(self.code))))
        msb = Signal(name="booth_msb")
        m.d.comb += msb.eq(code.bit_select(msb_pos, 1) ^ invert)
        ext = Signal(width, name="booth_ext")          # sign-extended (MSB-inverted) code
        msbs = [T.code_bits(f) - 1 for _, f in booth]

        def ext_bit(j):       # code bit below the MSB, the (inverted) MSB from there on up
            if j < min(msbs):
                return code[j]
            if j >= max(msbs):
                return msb
            return Mux(j < msb_pos, code[j], msb)
        m.d.comb += ext.eq(Cat(*[ext_bit(j) for j in range(width)]))
        u = Cat(Const(0, 1), ext)                      # u[i + 1] = bit i, u[0] = bit -1 = 0
        used = Signal(name="booth_used")
        k = Signal(range(max(2, nmax)), name="booth_k")
        m.d.comb += [used.eq(self.term < n_digits), k.eq(n_digits - 1 - self.term)]
        triple = Signal(3, name="booth_digit")         # bits 2k-1, 2k, 2k+1
        with m.Switch(k):
            for kk in range(nmax):
                with m.Case(kk):
                    m.d.comb += triple.eq(u[2 * kk:2 * kk + 3])
        lo, mid, hi = triple[0], triple[1], triple[2]
        sign = Signal(name="booth_sign")
        shift = Signal(self.shift_bits, name="booth_shift")
        zero = Signal(name="booth_zero")
        same = ~(hi ^ mid) & ~(mid ^ lo)               # d_k == 0
        two = (hi ^ mid) & ~(mid ^ lo)                 # |d_k| == 2
        m.d.comb += [
            zero.eq(~used | same),
            sign.eq(used & hi & ~same),
            shift.eq(Mux(zero, 0, Cat(two, k))),       # 2k + two
        ]
        return sign, shift, zero

    def _rom(self, m: Module, idx: int, fmt: str):
        """ROM from :func:`sw.terms.term_table`: Switch over {term, sel, code}."""
        b = T.code_bits(fmt)
        table = T.term_table(fmt)             # [selector][code] -> terms
        nsel = len(table)
        sb = (nsel - 1).bit_length()
        parts = [self.code[:b]] + ([self.sel[:sb]] if sb else []) + [self.term]
        index = Signal(b + sb + len(self.term), name=f"f{idx}_{fmt}_index")
        sign = Signal(name=f"f{idx}_{fmt}_sign")
        shift = Signal(self.shift_bits, name=f"f{idx}_{fmt}_shift")
        zero = Signal(name=f"f{idx}_{fmt}_zero")
        m.d.comb += [index.eq(Cat(*parts)), zero.eq(1)]
        with m.Switch(index):
            for s, codes in enumerate(table):
                for c, ts in enumerate(codes):
                    for t, term in enumerate(ts):
                        if term.zero:
                            continue          # default: zero term
                        with m.Case(c | (s << b) | (t << (b + sb))):
                            m.d.comb += [sign.eq(term.sign), shift.eq(term.shift), zero.eq(0)]
        return sign, shift, zero

    def elaborate(self, platform):
        m = Module()
        booth = [(i, f) for i, f in enumerate(self.formats) if T.is_booth(f)]
        shared = self._booth(m, booth) if booth else None
        outs = [shared if T.is_booth(f) else self._rom(m, i, f) for i, f in enumerate(self.formats)]
        m.d.comb += self.zero.eq(1)           # unknown format index: zero term
        with m.Switch(self.fmt):
            for i, (sign, shift, zero) in enumerate(outs):
                with m.Case(i):
                    m.d.comb += [self.sign.eq(sign), self.shift.eq(shift), self.zero.eq(zero)]
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
