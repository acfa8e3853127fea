"""sw.terms: every code of every decodable format decomposes into few signed powers of two."""
import pytest
import torch

from sw import terms as T

EXPECTED_TERMS = {"int3": 2, "int4": 2, "int6": 3, "int8": 4, "int3_asym": 2, "int4_asym": 2, "fp3": 1,
                  "fp4_e2m1": 2, "bitmod3": 2, "bitmod4": 2, "fp6_e3m2": 2, "fp6_e2m3": 3}


@pytest.mark.parametrize("fmt", T.HW_FORMATS)
def test_terms_reproduce_every_value(fmt):
    assert T.terms(fmt) == EXPECTED_TERMS[fmt]
    u = T.unit_exp(fmt)
    for sel, v in enumerate(T.variants(fmt)):
        for code in range(1 << v.bits):
            ts = T.decompose(fmt, code, sel)
            assert len(ts) == T.terms(fmt)
            total = sum(t.value for t in ts)
            if T.is_asym(fmt):
                assert total == code - (1 << (v.bits - 1))
            elif bool(v.valid_codes[code]):
                assert total == float(v.decode(torch.tensor([code]))[0]) * 2 ** u, (fmt, sel, code)
            else:   # INT's unused -2^(b-1) decodes as two's complement
                assert total == -(1 << (v.bits - 1))


def test_booth_digit_positions():
    # radix-4 Booth: term k of an INT has shift 2k or 2k+1
    for code in range(256):
        for k, t in enumerate(reversed(T.decompose("int8", code))):
            assert t.zero or t.shift in (2 * k, 2 * k + 1)


def test_e2m3_needs_three_terms():
    # 11/8 = 1.011b is not ±2^a ± 2^b: the FP6 E2M3 decoder needs 3 terms
    vals = {s * (2 ** a) + r * (2 ** b) for a in range(8) for b in range(8) for s in (1, -1) for r in (0, 1, -1)}
    assert 11 not in vals
    assert T.decompose("fp6_e2m3", 0b001011)[2].zero is False


def test_unknown_format():
    with pytest.raises(ValueError, match="no hardware decoder"):
        T.terms("fp8_e4m3")


def test_fp_parts_from_the_fields():
    # (s, sig, x): w_int = (-1)^s * sig * 2^x, sig = hidden << M | m, x = max(e, 1) - 1
    assert T.fp_fields("fp6_e3m2") == (6, 2, 3)
    assert T.fp_fields("bitmod4") == (4, 1, 2)
    assert T.fp_parts("fp4_e2m1", 0b0111) == (0, 3, 2)          # +6.0 = 12 halves
    assert T.fp_parts("fp6_e3m2", 0b111111) == (1, 7, 6)        # -28 = -448 sixteenths
    assert T.fp_parts("fp6_e2m3", 0b000101) == (0, 5, 0)        # subnormal 5/8
    # BitMoD's special value (the -0 code): odd sig and the x of its value
    assert T.fp_parts("bitmod4", 0b1000, 0) == (0, 5, 1)        # +5.0 = 10 halves
    assert T.fp_parts("bitmod4", 0b1000, 3) == (1, 1, 4)        # -8.0 = -16 halves
    assert T.fp_parts("bitmod3", 0b100, 2) == (0, 3, 1)         # +6
    with pytest.raises(ValueError, match="^int4 is an INT format, not sign-magnitude$"):
        T.fp_fields("int4")


def test_fp_terms_are_booth_digits_of_the_significand():
    # digit k of sig (read as 0sig) shifted by x; most significant first
    assert T.decompose("fp4_e2m1", 0b0010) == [T.Term(0, 2), T.Term(1, 1)]     # 2 = 4 - 2
    assert T.decompose("fp6_e3m2", 0b111111) == [T.Term(1, 9), T.Term(0, 6)]   # -(7 << 6) = -(8 - 1) << 6
    assert T.decompose("fp3", 0b101) == [T.Term(1, 0)]
    for fmt in ("fp4_e2m1", "fp6_e3m2", "fp6_e2m3", "bitmod4"):
        n = T.terms(fmt)
        for sel in range(len(T.variants(fmt))):
            for code in range(1 << T.code_bits(fmt)):
                s, sig, x = T.fp_parts(fmt, code, sel)
                for t, term in enumerate(T.decompose(fmt, code, sel)):
                    assert term.zero or term.shift - x - 2 * (n - 1 - t) in (0, 1), (fmt, code, sel, t)
