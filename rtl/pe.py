"""The bit-serial processing element: one output row, L lanes, one term per lane per cycle."""
from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .decoder import LaneDecoder, TermControl, max_lane_shift


def adder_tree(m: Module, values: list, width: int, name: str, carries: list | None = None):
    """Balanced binary adder tree (combinational); returns the sum as a ``signed(width)`` value.

    ``carries``: 1-bit values to add as well, one as the carry-in of each adder while they last
    (consumed from the list; the caller adds any left over)."""
    level = 0
    while len(values) > 1:
        nxt = []
        for i in range(0, len(values) - 1, 2):
            s = Signal(signed(width), name=f"{name}_l{level}_{i // 2}")
            if carries:
                m.d.comb += s.eq(values[i] + values[i + 1] + carries.pop().as_unsigned())
            else:
                m.d.comb += s.eq(values[i] + values[i + 1])
            nxt.append(s)
        if len(values) % 2:
            nxt.append(values[-1])
        values, level = nxt, level + 1
    return values[0]


def pe_signature(lanes, act_bits, code_bits, n_formats, max_terms, psum_bits) -> dict:
    """The ports every row PE shares (see :class:`BitSerialPE`)."""
    return {
        "mant": In(lanes * act_bits),
        "codes": In(lanes * code_bits),
        "fmt": In(range(max(2, n_formats))),
        "sel": In(2),
        "term": In(range(max(2, max_terms))),
        "en": In(1),
        "first": In(1),
        "psum": Out(signed(psum_bits)),
        "psum_next": Out(signed(psum_bits)),
    }


def accumulate(m: Module, pe, tree, carries=()) -> None:
    """``psum_next = (first ? 0 : psum) + tree (+ carries)`` (combinational); ``psum <= psum_next``
    when ``en``."""
    # a datapath register without reset: a group's first term overwrites it (no reset gate per bit)
    psum = Signal(signed(pe.psum_bits), name="psum_reg", reset_less=True)
    base = Signal(signed(pe.psum_bits), name="psum_base")
    m.d.comb += [pe.psum.eq(psum), base.eq(Mux(pe.first, 0, psum))]
    total = base + tree
    for c in carries:
        total = total + c.as_unsigned()
    m.d.comb += pe.psum_next.eq(total)
    with m.If(pe.en):
        m.d.sync += psum.eq(pe.psum_next)


class BitSerialPE(wiring.Component):
    """One row of the engine: ``lanes`` term-serial multipliers, an adder tree, a group sum.

    Each enabled cycle every lane ``l`` decodes term ``term`` of its weight code
    (``codes[l]``, format ``fmt``, BitMoD selector ``sel``) into a term ``±2^shift`` (or zero)
    with ``shift = lane_shift + 2k``, ``k`` the term's Booth digit, the same for every lane
    (:mod:`rtl.decoder`). A lane contributes ``±(mant[l] << lane_shift)`` (0 for a zero term,
    ``act_bits + max_lane_shift + 1`` bits), the adder tree sums the lanes, one row shifter
    applies ``2k`` to the sum and the group partial sum register adds it. The decoder's
    per-format control (:class:`rtl.decoder.TermControl`) is built once per row.

    Ports
    -----
    mant : In(lanes * act_bits)
        Aligned activation mantissas (two's complement), lane ``l`` at
        ``[act_bits*l + act_bits-1 : act_bits*l]``; shared by all rows.
    codes : In(lanes * code_bits)
        Weight codes of this row, lane ``l`` at ``[code_bits*l + code_bits-1 : code_bits*l]``.
    fmt, sel, term : In
        Format index (into ``formats``), group selector, term index (0 = most significant).
    en : In(1)
        Process one term this cycle.
    first : In(1)
        With ``en``: this is the group's first term: the sum restarts (``psum <= tree``).
    psum : Out(signed(psum_bits))
        The group partial sum, registered: after the enabled cycle of the group's last term
        it holds ``sum_j w_int_j * A_j`` (exact; widths are sized for the worst case by
        :class:`gen.config.EngineConfig`).

    psum_next : Out(signed(psum_bits))
        Combinational: the value ``psum`` takes at the end of an enabled cycle (the engine's
        rescale unit captures it in the cycle of a group's last term).

    Latency: ``psum`` reflects a term one cycle after the cycle it was enabled. With ``en``
    low ``psum`` holds (stall). ``psum`` is not reset (a group's first term overwrites it).
    """

    def __init__(self, formats, lanes: int, act_bits: int, code_bits: int, max_terms: int, shift_bits: int,
                 psum_bits: int):
        self.formats = list(formats)
        self.lanes, self.act_bits, self.code_bits = lanes, act_bits, code_bits
        self.max_terms, self.shift_bits, self.psum_bits = max_terms, shift_bits, psum_bits
        super().__init__(pe_signature(lanes, act_bits, code_bits, len(self.formats), max_terms, psum_bits))

    def elaborate(self, platform):
        m = Module()
        W = self.act_bits
        # A term is ±2^(lane_shift + 2k): each lane shifts by its lane part (at most `ls`), the
        # row shifts the adder tree's sum by the digit's 2k (the same for every lane) after it.
        # |±(A << lane_shift)| <= 2^(W-1) << ls: W + ls bits and a sign.
        ls = max_lane_shift(self.formats)
        rs = 2 * (self.max_terms - 1)
        prod_w = W + ls + 1
        tree_w = prod_w + max(1, (self.lanes - 1).bit_length())
        products, signs = [], []
        kw = dict(formats=self.formats, max_terms=self.max_terms, shift_bits=self.shift_bits,
                  code_bits=self.code_bits)
        ctl = m.submodules.term_control = TermControl(**kw)      # once per row: fmt, sel, term
        m.d.comb += [ctl.fmt.eq(self.fmt), ctl.sel.eq(self.sel), ctl.term.eq(self.term)]
        for lane in range(self.lanes):
            dec = LaneDecoder(**kw)                               # per lane: only the code
            m.submodules[f"decoder{lane}"] = dec
            m.d.comb += [
                dec.code.eq(self.codes[lane * self.code_bits:(lane + 1) * self.code_bits]),
                dec.ctrl.eq(ctl.ctrl),
            ]
            a = self.mant[lane * W:(lane + 1) * W].as_signed()
            # -x = ~x + 1: a negative term enters the tree as ~(A << s), built before the
            # shifter (W XOR gates, the vacated low bits filled with the sign) rather than after
            # it (prod_w gates); its +1 is a carry-in further down. A zero term gates A to 0
            # (and its sign is 0: decoder contract).
            cond = Signal(signed(W), name=f"cond{lane}")
            m.d.comb += cond.eq(Mux(dec.zero, 0, a ^ dec.sign.replicate(W)))
            prod = Signal(signed(prod_w), name=f"term_product{lane}")
            if ls:
                filled = Signal(signed(W + ls), name=f"filled{lane}")
                m.d.comb += filled.eq(Cat(dec.sign.replicate(ls), cond))
                m.d.comb += prod.eq((filled << dec.lane_shift)[ls:ls + prod_w].as_signed())
            else:
                m.d.comb += prod.eq(cond)
            products.append(prod)
            signs.append(dec.sign)            # 0 for a zero term (decoder contract)
        # the +1 of every negative term: the carry-in of one adder each, L-1 in the tree; the
        # last one, c, must also be scaled by 2^(2k): (T + c) << 2k = ((T << 2k) | (2^(2k) - 1) c) + c,
        # so the row shifter fills the vacated bits with c and c is the accumulator's carry-in.
        carries = list(signs)
        tree = adder_tree(m, products, tree_w, "tree", carries)
        if rs:
            c = carries.pop() if carries else Const(0, 1)
            filled = Signal(signed(tree_w + rs), name="tree_filled")
            m.d.comb += filled.eq(Cat(c.replicate(rs), tree))
            total = Signal(signed(tree_w + rs), name="term_sum")
            m.d.comb += total.eq((filled << (ctl.ctrl.digit << 1))[rs:rs + tree_w + rs].as_signed())
            accumulate(m, self, total, carries + [c])
        else:
            accumulate(m, self, tree, carries)
        return m


