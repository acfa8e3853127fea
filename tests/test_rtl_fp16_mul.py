"""rtl.fp16_mul: Fp16Mul and Int8Fp16Dequant against torch, bit for bit (amaranth.sim).

Golden models:

* ``Fp16Mul``: torch ``a.float() * b.float()`` (exact: 22 significant bits, always an fp32
  normal); NaN results must be the canonical ``0x7FC00000``.
* ``Int8Fp16Dequant``: torch ``(code.float() * scale.float()).to(torch.float16)`` (the float32
  product is exact, so this is one RNE rounding); NaN results must be ``0x7E00``.

Both are combinational: one ``ctx.set``/``ctx.get`` per vector. The vectors are deterministic
and "exhaustive-ish": every pair of exponent fields (specials included) with extreme and random
significands, every subnormal significand, every int8 code against every scale exponent and
every special scale, plus random vectors; ``*_coverage`` tests prove (exact rational
arithmetic) that the dequantizer vectors hit round-up, round-down, ties resolved both ways,
carries into the exponent, subnormal results (only from subnormal scales, and always exact:
``c * s`` is a multiple of 2^-24), subnormal scales giving normal results and overflow, so a truncating or
round-half-away implementation cannot pass.
"""
import random
from fractions import Fraction

import pytest
import torch

from rtl.fp16_mul import FP16_QNAN, Fp16Mul, Int8Fp16Dequant
from rtl.fp32 import FP32_QNAN
from verif.comb_vectors import simulate


def f16(bits) -> torch.Tensor:
    return torch.tensor(bits, dtype=torch.int64).to(torch.int16).view(torch.float16)


def fp16_value(bits: int) -> Fraction:
    """Exact value of a finite fp16."""
    s, e, f = bits >> 15, (bits >> 10) & 0x1F, bits & 0x3FF
    v = Fraction(f, 1 << 10) * Fraction(2) ** -14 if e == 0 else Fraction(1024 + f, 1 << 10) * Fraction(2) ** (e - 15)
    return -v if s else v


# --------------------------------------------------------------------------- Fp16Mul
def mul_vectors() -> list[tuple[int, int]]:
    rng = random.Random(16)
    vec = [(0x0001, 0x0001), (0x8001, 0x0001), (0x7BFF, 0x7BFF), (0xFBFF, 0x7BFF), (0x0001, 0x7BFF),
           (0x03FF, 0x03FF), (0x0400, 0x0400)]          # extremes: 2^-48, 65504^2, ...
    mants = [0, 1, 0x3FF, 0x200]
    for ea in range(32):                       # every pair of exponent fields, specials included
        for eb in range(32):
            for ma, mb in [(0, 0), (1, 0x3FF), (0x3FF, 0x3FF), (0x200, 1)] + [
                    (rng.getrandbits(10), rng.getrandbits(10)) for _ in range(2)]:
                sa, sb = rng.getrandbits(1), rng.getrandbits(1)
                vec.append((sa << 15 | ea << 10 | ma, sb << 15 | eb << 10 | mb))
    for m in range(1024):                      # every subnormal significand, both operand positions
        b = rng.choice([rng.getrandbits(16), rng.getrandbits(1) << 15 | rng.choice(mants) | rng.randrange(31) << 10])
        vec.append((rng.getrandbits(1) << 15 | m, b))
        vec.append((b ^ 0x8000, m))
    for _ in range(4000):
        vec.append((rng.getrandbits(16), rng.getrandbits(16)))
    return vec


def torch_mul(vec) -> list[int]:
    a = f16([v[0] for v in vec]).float()
    b = f16([v[1] for v in vec]).float()
    p = a * b
    bits = (p.view(torch.int32).to(torch.int64) & 0xFFFFFFFF)
    return torch.where(torch.isnan(p), FP32_QNAN, bits).tolist()


def test_fp16_mul_matches_torch():
    vec = mul_vectors()
    dut = Fp16Mul()
    got = simulate(dut, [dut.a, dut.b], dut.p, vec)
    want = torch_mul(vec)
    bad = [(hex(a), hex(b), hex(g), hex(w)) for (a, b), g, w in zip(vec, got, want) if g != w]
    assert not bad, f"{len(bad)} of {len(vec)} wrong; first: {bad[:5]}"


def test_fp16_mul_vector_coverage():
    vec = mul_vectors()
    want = torch_mul(vec)
    kinds = set()
    for (a, b), p in zip(vec, want):
        ea, eb = (a >> 10) & 0x1F, (b >> 10) & 0x1F
        if p == FP32_QNAN:
            kinds.add("nan_inf_x_zero" if {ea, eb} & {31} and (a & 0x7FFF == 0 or b & 0x7FFF == 0) else "nan")
        elif p & 0x7FFFFFFF == 0x7F800000:
            kinds.add("inf")
        elif p & 0x7FFFFFFF == 0:
            kinds.add("-0" if p >> 31 else "+0")
        elif ea == 0 and eb == 0:
            kinds.add("sub_x_sub")
        elif ea == 0 or eb == 0:
            kinds.add("sub_x_normal")
        else:
            wide = ((1024 | a & 0x3FF) * (1024 | b & 0x3FF)) >> 21      # significand product >= 2
            kinds.add("normal_carry" if wide else "normal")
    assert kinds >= {"nan", "nan_inf_x_zero", "inf", "+0", "-0", "sub_x_sub", "sub_x_normal", "normal",
                     "normal_carry"}, kinds
    assert (0x0001, 0x0001) in vec or any(a & 0x7FFF == 1 and b & 0x7FFF == 1 for a, b in vec)   # 2^-48
    assert any(a & 0x7FFF == 0x7BFF and b & 0x7FFF == 0x7BFF for a, b in vec)                   # 65504^2


