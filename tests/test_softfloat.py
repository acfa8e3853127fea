"""RTL floating-point units against Berkeley SoftFloat (``verif.softfloat_oracle``).

A subset (about 10^5 vectors per unit, every vector class represented) of what
``python -m verif.softfloat_oracle`` checks on more than 10^6 per unit: Fp32Adder (combinational
and ``stages=2``), ScaledIntToFp32 (44 and 54 bits), and Fp16Mul, Verilator-compiled,
bit for bit against softfloatpy, NaN results as the documented canonical NaN (``0x7FC00000``).
Plus known-answer
vectors, a check that the harness does catch a wrong unit (a flush-to-zero adder), and checks of
the oracle and of the coverage classifier themselves. Builds go under pytest's ``tmp_path_factory``.
"""
import dataclasses

import numpy as np
import pytest
from amaranth import Cat, Const, Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from verif import softfloat_oracle as so

# fraction of each full vector class kept by the tests (~10^5 vectors per unit)
SUBSET = {"fp32_add": 0.1, "fp32_add_s2": 0.1, "cvt_w44": 0.1, "cvt_w54": 0.1, "fp16_mul": 0.025}
QNAN = so.FP32_QNAN


@pytest.fixture(scope="module")
def build_root(tmp_path_factory):
    return tmp_path_factory.mktemp("softfloat")


@pytest.fixture(scope="module")
def shared_cache():
    return {}


@pytest.fixture(scope="module")
def models(build_root):
    """Compiled model of each unit, built once per module."""
    cache = {}

    def get(name):
        if name not in cache:
            unit = so.UNITS[name]
            cache[name] = (unit, so.build_model(unit, build_root / name))   # the dir check_unit uses
        return cache[name]
    return get


def _describe(res: so.UnitResult) -> str:
    lines = [f"{res.unit}: {res.mismatches} mismatches in {res.vectors} vectors"]
    for k, c in res.classes.items():
        if c.mismatches:
            lines.append(f"  {k}: {c.mismatches}/{c.vectors}, e.g. {c.examples[:3]}")
    if res.reset_value not in (None, 0):
        lines.append(f"  after reset: 0x{res.reset_value:08x}")
    return "\n".join(lines)


@pytest.mark.parametrize("unit", list(SUBSET))
def test_unit_matches_softfloat(unit, build_root, shared_cache):
    res = so.check_unit(unit, build_root, scale=SUBSET[unit], seed=1, cache=shared_cache)
    assert 90_000 <= res.vectors <= 200_000
    assert len(res.classes) >= 3 and all(c.vectors > 0 for c in res.classes.values())
    assert res.mismatches == 0, _describe(res)
    if so.UNITS[unit].clocked:
        assert res.reset_value == 0


# --------------------------------------------------------------------------- known answers
def _f32_bits(v: float) -> int:
    return int(np.array([v], dtype=np.float32).view(np.uint32)[0])


ADD_KAT = [   # (a, b, expected), every expected value checked against SoftFloat too
    (0x3F800000, 0x33800000, 0x3F800000),   # 1 + 2^-24: tie, even (down)
    (0x3F800001, 0x33800000, 0x3F800002),   # (1 + ulp) + 2^-24: tie, even (up)
    (0x3F800000, 0x33800001, 0x3F800001),   # just above the tie: up
    (0x3F800000, 0xB3000000, 0x3F800000),   # 1 - 2^-25: tie between 1 - 2^-24 and 1, even = 1
    (0x3F800000, 0xB3800000, 0x3F7FFFFF),   # 1 - 2^-24: exact
    (0x7F7FFFFF, 0x73000000, 0x7F800000),   # MAX + half an ulp: tie to even = 2^128 -> inf
    (0x7F7FFFFF, 0x72FFFFFF, 0x7F7FFFFF),   # MAX + just under half an ulp: MAX
    (0xFF7FFFFF, 0xF3000000, 0xFF800000),   # negative overflow
    (0x00400000, 0x00400000, 0x00800000),   # subnormal + subnormal = min normal
    (0x00800000, 0x80000001, 0x007FFFFF),   # min normal - min subnormal = max subnormal
    (0x00000001, 0x80000001, 0x00000000),   # x + (-x) = +0
    (0x80000000, 0x80000000, 0x80000000),   # (-0) + (-0) = -0
    (0x00000000, 0x80000000, 0x00000000),   # (+0) + (-0) = +0
    (0x7F800000, 0x7F7FFFFF, 0x7F800000),   # inf + finite
    (0xFF800000, 0xFF800000, 0xFF800000),   # -inf + -inf
    (0x7F800000, 0xFF800000, QNAN),         # inf - inf: canonical NaN
    (0x7F800001, 0x3F800000, QNAN),         # sNaN input: canonical NaN
    (0xFFFFFFFF, 0x00000000, QNAN),         # negative NaN with payload: canonical NaN
    (0x3F800000, 0x7FC00001, QNAN),
]

