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
