"""IEEE-754 binary16 arithmetic for the FP16xFP16 MAC baseline (``rtl/baselines.py``).

:class:`Fp16Mul` -- the exact product of two fp16 numbers, as fp32 bits, purely
combinational. An fp16 significand has 11 bits, so the product of two has at most 22 (<= 24:
no rounding), and its magnitude lies in ``[2**-48, 65504**2 < 2**32]``: always an fp32
*normal* (or zero). The product therefore needs no rounding, no subnormal output path and no
overflow check. It implements the IEEE special cases: subnormal inputs, signed zeros,
infinities and NaNs.

(The FP16xINT8 baseline multiplies integer codes by fp16 significands directly and needs no
fp16 arithmetic of its own: ``rtl.baselines.Fp16Int8Row``.)
"""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .fp32 import FP32_POS_INF, FP32_QNAN, leading_zeros

__all__ = ["Fp16Mul", "FP16_POS_INF", "FP16_QNAN"]

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
