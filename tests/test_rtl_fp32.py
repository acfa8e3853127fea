"""rtl.fp32: ScaledIntToFp32 and Fp32Adder against torch, bit for bit (amaranth.sim).

Golden models (``sw.datapath`` steps 5-6):

* conversion: ``torch.ldexp(float64(mant), float64(exp)).to(torch.float32)`` -- exact in float64
  for ``int_width <= 54`` and ``exp_width <= 10``, so its only rounding is the float64->float32 RNE;
* addition: torch float32 ``a + b`` (CPU, no flush to zero); NaN results only need to be NaN.

Both components are combinational: a testbench ``ctx.set`` settles the design before it returns,
so each vector is one set/get. Vectors are deterministic (seeded), built by the ``*_vectors``
functions below; ``test_*_vectors_cover_rounding`` proves (with exact rational arithmetic) that
they contain round-up, round-down, ties of both parities, subnormal, min-normal and overflow
results, so a truncating or round-half-away implementation cannot pass.
"""
import gc
import random
import struct
import warnings
from fractions import Fraction

import pytest
import torch
from amaranth.hdl import UnusedElaboratable
from amaranth.sim import Simulator

from rtl.fp32 import FP32_QNAN, Fp32Adder, ScaledIntToFp32
from verif.comb_vectors import simulate

MASK32 = 0xFFFFFFFF
MAX_FINITE = 0x7F7FFFFF
MIN_NORMAL = 0x00800000
MAX_SUB = 0x007FFFFF
POS_INF = 0x7F800000
NEG = 0x80000000
ONE = 0x3F800000


# --------------------------------------------------------------------------- helpers
def bits_of(t: torch.Tensor) -> list[int]:
    return (t.view(torch.int32).to(torch.int64) & MASK32).tolist()


def f32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def is_nan(bits: int) -> bool:
    return (bits >> 23) & 0xFF == 0xFF and bits & 0x7FFFFF != 0


def is_inf(bits: int) -> bool:
    return bits & 0x7FFFFFFF == POS_INF


def torch_add(pairs) -> list[int]:
    a = torch.tensor([p[0] for p in pairs], dtype=torch.int64).to(torch.int32).view(torch.float32)
    b = torch.tensor([p[1] for p in pairs], dtype=torch.int64).to(torch.int32).view(torch.float32)
    return bits_of(a + b)


def torch_cvt(pairs) -> list[int]:
    mant = torch.tensor([p[0] for p in pairs], dtype=torch.int64).to(torch.float64)
    exp = torch.tensor([float(p[1]) for p in pairs], dtype=torch.float64)
    return bits_of(torch.ldexp(mant, exp).to(torch.float32))


def hx(v: int) -> str:
    return f"0x{v & MASK32:08x}"


def assert_all_equal(what, vectors, got, ref, fmt_in, nan_ok=False):
    """Exact comparison; lists up to 12 failing vectors with their inputs."""
    assert len(got) == len(ref) == len(vectors)
    bad = [(v, g, r) for v, g, r in zip(vectors, got, ref)
           if g != r and not (nan_ok and is_nan(r) and is_nan(g))]
    if bad:
        lines = [f"  {fmt_in(v)}: rtl={hx(g)} ({f32(g)!r})  torch={hx(r)} ({f32(r)!r})"
                 for v, g, r in bad[:12]]
        raise AssertionError(f"{what}: {len(bad)} of {len(vectors)} vectors differ from torch:\n"
                             + "\n".join(lines))


def fmt_add(v):
    return f"a={hx(v[0])} ({f32(v[0])!r}) b={hx(v[1])} ({f32(v[1])!r})"


def fmt_cvt(v):
    return f"mant={v[0]} exp={v[1]}"


def check_adder(vectors, what):
    dut = Fp32Adder()
    got = simulate(dut, [dut.a, dut.b], dut.sum, vectors)
    assert_all_equal(what, vectors, got, torch_add(vectors), fmt_add, nan_ok=True)
    return got