CVT_KAT = [   # (mant, exp, expected) for ScaledIntToFp32
    (1, -150, 0x00000000),                  # 2^-150: tie between 0 and 2^-149, even = 0
    (3, -151, 0x00000001),                  # 0.75 * 2^-149: up
    (-3, -150, 0x80000002),                 # -1.5 * 2^-149: tie, even = 2 * 2^-149
    (1, -149, 0x00000001),                  # smallest subnormal
    ((1 << 24) - 1, -150, 0x00800000),      # rounds up into the smallest normal
    ((1 << 24) - 1, 104, 0x7F7FFFFF),       # MAX_FINITE exactly
    ((1 << 25) - 1, 103, 0x7F800000),       # MAX + half an ulp: tie to even -> inf
    ((((1 << 25) - 1) << 18) - 1, 85, 0x7F7FFFFF),   # just under MAX + half an ulp: MAX
    ((1 << 25) - 3, 103, 0x7F7FFFFE),       # MAX - half an ulp: tie, even = MAX - ulp
    ((1 << 24) + 1, 0, 0x4B800000),         # 2^24 + 1: tie, even (down)
    ((1 << 24) + 3, 0, 0x4B800002),         # 2^24 + 3: tie, even (up)
    (0, 511, 0x00000000),                   # zero mant: +0
    (-1, -512, 0x80000000),                 # underflow keeps the sign
    (-(1 << 43), 0, 0xD5000000),            # most negative 44-bit mant
]

MUL_KAT = [   # (a, b, expected) for Fp16Mul: exact products
    (0x0001, 0x0001, 0x27800000),           # 2^-24 * 2^-24 = 2^-48
    (0x7BFF, 0x7BFF, _f32_bits(65504.0 * 65504.0)),
    (0x3C00, 0xBC00, 0xBF800000),           # 1 * -1
    (0x8000, 0x4000, 0x80000000),           # -0 * 2 = -0
    (0x03FF, 0x3C01, _f32_bits(1023 * 2.0 ** -24 * (1 + 2.0 ** -10))),
    (0x7C00, 0x8001, 0xFF800000),           # inf * -subnormal = -inf
    (0x7C00, 0x0000, QNAN),                 # inf * 0: canonical NaN
    (0x7C01, 0x3C00, QNAN),                 # sNaN
    (0xFE01, 0x0000, QNAN),                 # negative qNaN with payload
]


def _run_kat(models, name, rows):
    unit, exe = models(name)
    x = np.array([[r[0], r[1]] for r in rows], dtype=np.int64).view(np.uint64)
    want = np.array([r[2] for r in rows], dtype=np.uint64)
    oracle = unit.oracle(x)
    assert [hex(v) for v in oracle] == [hex(v) for v in want], "SoftFloat disagrees with the table"
    got, _ = so.run_model(unit, exe, x, exe.parent.parent)
    assert [hex(v) for v in got] == [hex(v) for v in want]


@pytest.mark.parametrize("name", ["fp32_add", "fp32_add_s2"])
def test_adder_known_answers(models, name):
    _run_kat(models, name, ADD_KAT)


@pytest.mark.parametrize("name", ["cvt_w44", "cvt_w54"])
def test_converter_known_answers(models, name):
    _run_kat(models, name, CVT_KAT)


def test_fp16_mul_known_answers(models):
    _run_kat(models, "fp16_mul", MUL_KAT)


# --------------------------------------------------------------------------- the harness itself
class _FtzAdder(wiring.Component):
    """A deliberately wrong adder: Fp32Adder with subnormal results flushed to (signed) zero."""
    a: In(32)
    b: In(32)
    sum: Out(32)

    def elaborate(self, platform):
        from rtl.fp32 import Fp32Adder
        m = Module()
        add = m.submodules.add = Fp32Adder()
        m.d.comb += [add.a.eq(self.a), add.b.eq(self.b)]
        sub = (add.sum[23:31] == 0) & (add.sum[:23] != 0)
        m.d.comb += self.sum.eq(Mux(sub, Cat(Const(0, 31), add.sum[31]), add.sum))
        return m


