"""IEEE-754 binary32 arithmetic for the rescale/accumulate stage (``sw.datapath`` steps 5-6).

Two purely combinational components:

* :class:`ScaledIntToFp32` -- ``fp32_RNE(mant * 2**exp)`` for a signed integer ``mant`` and a
  signed exponent ``exp`` (step 5, ``q = fp32_RNE(Q * 2^E)``).
* :class:`Fp32Adder` -- ``fp32_add_RNE(a, b)`` (step 6, the per-row accumulation).

Both round to nearest, ties to even, keep subnormals (no flush to zero) and overflow to
infinity, so they equal torch's float64->float32 conversion and float32 addition bit for bit.

Rounding idiom used by both: once a result is reduced to a 24-bit significand ``sig`` (implicit
bit at bit 23, zero for a subnormal), a guard bit and a sticky bit, and its effective biased
exponent ``be >= 1`` (1 for subnormals), the packed magnitude is
``((be - 1) << 23) + sig + round_up``. The implicit bit adds the missing 1 to the exponent
field of normal numbers, a subnormal that rounds up to ``2**23`` becomes the smallest normal,
and a significand that rounds up to ``2**24`` carries into the exponent -- no separate
renormalization step. A packed magnitude ``>= 0x7F800000`` is an overflow (-> infinity).
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ScaledIntToFp32", "Fp32Adder", "leading_zeros",
           "FP32_POS_INF", "FP32_QNAN", "FP32_EXP_MASK"]

FP32_EXP_MASK = 0x7F800000      # exponent field all ones
FP32_POS_INF = 0x7F800000
FP32_QNAN = 0x7FC00000          # canonical quiet NaN


def _clog2(n: int) -> int:
    """Smallest ``k`` with ``2**k >= n`` (``n >= 1``)."""
    return max(0, (n - 1).bit_length())


def leading_zeros(m: Module, value, name: str = "lzc") -> Signal:
    """Count of leading zeros of the unsigned ``value`` (``len(value)`` when it is zero).

    Builds a balanced tree: the value is padded on the LSB side to a power-of-two width ``P``,
    each node combines the (all-zero flag, count) pairs of its two halves, so the depth is
    ``log2(P)`` 2:1 multiplexer levels. Returns a ``Signal(range(len(value) + 1))`` driven
    combinationally in ``m``.
    """
    width = len(value)
    if width == 0:
        raise ValueError("leading_zeros of a zero-width value")
    levels = _clog2(width)
    pad = (1 << levels) - width
    padded = Cat(Const(0, pad), value) if pad else value   # zeros below the LSB: count unchanged

    def node(lo: int, size: int):
        """(zero, count) of padded[lo : lo+size]; count has log2(size) bits, valid unless zero."""
        if size == 1:
            return ~padded[lo], Const(0, 0)
        half = size // 2
        z_hi, c_hi = node(lo + half, half)
        z_lo, c_lo = node(lo, half)
        # all-zero upper half: 'half' zeros plus the lower half's count (MSB of count = 1).
        count = Mux(z_hi, Cat(c_lo, Const(1, 1)), Cat(c_hi, Const(0, 1)))
        return z_hi & z_lo, count

    zero, count = node(0, 1 << levels)
    out = Signal(range(width + 1), name=name)
    # An all-zero value yields count = P - 1 from the tree; report the true width instead.
    m.d.comb += out.eq(Mux(zero, width, count))
    return out


def _round_pack(m: Module, be_minus_1, sig24, guard, sticky, prefix: str):
    """RNE round and pack; returns (31-bit magnitude, overflow flag).

    ``be_minus_1`` is the effective biased exponent minus 1 (>= 0, unsigned), ``sig24`` the
    truncated 24-bit significand (implicit bit at 23, 0 for subnormals).
    """
    round_up = Signal(name=f"{prefix}_round_up")
    m.d.comb += round_up.eq(guard & (sticky | sig24[0]))
    width = max(len(be_minus_1) + 23, 31) + 1
    packed = Signal(width, name=f"{prefix}_packed")
    m.d.comb += packed.eq((be_minus_1 << 23) + sig24 + round_up)
    overflow = Signal(name=f"{prefix}_overflow")
    m.d.comb += overflow.eq(packed >= FP32_EXP_MASK)
    return packed[:31], overflow


class ScaledIntToFp32(wiring.Component):
    """``result = fp32_RNE(mant * 2**exp)``: signed integer times power of two to binary32.

    Ports
    -----
    mant : In(signed(int_width))
        Signed integer significand. Any value is accepted (including ``-2**(int_width-1)``).
    exp : In(signed(exp_width))
        Signed power-of-two exponent.
    result : Out(32)
        IEEE-754 binary32 bit pattern of ``mant * 2**exp`` rounded to nearest, ties to even:
        subnormal results kept (gradual underflow, rounding up into the smallest normal
        included), magnitudes that round beyond the largest finite value give +-inf,
        results that round to zero give a zero with the sign of ``mant``; ``mant == 0``
        gives +0.0 (``0x00000000``). Never NaN.

    Latency: purely combinational (0 cycles); no clock, no reset, no state, so nothing
    happens on reset -- ``result`` always reflects the current inputs.

    Equal bit for bit to ``torch.ldexp(torch.tensor(mant, dtype=torch.float64),
    torch.tensor(float(exp), dtype=torch.float64)).to(torch.float32)`` whenever that torch
    expression is itself exact before its final rounding (always for ``exp_width <= 10``).

    Structure: absolute value -> leading-zero count -> left-normalize -> right shift by the
    subnormal distance (with sticky) -> RNE round/pack with overflow detection.
    ``int_width`` must be in ``2..54`` (so that ``mant`` is exact in float64, as the torch
    golden model assumes).
    """

    def __init__(self, int_width: int, exp_width: int):
        if not isinstance(int_width, int) or not 2 <= int_width <= 54:
            raise ValueError(f"ScaledIntToFp32: int_width={int_width!r} must be an int in 2..54 "
                             "(mant must be exactly representable in float64, like the golden model)")
        if not isinstance(exp_width, int) or not 2 <= exp_width <= 24:
            raise ValueError(f"ScaledIntToFp32: exp_width={exp_width!r} must be an int in 2..24")
        self.int_width = int_width
        self.exp_width = exp_width
        super().__init__({
            "mant": In(signed(int_width)),
            "exp": In(signed(exp_width)),
            "result": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.int_width

        # ---- sign and magnitude (n bits: |-2**(n-1)| = 2**(n-1) still fits unsigned n bits)
        sign = Signal()
        mag = Signal(n)
        m.d.comb += [
            sign.eq(self.mant[-1]),
            mag.eq(Mux(sign, -self.mant, self.mant)),
        ]
        is_zero = Signal()
        m.d.comb += is_zero.eq(mag == 0)

        # ---- leading one: value = mag * 2**exp, mag in [2**lead, 2**(lead+1)), lead = n-1-lz
        lz = leading_zeros(m, mag, "mant_lz")
        # biased exponent of the leading one: be = exp + (n-1-lz) + 127 (may be <= 0 or > 254)
        be_width = max(self.exp_width, _clog2(n + 128)) + 3
        be = Signal(signed(be_width))
        m.d.comb += be.eq(self.exp + (n - 1 + 127) - lz)

        # ---- left-normalize: leading one at the MSB of a work vector of >= 27 bits
        work = max(n, 27)
        norm = Signal(work)
        m.d.comb += norm.eq((mag << lz)[:n] << (work - n))

        # ---- subnormal distance d = 1 - be (>= 1 when be <= 0), saturated at D_MAX.
        # With d >= 25 the value is < 2**-150 (half the smallest subnormal) and rounds to 0
        # whatever the bits; any D_MAX >= 25 is exact because the shift keeps a sticky bit.
        d_max = 31
        d = Signal(range(d_max + 1))
        with m.If(be > 0):
            m.d.comb += d.eq(0)
        with m.Elif(be < 1 - d_max):
            m.d.comb += d.eq(d_max)
        with m.Else():
            m.d.comb += d.eq(1 - be)

        # ---- right shift by d into a vector that keeps every shifted-out bit below it
        ext = Signal(work + d_max)
        m.d.comb += ext.eq(Cat(Const(0, d_max), norm) >> d)
        top = work + d_max                      # ext[top-24 : top] is the 24-bit significand
        sig24 = ext[top - 24:top]
        guard = ext[top - 25]
        sticky = Signal()
        m.d.comb += sticky.eq(ext[:top - 25].any())

        # ---- effective biased exponent minus one: be - 1 for normals, 0 for subnormals
        be_m1 = Signal(be_width)
        m.d.comb += be_m1.eq(Mux(be > 0, be - 1, 0))
        packed, overflow = _round_pack(m, be_m1, sig24, guard, sticky, "cvt")

        with m.If(is_zero):
            m.d.comb += self.result.eq(0)
        with m.Elif(overflow):
            m.d.comb += self.result.eq(Cat(Const(FP32_POS_INF, 31), sign))
        with m.Else():
            m.d.comb += self.result.eq(Cat(packed, sign))
        return m


class Fp32Adder(wiring.Component):
    """``sum = a + b`` in IEEE-754 binary32, round to nearest, ties to even.

    Ports
    -----
    a : In(32), b : In(32)
        Operand bit patterns (any binary32 value: zeros, subnormals, normals, +-inf, NaNs).
    sum : Out(32)
        Bit pattern of the correctly rounded sum:

        * subnormal inputs and outputs handled exactly (no flush to zero);
        * an exact zero sum is +0.0, except ``(-0) + (-0) = -0``; so ``x + (-x) = +0``,
          ``(+0) + (-0) = +0``;
        * ``inf + finite = inf``, ``inf + inf = inf`` (same sign), a finite sum whose rounded
          magnitude exceeds the largest finite value gives +-inf;
        * any NaN input, or ``inf + (-inf)``, gives the canonical quiet NaN ``0x7FC00000``.

    Latency: ``stages=1`` (default): purely combinational (0 cycles); no clock, no reset, no
    state, so nothing happens on reset -- ``sum`` always reflects the current inputs.
    ``stages=2``: one register stage after the operand swap and alignment; ``sum`` is the sum
    of the operands presented one cycle earlier (a free-running pipeline: no enable, no
    stall; reset clears the register, i.e. gives ``+0 + +0``).

    Equal bit for bit to torch float32 addition on every non-NaN result.

    Structure: unpack -> swap so ``|x| >= |y|`` -> align ``y`` with guard, round and sticky
    bits -> add or subtract -> leading-zero count and left shift limited at the subnormal
    boundary -> RNE round/pack with overflow detection -> special-value override.
    """

    def __init__(self, stages: int = 1):
        if stages not in (1, 2):
            raise ValueError(f"Fp32Adder: stages={stages!r} must be 1 (combinational) or 2 (one register)")
        self.stages = stages
        super().__init__({"a": In(32), "b": In(32), "sum": Out(32)})

    def elaborate(self, platform):
        m = Module()

        def stage(sig, name):
            """``sig`` itself (1 stage) or its registered copy (2 stages)."""
            if self.stages == 1:
                return sig
            reg = Signal(sig.shape(), name=f"{name}_r")
            m.d.sync += reg.eq(sig)
            return reg

        # ---- swap on magnitude: exponent and fraction compare as one 31-bit unsigned number
        swap = Signal()
        m.d.comb += swap.eq(self.b[:31] > self.a[:31])
        x = Signal(32)       # larger magnitude
        y = Signal(32)       # smaller (or equal) magnitude
        m.d.comb += [x.eq(Mux(swap, self.b, self.a)), y.eq(Mux(swap, self.a, self.b))]

        def unpack(v, name):
            exp = v[23:31]
            frac = v[:23]
            e_eff = Signal(8, name=f"{name}_e")          # max(exp, 1)
            sig = Signal(24, name=f"{name}_sig")         # implicit bit | fraction
            m.d.comb += [
                e_eff.eq(Mux(exp == 0, 1, exp)),
                sig.eq(Cat(frac, exp != 0)),
            ]
            is_inf = (exp == 0xFF) & (frac == 0)
            is_nan = (exp == 0xFF) & (frac != 0)
            return v[31], e_eff, sig, is_inf, is_nan

        sx, ex, mx, x_inf, x_nan = unpack(x, "x")
        sy, ey, my, y_inf, y_nan = unpack(y, "y")
        subtract = Signal()
        m.d.comb += subtract.eq(sx ^ sy)

        # ---- align y: 24-bit significand + guard, round, sticky (27 bits).
        # With d >= 27 every bit of my would fall below the sticky position.
        d_max = 27
        diff = Signal(8)
        m.d.comb += diff.eq(ex - ey)                     # >= 0 since |x| >= |y|
        d = Signal(range(d_max + 1))
        m.d.comb += d.eq(Mux(diff > d_max, d_max, diff))
        y_wide = Signal(27 + d_max)
        m.d.comb += y_wide.eq(Cat(Const(0, d_max + 3), my) >> d)
        y_sticky = Signal()
        m.d.comb += y_sticky.eq(y_wide[:d_max].any())
        y_al = Signal(27)                                # sig, G, R and (sticky OR S)
        m.d.comb += y_al.eq(Cat(y_wide[d_max] | y_sticky, y_wide[d_max + 1:]))
        x_al = Signal(27)
        m.d.comb += x_al.eq(mx << 3)

        # ---- the pipeline register (stages=2): everything the add/normalize/round half needs
        nan_in = x_nan | y_nan | (x_inf & y_inf & subtract)
        if self.stages == 2:
            x_al, y_al = stage(x_al, "x_al"), stage(y_al, "y_al")
            subtract, sx, ex = stage(subtract, "subtract"), stage(sx, "sx"), stage(ex, "ex")
            nan_in, x_inf = stage(nan_in, "nan_in"), stage(x_inf, "x_inf")

        # ---- add / subtract (28 bits; bit 26 has weight 2**(ex-127), bit 27 is the carry)
        s = Signal(28)
        m.d.comb += s.eq(Mux(subtract, x_al - y_al, x_al + y_al))

        # ---- normalize: move the leading one to bit 27, but never below exponent 1
        lz = leading_zeros(m, s, "sum_lz")
        sh = Signal(range(29))
        m.d.comb += sh.eq(Mux(lz > ex, ex, lz))
        norm = Signal(28)
        m.d.comb += norm.eq((s << sh)[:28])
        # biased exponent of bit 27 after the shift: ex + 1 - sh >= 1
        be_m1 = Signal(9)
        m.d.comb += be_m1.eq(ex - sh)
        sig24 = norm[4:28]
        guard = norm[3]
        sticky = Signal()
        m.d.comb += sticky.eq(norm[:3].any())
        packed, overflow = _round_pack(m, be_m1, sig24, guard, sticky, "add")

        # ---- result selection
        with m.If(nan_in):
            m.d.comb += self.sum.eq(FP32_QNAN)
        with m.Elif(x_inf):                              # |x| >= |y|: an infinity is always x
            m.d.comb += self.sum.eq(Cat(Const(FP32_POS_INF, 31), sx))
        with m.Elif(s == 0):                             # exact zero: +0 unless (-0) + (-0)
            m.d.comb += self.sum.eq(Cat(Const(0, 31), sx & ~subtract))
        with m.Elif(overflow):
            m.d.comb += self.sum.eq(Cat(Const(FP32_POS_INF, 31), sx))
        with m.Else():
            m.d.comb += self.sum.eq(Cat(packed, sx))
        return m