def check_cvt(int_width, exp_width, vectors, what):
    dut = ScaledIntToFp32(int_width, exp_width)
    got = simulate(dut, [dut.mant, dut.exp], dut.result, vectors)
    assert_all_equal(f"{what} (int_width={int_width}, exp_width={exp_width})", vectors, got,
                     torch_cvt(vectors), fmt_cvt)
    return got


def fp(sign: int, exp: int, frac: int) -> int:
    return (sign << 31) | (exp << 23) | frac


# --------------------------------------------------------------------------- rounding classifier
def classify(exact: Fraction, bits: int) -> set[str]:
    """Which rounding situations the (correct) result ``bits`` of ``exact`` exercises."""
    tags = set()
    if is_inf(bits):
        return {"overflow"}
    r = Fraction(f32(bits))
    if (bits >> 23) & 0xFF == 0 and bits & 0x7FFFFF:
        tags.add("subnormal")
    if bits & 0x7FFFFFFF == MIN_NORMAL and abs(exact) < Fraction(f32(MIN_NORMAL)):
        tags.add("up_into_min_normal")
    if r == exact:
        return tags | {"exact"}
    if r == 0:
        tags.add("underflow_to_zero")
    up = abs(exact) > abs(r)    # the neighbour on the far side of exact, by magnitude
    mag = bits & 0x7FFFFFFF
    nb_mag = mag + 1 if up else mag - 1
    # past the largest finite value the next "float" is 2**128 (IEEE rounds as if unbounded)
    nb_val = Fraction(2) ** 128 if nb_mag == POS_INF else Fraction(f32(nb_mag))
    neighbour = nb_val * (-1 if exact < 0 else 1)
    if abs(exact - r) == abs(neighbour - exact):
        tags.add("tie_rounded_up" if not up else "tie_rounded_down")
    else:
        tags.add("rounded_down" if up else "rounded_up")
    return tags


# =========================================================================== Fp32Adder
SPECIALS = [
    0x00000000, NEG,                       # +-0
    0x00000001, NEG | 0x00000001,          # +-min subnormal
    MAX_SUB, NEG | MAX_SUB,                # +-max subnormal
    MIN_NORMAL, NEG | MIN_NORMAL,          # +-min normal
    0x00800001, 0x00400000,                # min normal + ulp, half min normal
    ONE, NEG | ONE, 0x3F800001, 0x3F7FFFFF, 0x40000000, 0xBFC00000,
    0x33800000, 0x33000000,                # 2**-24, 2**-25 (half / quarter ulp of 1.0)
    MAX_FINITE, NEG | MAX_FINITE, 0x7F7FFFFE, 0x73800000,   # max finite, its half ulp (2**104)
    POS_INF, NEG | POS_INF,
    FP32_QNAN, 0xFFC00000, 0x7F800001, 0x7FBFFFFF,          # quiet / signalling NaNs
]


def adder_special_vectors():
    return [(a, b) for a in SPECIALS for b in SPECIALS]


def adder_constructed_vectors():
    """Ties of both parities, cancellation, overflow and subnormal boundaries."""
    rng = random.Random(11)
    v = []
    for _ in range(60):
        s, e, f = rng.getrandbits(1), rng.randint(25, 230), rng.getrandbits(23)
        x = fp(s, e, f)
        for frac_odd in (0, 1):
            xx = (x & ~1) | frac_odd
            half = fp(s, e - 24, 0)                       # exactly half an ulp of xx
            v += [(xx, half), (half, xx),
                  (xx, half ^ NEG),                        # tie in subtraction
                  (xx, fp(s, e - 24, 1)),                  # just above half
                  (xx, fp(s, e - 25, 0x7FFFFF)),           # just below half
                  (xx, xx ^ NEG),                          # exact cancellation -> +0
                  (xx, (xx ^ NEG) + 1), (xx, (xx ^ NEG) - 1)]   # one-ulp cancellation
        # same exponent, different fractions: carry-out with a guard bit (tie half the time)
        v.append((x, fp(s, e, rng.getrandbits(23))))
        # d = 1 subtraction with massive cancellation
        v.append((x, fp(s ^ 1, e - 1, rng.getrandbits(23))))
    for _ in range(40):                                   # subnormal +- subnormal / min normal
        a = fp(rng.getrandbits(1), 0, rng.getrandbits(23))
        b = fp(rng.getrandbits(1), rng.randint(0, 2), rng.getrandbits(23))
        v += [(a, b), (b, a ^ NEG)]
    v += [(MAX_SUB, 1), (MAX_SUB, MAX_SUB), (MIN_NORMAL, NEG | 1), (MIN_NORMAL, NEG | MIN_NORMAL),
          (0x00800001, NEG | MIN_NORMAL)]
    # overflow: max finite + {half ulp (tie, odd -> up -> inf), below half, max finite}
    for s in (0, NEG):
        v += [(MAX_FINITE | s, 0x73800000 | s), (MAX_FINITE | s, 0x737FFFFF | s),
              (MAX_FINITE | s, MAX_FINITE | s), (0x7F000000 | s, 0x7F000000 | s),
              (0x7F7FFFFE | s, 0x73800000 | s),            # tie, even -> stays finite
              (MAX_FINITE | s, (0x73800000 | s) ^ NEG)]
    return v


