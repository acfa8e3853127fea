"""rtl.fp16_mul: Fp16Mul against torch, bit for bit (amaranth.sim).

Golden model: torch ``a.float() * b.float()`` (exact: 22 significant bits, always an fp32
normal); NaN results must be the canonical ``0x7FC00000``.

Combinational: one ``ctx.set``/``ctx.get`` per vector. The vectors are deterministic and
"exhaustive-ish": every pair of exponent fields (specials included) with extreme and random
significands, every subnormal significand, plus random vectors; ``test_fp16_mul_vector_coverage``
checks that they reach the extremes.
"""
import random

import pytest
import torch

from rtl.fp16_mul import Fp16Mul
from rtl.fp32 import FP32_QNAN
from verif.comb_vectors import simulate


def f16(bits) -> torch.Tensor:
    return torch.tensor(bits, dtype=torch.int64).to(torch.int16).view(torch.float16)


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