class ParallelPE(wiring.Component):
    """Bit-parallel baseline row: ``lanes`` full multipliers, one weight per lane per cycle.

    Same ports and contract as :class:`BitSerialPE` (``term`` is ignored: every weight takes
    one cycle). Each lane looks up ``w_int`` of its code (a ROM per format generated from
    ``sw.terms.int_value_table``, BitMoD selector included) and multiplies it with its
    activation mantissa; the adder tree and the group register are the bit-serial PE's.
    With ``formats=["int4"]`` and INT8 activations this is the INT8xINT4 bit-parallel MAC.
    """

    def __init__(self, formats, lanes: int, act_bits: int, code_bits: int, max_terms: int, shift_bits: int,
                 psum_bits: int):
        from sw import terms as T
        self.formats = list(formats)
        self.lanes, self.act_bits, self.code_bits, self.psum_bits = lanes, act_bits, code_bits, psum_bits
        self.w_bits = max(T.max_abs_int(f) for f in self.formats).bit_length() + 1
        super().__init__(pe_signature(lanes, act_bits, code_bits, len(self.formats), max_terms, psum_bits))

    def elaborate(self, platform):
        from sw import terms as T
        m = Module()
        prod_w = self.act_bits + self.w_bits
        tree_w = prod_w + max(1, (self.lanes - 1).bit_length())
        products = []
        for lane in range(self.lanes):
            code = self.codes[lane * self.code_bits:(lane + 1) * self.code_bits]
            w = Signal(signed(self.w_bits), name=f"weight{lane}")
            with m.Switch(self.fmt):
                for i, f in enumerate(self.formats):
                    table = T.int_value_table(f)
                    bits = T.code_bits(f)
                    with m.Case(i):
                        with m.Switch(self.sel if table.shape[0] > 1 else 0):
                            for s in range(table.shape[0]):
                                with m.Case(s):
                                    with m.Switch(code[:bits]):
                                        for c in range(1 << bits):
                                            with m.Case(c):
                                                m.d.comb += w.eq(int(table[s, c]))
            a = self.mant[lane * self.act_bits:(lane + 1) * self.act_bits].as_signed()
            prod = Signal(signed(prod_w), name=f"product{lane}")
            m.d.comb += prod.eq(a * w)
            products.append(prod)
        accumulate(m, self, adder_tree(m, products, tree_w, "tree"))
        return m