def adder_sweep_vectors():
    """Every exponent difference 0..30, all sign pairs, random significands, exponents
    spread over subnormal, normal and near-overflow ranges."""
    rng = random.Random(22)
    v = []
    for d in range(31):
        for i in range(48):
            ea = rng.choice([rng.randint(0, 40), rng.randint(d, 254), rng.randint(220, 254)])
            eb = max(ea - d, 0)
            if i % 4 == 3:
                ea, eb = d, 0                               # large operand just above subnormals
            fa, fb = rng.getrandbits(23), rng.getrandbits(23)
            if i % 3 == 0:                                  # few significant bits: ties likely
                fb &= ~((1 << rng.randint(0, 23)) - 1)
            a, b = fp(i & 1, ea, fa), fp((i >> 1) & 1, eb, fb)
            v.append((a, b) if i % 8 < 4 else (b, a))
    return v


def adder_random_vectors():
    rng = random.Random(33)
    v = [(rng.getrandbits(32), rng.getrandbits(32)) for _ in range(700)]
    v += [(fp(rng.getrandbits(1), rng.randint(0, 3), rng.getrandbits(23)),
           fp(rng.getrandbits(1), rng.randint(0, 3), rng.getrandbits(23))) for _ in range(200)]
    return v


def test_adder_special_values():
    check_adder(adder_special_vectors(), "Fp32Adder special values (all pairs)")


def test_adder_signed_zeros_inf_nan_explicit():
    """The IEEE corner rules spelled out (independently of torch)."""
    cases = [
        ((0, 0), 0), ((NEG, NEG), NEG), ((0, NEG), 0), ((NEG, 0), 0),
        ((ONE, NEG | ONE), 0), ((NEG | ONE, ONE), 0), ((1, NEG | 1), 0),
        ((POS_INF, ONE), POS_INF), ((NEG | POS_INF, MAX_FINITE), NEG | POS_INF),
        ((POS_INF, POS_INF), POS_INF), ((NEG | POS_INF, NEG | POS_INF), NEG | POS_INF),
        ((POS_INF, NEG | POS_INF), FP32_QNAN), ((NEG | POS_INF, POS_INF), FP32_QNAN),
        ((FP32_QNAN, ONE), FP32_QNAN), ((ONE, 0xFFC00001), FP32_QNAN),
        ((0x7F800001, POS_INF), FP32_QNAN),
        ((MAX_FINITE, MAX_FINITE), POS_INF), ((1, 1), 2), ((MAX_SUB, 1), MIN_NORMAL),
        ((ONE, 0x33800000), ONE), ((0x3F800001, 0x33800000), 0x3F800002),
    ]
    dut = Fp32Adder()
    got = simulate(dut, [dut.a, dut.b], dut.sum, [c[0] for c in cases])
    for ((a, b), want), g in zip(cases, got):
        assert g == want, f"Fp32Adder: {fmt_add((a, b))}: got {hx(g)}, want {hx(want)}"