def test_harness_catches_a_flush_to_zero_adder(build_root, shared_cache):
    mutant = dataclasses.replace(so.UNITS["fp32_add"], name="fp32_add_ftz_mutant", make=_FtzAdder)
    res = so.check_unit(mutant, build_root, scale=SUBSET["fp32_add"], seed=1, cache=shared_cache)
    per = {k: c.mismatches for k, c in res.classes.items()}
    # exactly the vectors whose correct sum is subnormal
    for k, c in res.classes.items():
        assert c.mismatches == c.coverage["subnormal"], (k, per)
    assert per["underflow_subnormal"] > 1000 and per["overflow_boundary"] == 0
    ex = res.classes["underflow_subnormal"].examples[0]
    assert int(ex["rtl"], 16) & 0x7FFFFFFF == 0 and int(ex["softfloat"], 16) & 0x7F800000 == 0


class _NoLatencyAdder(wiring.Component):
    """The combinational Fp32Adder in a design with a clock: wrong for the ``stages=2`` contract
    (its sum is one cycle early)."""
    a: In(32)
    b: In(32)
    sum: Out(32)

    def elaborate(self, platform):
        from amaranth import Signal

        from rtl.fp32 import Fp32Adder
        m = Module()
        add = m.submodules.add = Fp32Adder()
        dummy = Signal()
        m.d.sync += dummy.eq(~dummy)          # gives the design its clk and rst ports
        m.d.comb += [add.a.eq(self.a), add.b.eq(self.b), self.sum.eq(add.sum | (dummy & 0))]
        return m


def test_harness_checks_the_pipeline_latency(build_root, shared_cache):
    wrong = dataclasses.replace(so.UNITS["fp32_add_s2"], name="fp32_add_no_latency", make=_NoLatencyAdder)
    res = so.check_unit(wrong, build_root, scale=0.01, seed=1, cache=shared_cache)
    assert res.mismatches > 0.9 * res.vectors


def test_oracle_matches_ieee_hardware():
    """softfloatpy through the harness's byte-order plumbing == numpy's IEEE float32 on x86."""
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.integers(0, 1 << 32, (20_000, 2), dtype=np.int64).astype(np.uint64),
                        so._pairs(so.FP32_SPECIALS)])
    a, b = (x[:, i].astype(np.uint32).view(np.float32) for i in (0, 1))
    with np.errstate(all="ignore"):
        hw = so._canonical_nan32((a + b).view(np.uint32).astype(np.uint64))
    assert np.array_equal(so.oracle_f32_add(x), hw)
    x16 = so._pairs(so.FP16_SPECIALS)
    a, b = (x16[:, i].astype(np.uint16).view(np.float16).astype(np.float32) for i in (0, 1))
    with np.errstate(all="ignore"):
        hw = so._canonical_nan32((a * b).view(np.uint32).astype(np.uint64))
    assert np.array_equal(so.oracle_fp16_mul(x16), hw)


@pytest.mark.parametrize("name", ["fp32_add", "cvt_w44"])
def test_rounding_classifier_agrees_with_softfloat_modes(name):
    """The report's exact / round-up / tie counts (integer arithmetic) against SoftFloat itself:
    rounding up in magnitude (overflow included) <=> RNE differs from round-toward-zero; a tie
    resolved down <=> RNE differs from round-half-away; overflow <=> the RNE result is infinite."""
    unit = so.UNITS[name]
    inf_bits = np.uint64(0x7F800000)
    x = np.concatenate(list(so.vector_classes(unit, scale=0.01, seed=2).values()))
    if name == "fp32_add":
        fin = (((x[:, 0] >> np.uint64(23)) & np.uint64(0xFF)) != 0xFF) & \
              (((x[:, 1] >> np.uint64(23)) & np.uint64(0xFF)) != 0xFF)
        x = x[fin]
        kinds, run = so._f32_add_rounding(x), so.oracle_f32_add
    elif name.startswith("cvt"):
        kinds, run = so._cvt_rounding(x), (lambda v, mode: so.oracle_scaled_int_to_f32(v, 10, mode=mode))
    rne, rz, away = (run(x, mode=m) for m in ("NEAR_EVEN", "MIN_MAG", "NEAR_MAX_MAG"))
    up = rne != rz
    assert np.array_equal(up, kinds["round_up"] | kinds["tie_to_even_up"] | kinds["overflow"] |
                          (kinds.get("far_operand", np.zeros(len(x), bool)) & up))
    assert not (up & (kinds["exact"] | kinds["round_down"] | kinds["tie_to_even_down"])).any()
    assert np.array_equal(kinds["tie_to_even_down"], rne != away)
    sign_bit = np.uint64(0x80000000)
    assert np.array_equal(kinds["overflow"], (rne & ~sign_bit) == inf_bits)
    assert min(int(kinds[k].sum()) for k in ("tie_to_even_up", "tie_to_even_down", "overflow", "exact")) > 20
