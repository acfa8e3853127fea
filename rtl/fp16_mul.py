"""IEEE-754 binary16 arithmetic for the FP16 baselines (``rtl/baselines.py``).

Two purely combinational components:

* :class:`Fp16Mul` -- the exact product of two fp16 numbers, as fp32 bits. An fp16
  significand has 11 bits, so the product of two has at most 22 (<= 24: no rounding), and
  its magnitude lies in ``[2**-48, 65504**2 < 2**32]``: always an fp32 *normal* (or zero).
  The product therefore needs no rounding, no subnormal output path and no overflow check.
* :class:`Int8Fp16Dequant` -- ``fp16_RNE(code * scale)`` for a two's complement int8 code and
  an fp16 scale: the weight dequantizer of the FP16xINT8 (ANT/OliVe-style) baseline.

Both implement the IEEE special cases of their formats: subnormal inputs, signed zeros,
infinities and NaNs.
"""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .fp32 import FP32_POS_INF, FP32_QNAN, leading_zeros

__all__ = ["Fp16Mul", "Int8Fp16Dequant", "FP16_POS_INF", "FP16_QNAN"]

FP16_POS_INF = 0x7C00
FP16_QNAN = 0x7E00          # canonical quiet NaN


def _unpack_fp16(m: Module, v, name: str):
    """(sign, effective exponent max(e, 1), 11-bit significand, is_zero, is_inf, is_nan)."""
    exp, frac = v[10:15], v[:10]
    e_eff = Signal(5, name=f"{name}_e")
    sig = Signal(11, name=f"{name}_sig")
    m.d.comb += [e_eff.eq(Mux(exp == 0, 1, exp)), sig.eq(Cat(frac, exp != 0))]
    is_zero = (exp == 0) & (frac == 0)
    is_inf = (exp == 0x1F) & (frac == 0)
    is_nan = (exp == 0x1F) & (frac != 0)
    return v[15], e_eff, sig, is_zero, is_inf, is_nan


class Fp16Mul(wiring.Component):
    """``p = a * b`` for fp16 ``a``, ``b``; the exact product as IEEE binary32 bits.

    Ports
    -----
    a : In(16), b : In(16)
        fp16 bit patterns (any: zeros, subnormals, normals, +-inf, NaNs).
    p : Out(32)
        fp32 bit pattern of the exact product (no rounding is ever needed):

        * sign = ``sign(a) xor sign(b)`` for zeros, finite values and infinities;
        * ``finite * 0`` is a zero of that sign, ``inf * finite non-zero`` is inf of that sign;
        * a NaN operand, or ``inf * 0``, gives the canonical quiet NaN ``0x7FC00000``.

    Equal bit for bit to ``(a.float() * b.float())`` in torch for every non-NaN result.

    Latency: purely combinational (0 cycles), no state, no reset.

    Structure: 11 x 11 unsigned significand multiplier (22 bits) -> leading-zero count
    (only subnormal operands make it more than 1) -> left shift -> pack with the fp32
    biased exponent ``max(ea,1) + max(eb,1) + 98 - lz`` (always in 79..158: a normal).
    """

    a: In(16)
    b: In(16)
    p: Out(32)

    def elaborate(self, platform):
        m = Module()
        sa, ea, ma, za, ia, na = _unpack_fp16(m, self.a, "a")
        sb, eb, mb, zb, ib, nb = _unpack_fp16(m, self.b, "b")
        sign = Signal()
        m.d.comb += sign.eq(sa ^ sb)

        prod = Signal(22)
        m.d.comb += prod.eq(ma * mb)
        lz = leading_zeros(m, prod, "prod_lz")
        norm = Signal(22)
        m.d.comb += norm.eq((prod << lz)[:22])          # leading one at bit 21
        # value = prod * 2**(ea + eb - 50); leading one at 2**(ea + eb - 50 + 21 - lz)
        be = Signal(8)
        m.d.comb += be.eq(ea + eb + 98 - lz)
        frac = Cat(Const(0, 2), norm[:21])               # 21 fraction bits, exact

        with m.If(na | nb | (ia & zb) | (ib & za)):
            m.d.comb += self.p.eq(FP32_QNAN)
        with m.Elif(ia | ib):
            m.d.comb += self.p.eq(Cat(Const(FP32_POS_INF, 31), sign))
        with m.Elif(za | zb):
            m.d.comb += self.p.eq(Cat(Const(0, 31), sign))
        with m.Else():
            m.d.comb += self.p.eq(Cat(frac, be, sign))
        return m