def test_adder_constructed_ties_cancellation_overflow():
    check_adder(adder_constructed_vectors(), "Fp32Adder ties/cancellation/overflow")


def test_adder_exponent_difference_sweep():
    check_adder(adder_sweep_vectors(), "Fp32Adder exponent-difference sweep 0..30")


def test_adder_random_bit_patterns():
    check_adder(adder_random_vectors(), "Fp32Adder random bit patterns")


def test_adder_vectors_cover_rounding():
    """The adder vectors exercise every rounding situation (so e.g. truncation would fail)."""
    vectors = (adder_special_vectors() + adder_constructed_vectors() + adder_sweep_vectors()
               + adder_random_vectors())
    ref = torch_add(vectors)
    seen: dict[str, int] = {}
    for (a, b), r in zip(vectors, ref):
        if is_nan(a) or is_nan(b) or is_inf(a) or is_inf(b):
            continue
        for tag in classify(Fraction(f32(a)) + Fraction(f32(b)), r):
            seen[tag] = seen.get(tag, 0) + 1
    # (no "up_into_min_normal": a sum below the smallest normal is always exact in binary32)
    need = {"exact": 100, "rounded_up": 100, "rounded_down": 100, "tie_rounded_up": 20,
            "tie_rounded_down": 20, "subnormal": 50, "overflow": 4}
    short = {k: seen.get(k, 0) for k, n in need.items() if seen.get(k, 0) < n}
    assert not short, f"adder vectors miss rounding cases: {short} (seen {seen})"


# =========================================================================== ScaledIntToFp32
def _clamp_exp(e, exp_width):
    return max(-(1 << (exp_width - 1)), min((1 << (exp_width - 1)) - 1, e))


def _window_exps(lead, exp_width, stride, rng):
    """Exponents from 'underflows to zero' through subnormal and normal to 'overflows',
    for a mantissa whose leading one is at bit ``lead``: every value near the three
    boundaries, a stride through the middle, and the extremes of the exp range."""
    lo, hi = -(1 << (exp_width - 1)), (1 << (exp_width - 1)) - 1
    under, sub_top, over = -150 - lead, -126 - lead, 127 - lead      # 2**(exp+lead) thresholds
    exps = {lo, hi, lo + 1, hi - 1}
    for edge in (under, sub_top, over):
        exps.update(range(edge - 3, edge + 4))
    exps.update(range(under - 6, over + 6, stride))
    exps.update(rng.randint(lo, hi) for _ in range(4))
    return sorted(_clamp_exp(e, exp_width) for e in exps)


def cvt_special_vectors(int_width, exp_width, stride=7, seed=44):
    rng = random.Random(seed)
    top = (1 << (int_width - 1)) - 1
    mants = sorted(m for m in {0, 1, -1, 2, -2, 3, -3, top, -top, -(1 << (int_width - 1)), top >> 1,
                               -(top >> 1)} if -top - 1 <= m <= top)
    v = []
    for m in mants:
        for e in _window_exps(max(abs(m).bit_length() - 1, 0), exp_width, stride, rng):
            v.append((m, e))
    return v


def cvt_tie_vectors(int_width, exp_width, count=120, seed=55):
    """Mantissas with exactly 24, 25 and 26 significant bits (25: LSB set = exact tie;
    26: low bits 10 = tie, 01/11 = below/above half), shifted within the integer, with
    exponents in the normal range, plus subnormal ties (LSB at 2**-150)."""
    rng = random.Random(seed)
    v = []
    room = int_width - 1                                   # magnitude bits available
    for i in range(count):
        nbits = (24, 25, 26)[i % 3]
        if nbits > room:
            continue
        body = rng.getrandbits(nbits - 2) << 1
        low = {24: rng.getrandbits(1), 25: 1, 26: rng.choice([0b10, 0b10, 0b01, 0b11])}[nbits]
        if nbits == 26:
            body = rng.getrandbits(nbits - 3) << 2
        m = (1 << (nbits - 1)) | body | low
        m <<= rng.randint(0, room - nbits)
        lead = m.bit_length() - 1
        e = _clamp_exp(rng.randint(-125, 126) - lead, exp_width)
        v.append((-m if i & 4 else m, e))
    for i in range(count):                                  # subnormal ties and near-ties
        k = rng.randint(1, min(24, room))
        m = rng.getrandbits(k) | 1 | (1 << (k - 1))
        s = rng.randint(0, room - k)
        e = -150 - s + rng.choice([0, 0, 1, -1])
        if exp_width >= 9:
            v.append((-(m << s) if i & 1 else m << s, e))
    if room >= 24 and exp_width >= 9:                       # rounding up into the smallest normal
        for s in range(0, room - 23, 5):
            v += [((2 ** 24 - 1) << s, -150 - s), (-((2 ** 24 - 1) << s), -150 - s),
                  ((2 ** 24 - 3) << s, -150 - s), (1 << s, -150 - s), (3 << s, -150 - s)]
    return v