@pytest.mark.parametrize("a,b,p", [
    (0x3C00, 0x3C00, 0x3F800000),      # 1 * 1
    (0xC000, 0x3800, 0xBF800000),      # -2 * 0.5
    (0x0001, 0x0001, 0x27800000),      # 2^-24 * 2^-24 = 2^-48 (normal in fp32)
    (0x7BFF, 0x7BFF, 0x4F7FC004),      # 65504^2 = 4290774016
    (0x0000, 0x8000, 0x80000000),      # +0 * -0 = -0
    (0x7C00, 0xBC00, 0xFF800000),      # inf * -1 = -inf
    (0x7C00, 0x0000, FP32_QNAN),       # inf * 0 = NaN
    (0xFE01, 0x3C00, FP32_QNAN),       # NaN (any payload/sign) -> canonical
])
def test_fp16_mul_hand_checked(a, b, p):
    dut = Fp16Mul()
    assert simulate(dut, [dut.a, dut.b], dut.p, [(a, b)]) == [p]


# --------------------------------------------------------------------------- Int8Fp16Dequant
SPECIAL_SCALES = [0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF]


def dq_vectors() -> list[tuple[int, int]]:
    rng = random.Random(8)
    vec = []
    for code in range(256):                       # every code x every scale exponent
        for e in range(32):
            vec.append((code, rng.getrandbits(1) << 15 | e << 10 | rng.getrandbits(10)))
        for s in SPECIAL_SCALES:
            vec.append((code, s))
    for _ in range(3000):
        vec.append((rng.getrandbits(8), rng.getrandbits(16)))
    return vec


def torch_dq(vec) -> list[int]:
    c = torch.tensor([v[0] for v in vec], dtype=torch.int64).to(torch.uint8).view(torch.int8).float()
    s = f16([v[1] for v in vec]).float()
    w = (c * s).to(torch.float16)
    bits = w.view(torch.int16).to(torch.int64) & 0xFFFF
    return torch.where(torch.isnan(w), FP16_QNAN, bits).tolist()


def test_dequant_matches_torch():
    vec = dq_vectors()
    dut = Int8Fp16Dequant()
    got = simulate(dut, [dut.code, dut.scale], dut.w, vec)
    want = torch_dq(vec)
    bad = [(c, hex(s), hex(g), hex(w)) for (c, s), g, w in zip(vec, got, want) if g != w]
    assert not bad, f"{len(bad)} of {len(vec)} wrong; first: {bad[:5]}"


def test_dequant_vector_coverage():
    """The vectors round up, down, ties both ways, carry into the exponent, underflow, overflow."""
    vec = dq_vectors()
    want = torch_dq(vec)
    kinds = set()
    for (code, s), w in zip(vec, want):
        if (s >> 10) & 0x1F == 31:
            kinds.add("special_scale")
            continue
        c = code - 256 if code >= 128 else code
        exact = c * fp16_value(s)
        if w & 0x7FFF >= 0x7C00:
            kinds.add("overflow")
            continue
        r = fp16_value(w)
        if r == exact:
            # c * s is a multiple of 2^-24, so a subnormal result (only from a subnormal
            # scale: |c| >= 1) is always exact
            if (w >> 10) & 0x1F == 0 and w & 0x3FF:
                kinds.add("subnormal")
            elif (s >> 10) & 0x1F == 0 and (w >> 10) & 0x1F:
                kinds.add("subnormal_scale_normal_result")
            else:
                kinds.add("exact")
            continue
        # spacing of fp16 values on the side of r where the exact value lies
        e = (w >> 10) & 0x1F
        step = Fraction(2) ** (max(e, 1) - 25)
        if abs(exact) < abs(r) and e >= 2 and w & 0x3FF == 0:
            step /= 2                              # just below a power of two the spacing halves
        diff = abs(exact - r)
        if diff * 2 == step:
            kinds.add("tie_even_up" if abs(r) > abs(exact) else "tie_even_down")
        else:
            kinds.add("up" if abs(r) > abs(exact) else "down")
        if abs(r) > abs(exact) and w & 0x3FF == 0:
            kinds.add("carry_to_exponent")
    assert kinds >= {"special_scale", "overflow", "exact", "tie_even_up", "tie_even_down", "up", "down",
                     "subnormal", "subnormal_scale_normal_result",
                     "carry_to_exponent"}, kinds


@pytest.mark.parametrize("code,scale,w", [
    (3, 0x2E66, 0x34CC),       # 3 * fp16(0.1) = 0.2999267578125: a tie -> even 0.2998046875
    (1, 0x2E66, 0x2E66),       # exact
    (0xFF, 0x3C00, 0xBC00),    # -1 * 1
    (0x81, 0x7BFF, 0xFC00),    # -127 * 65504 -> -inf (overflow)
    (0x80, 0x0001, 0x8080),    # -128 * 2^-24 = -2^-17 (subnormal, exact)
    (0, 0xBC00, 0x8000),       # 0 * -1 = -0
    (0, 0x7C00, FP16_QNAN),    # 0 * inf = NaN
    (5, 0xFC00, 0xFC00),       # 5 * -inf = -inf
])
def test_dequant_hand_checked(code, scale, w):
    dut = Int8Fp16Dequant()
    assert simulate(dut, [dut.code, dut.scale], dut.w, [(code, scale)]) == [w]