class Int8Fp16Dequant(wiring.Component):
    """``w = fp16_RNE(code * scale)``: an int8 weight code dequantized with an fp16 scale.

    Ports
    -----
    code : In(8)
        Two's complement int8 (``-128..127``; ``sw.quantize(..., "int8")`` uses ``-127..127``).
    scale : In(16)
        fp16 bit pattern of the group scale (any value, specials included).
    w : Out(16)
        fp16 bit pattern of ``code * scale`` rounded to nearest, ties to even: subnormal results
        kept (the smallest non-zero ``|code * scale|`` is ``2**-24``, itself representable, so
        nothing rounds to zero), magnitudes that round beyond 65504 give +-inf; sign =
        ``sign(code) xor sign(scale)`` (code 0 counts as positive: ``0 * (-s) = -0``);
        ``code * inf`` = +-inf for ``code != 0``, ``0 * inf`` and ``code * NaN`` give the
        canonical quiet NaN ``0x7E00``.

    Equal bit for bit to ``(code.float() * scale.float()).to(torch.float16)`` (the float32
    product is exact: 8 x 11 significand bits), NaN payloads aside.

    Latency: purely combinational (0 cycles), no state, no reset.

    Structure: |code| (8 bits) x 11-bit scale significand -> 18-bit ``M`` with value
    ``M * 2**(max(e,1) - 25)`` -> leading-zero count -> left shift limited so the biased
    exponent stays >= 1 (gradual underflow in the same shifter) -> RNE round/pack (the carry
    of a round-up moves into the exponent field) -> overflow to inf -> special override.
    """

    code: In(8)
    scale: In(16)
    w: Out(16)

    def elaborate(self, platform):
        m = Module()
        ss, es, ms, zs, is_inf, is_nan = _unpack_fp16(m, self.scale, "s")
        neg_c = self.code[7]
        mag_c = Signal(8)
        m.d.comb += mag_c.eq(Mux(neg_c, -self.code, self.code))   # |-128| = 128 fits 8 bits
        zc = mag_c == 0
        sign = Signal()
        m.d.comb += sign.eq(neg_c ^ ss)

        prod = Signal(18)                       # <= 128 * 2047 < 2**18
        m.d.comb += prod.eq(mag_c * ms)
        # value = prod * 2**(es - 25); with the leading one at bit 17 - lz the fp16 biased
        # exponent is be = es - 25 + 17 - lz + 15 = es + 7 - lz. Shift left by at most es + 6
        # so that be >= 1; a smaller shift leaves a subnormal (be = 1, no implicit bit).
        lz = leading_zeros(m, prod, "dq_lz")
        lim = Signal(6)
        m.d.comb += lim.eq(es + 6)
        sh = Signal(5)
        m.d.comb += sh.eq(Mux(lz > lim, lim, lz))
        norm = Signal(18)
        m.d.comb += norm.eq((prod << sh)[:18])
        be_m1 = Signal(6)                        # be - 1 = es + 6 - sh, in 0..36
        m.d.comb += be_m1.eq(lim - sh)
        sig11 = norm[7:18]
        guard = norm[6]
        sticky = Signal()
        m.d.comb += sticky.eq(norm[:6].any())
        round_up = Signal()
        m.d.comb += round_up.eq(guard & (sticky | sig11[0]))
        packed = Signal(17)
        m.d.comb += packed.eq((be_m1 << 10) + sig11 + round_up)
        overflow = packed >= FP16_POS_INF

        with m.If(is_nan | (is_inf & zc)):
            m.d.comb += self.w.eq(FP16_QNAN)
        with m.Elif(is_inf | overflow):
            m.d.comb += self.w.eq(Cat(Const(FP16_POS_INF, 15), sign))
        with m.Elif(zc | zs):
            m.d.comb += self.w.eq(Cat(Const(0, 15), sign))
        with m.Else():
            m.d.comb += self.w.eq(Cat(packed[:15], sign))
        return m