def cvt_random_vectors(int_width, exp_width, count, seed=66):
    rng = random.Random(seed)
    v = []
    for i in range(count):
        nbits = rng.randint(0, int_width - 1)
        m = rng.getrandbits(nbits) if nbits else 0
        if i % 3 == 0 and nbits > 26:                       # few significant bits: ties likely
            m &= ~((1 << rng.randint(0, nbits - 24)) - 1)
        m = -m if rng.getrandbits(1) else m
        lead = max(m.bit_length() - 1, 0)
        e = (rng.randint(-(1 << (exp_width - 1)), (1 << (exp_width - 1)) - 1) if i % 2
             else _clamp_exp(rng.randint(-155, 130) - lead, exp_width))
        v.append((m, e))
    return v


def cvt_sweep_vectors(int_width, exp_width, seed=77):
    """A few mantissas with every exponent from below 'underflow to zero' to 'overflow'."""
    rng = random.Random(seed)
    v = []
    lo, hi = -(1 << (exp_width - 1)), (1 << (exp_width - 1)) - 1
    for nbits in (int_width - 1, 30, 25):
        m = (1 << (nbits - 1)) | rng.getrandbits(nbits - 1)
        m = -m if nbits == 30 else m
        lead = nbits - 1
        v += [(m, e) for e in range(max(lo, -152 - lead), min(hi, 129 - lead) + 1)]
    return v


MAIN = (48, 10)


def test_cvt_special_mantissas_exp_windows():
    check_cvt(*MAIN, cvt_special_vectors(*MAIN), "special mantissas x exponent windows")


def test_cvt_ties_24_25_26_bits_and_subnormal_ties():
    check_cvt(*MAIN, cvt_tie_vectors(*MAIN), "24/25/26-bit ties and subnormal ties")


def test_cvt_exponent_sweep_underflow_to_overflow():
    check_cvt(*MAIN, cvt_sweep_vectors(*MAIN), "exp sweep underflow..subnormal..normal..overflow")


def test_cvt_random():
    check_cvt(*MAIN, cvt_random_vectors(*MAIN, 700), "random mantissa/exponent")


@pytest.mark.parametrize("int_width,exp_width", [(54, 10), (43, 10), (26, 9), (12, 6), (2, 3)])
def test_cvt_other_widths(int_width, exp_width):
    v = (cvt_special_vectors(int_width, exp_width, stride=23, seed=int_width)
         + cvt_tie_vectors(int_width, exp_width, count=30, seed=int_width)
         + cvt_random_vectors(int_width, exp_width, 150, seed=int_width))
    check_cvt(int_width, exp_width, v, "other widths")


def test_cvt_explicit_values():
    """Hand-checked results (independent of torch)."""
    cases = [
        ((0, 0), 0), ((0, -512), 0), ((0, 511), 0),
        ((1, 0), ONE), ((-1, 0), NEG | ONE), ((3, -1), 0x3FC00000),
        ((1, -149), 0x00000001), ((1, -150), 0), ((-1, -150), NEG), ((3, -150), 0x00000002),
        ((3, -151), 0x00000001), ((5, -151), 0x00000001), ((1, -126), MIN_NORMAL),
        ((2 ** 24 - 1, -150), MIN_NORMAL),                         # tie, odd -> up into min normal
        ((2 ** 24 + 1, 0), 0x4B800000), ((2 ** 24 + 3, 0), 0x4B800002),   # 25-bit ties
        ((2 ** 25 + 1, 0), 0x4C000000), ((2 ** 25 + 3, 0), 0x4C000001),
        ((2 ** 24 - 1, 104), MAX_FINITE), ((2 ** 25 - 1, 103), POS_INF),  # rounds up to 2**128
        ((-(2 ** 25 - 1), 103), NEG | POS_INF), ((1, 128), POS_INF), ((1, 127), 0x7F000000),
        ((2 ** 47 - 1, 511), POS_INF), ((-(2 ** 47 - 1), -512), NEG),
    ]
    dut = ScaledIntToFp32(*MAIN)
    got = simulate(dut, [dut.mant, dut.exp], dut.result, [c[0] for c in cases])
    for ((m, e), want), g in zip(cases, got):
        assert g == want, f"ScaledIntToFp32{MAIN}: {fmt_cvt((m, e))}: got {hx(g)}, want {hx(want)}"


def test_cvt_vectors_cover_rounding():
    """The main-config vectors exercise every rounding situation (so truncation would fail)."""
    vectors = (cvt_special_vectors(*MAIN) + cvt_tie_vectors(*MAIN) + cvt_sweep_vectors(*MAIN)
               + cvt_random_vectors(*MAIN, 700))
    seen: dict[str, int] = {}
    for (m, e), r in zip(vectors, torch_cvt(vectors)):
        for tag in classify(Fraction(m) * Fraction(2) ** e, r):
            seen[tag] = seen.get(tag, 0) + 1
    need = {"exact": 100, "rounded_up": 100, "rounded_down": 100, "tie_rounded_up": 20,
            "tie_rounded_down": 20, "subnormal": 50, "up_into_min_normal": 2,
            "underflow_to_zero": 20, "overflow": 20}
    short = {k: seen.get(k, 0) for k, n in need.items() if seen.get(k, 0) < n}
    assert not short, f"converter vectors miss rounding cases: {short} (seen {seen})"


@pytest.mark.parametrize("int_width,exp_width", [(55, 10), (1, 10), (48, 1)])
def test_cvt_rejects_bad_widths(int_width, exp_width):
    with warnings.catch_warnings():   # the half-built component would warn "never used" when freed
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match="must be an int in") as excinfo:
            ScaledIntToFp32(int_width, exp_width)
        del excinfo
        gc.collect()


# =========================================================================== Verilog
def test_verilog_convert_both():
    from amaranth.back import verilog
    add_v = verilog.convert(Fp32Adder(), name="fp32_adder")
    cvt_v = verilog.convert(ScaledIntToFp32(48, 10), name="scaled_int_to_fp32")
    assert "module fp32_adder" in add_v
    for decl in ("input [31:0] a;", "input [31:0] b;", "output [31:0] sum;"):
        assert decl in add_v, decl
    assert "module scaled_int_to_fp32" in cvt_v
    for decl in ("input [47:0] mant;", "input [9:0] exp;", "output [31:0] result;"):
        assert decl in cvt_v, decl
    # combinational: no clock, no registers
    assert "posedge" not in add_v and "posedge" not in cvt_v


def test_adder_two_stage_pipeline_equals_combinational():
    """``Fp32Adder(stages=2)``: one operand pair per cycle, each sum exactly one cycle later,
    equal to the combinational adder (and so to torch) on every special, tie and random vector."""
    vectors = adder_special_vectors()[:300] + adder_constructed_vectors() + adder_random_vectors()[:300]
    dut = Fp32Adder(stages=2)
    out = []

    async def bench(ctx):
        for a, b in vectors:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            await ctx.tick()
            out.append(ctx.get(dut.sum))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert_all_equal("Fp32Adder(stages=2)", vectors, out, torch_add(vectors), fmt_add, nan_ok=True)


def test_adder_stages_checked():
    with pytest.raises(ValueError, match="stages=3"):
        Fp32Adder(stages=3)
