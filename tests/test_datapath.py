"""sw.datapath: hand-checked alignment and rescale examples, and the documented error bound."""
import pytest
import torch

import sw
from sw import datapath as D
from sw import terms as T


def test_align_fp16_by_hand():
    # group of 4: 1.0 (e=15), -0.75 (e=14, sig 0x600), 2^-24 (subnormal, sig 1), 0
    x = torch.tensor([1.0, -0.75, 2.0 ** -24, 0.0], dtype=torch.float16)
    a = D.align_fp16(x, 4, 16)
    # emax = 15; A = (sig << 4) >> (15 - e')
    assert a.A.tolist() == [0x400 << 4, -((0x600 << 4) >> 1), (1 << 4) >> 14, 0]
    assert a.ea.tolist() == [15 - 16 - 13]
    assert a.sum_A.tolist() == [(0x400 << 4) - ((0x600 << 4) >> 1)]
    # value check: A * 2^ea reproduces the exactly representable inputs
    assert (a.A[:2].double() * 2.0 ** a.ea[0]).tolist() == [1.0, -0.75]


def test_align_int8_and_errors():
    a = D.align_int8(torch.tensor([-128, 127, 0, 5], dtype=torch.int8), 2)
    assert a.A.tolist() == [-128, 127, 0, 5] and a.sum_A.tolist() == [-1, 5] and a.ea.tolist() == [0, 0]
    with pytest.raises(TypeError, match="float16"):
        D.align_fp16(torch.zeros(4), 4, 16)
    with pytest.raises(ValueError, match="act_bits"):
        D.align_fp16(torch.zeros(4, dtype=torch.float16), 4, 11)
    with pytest.raises(ValueError, match="infinite"):
        D.align_fp16(torch.tensor([1.0, float("inf")], dtype=torch.float16), 2, 16)
    with pytest.raises(TypeError, match="int8"):
        D.align_int8(torch.zeros(4, dtype=torch.float16), 2)


def test_scale_fields_exact():
    s = torch.tensor([1.0, 0.375, 2.0 ** -24, 65504.0])
    sig, ex = D.scale_fields(s, "fp16")
    assert sig.tolist() == [1024, 1536, 1, 2047] and (sig.double() * 2.0 ** ex.double()).tolist() == s.tolist()
    sig, ex = D.scale_fields(torch.tensor([3.0, 2.0 ** -130]), "bf16")
    assert (sig.double() * 2.0 ** ex.double()).tolist() == [3.0, 2.0 ** -130]
    sig, ex = D.scale_fields(torch.tensor([2.0 ** -127, 8.0]), "e8m0")
    assert sig.tolist() == [1, 1] and ex.tolist() == [-127, 3]


def test_gemv_by_hand_int4():
    # one row, one group of 4: w = [1, -2, 3, 7] * 0.1 -> codes 1, -2, 3, 7 with s = fp16(0.1)
    w = torch.tensor([[1.0, -2.0, 3.0, 7.0]]) * 0.1
    q = sw.quantize(w, "int4", group_size=4)
    x = torch.tensor([1.0, 1.0, 1.0, 0.5], dtype=torch.float16)
    tr = D.gemv(q, x, trace=True)
    assert tr.P.tolist() == [[(1 - 2 + 3) * (1 << 14) + 7 * (1 << 13)]]
    s16 = float(torch.tensor(0.1, dtype=torch.float16))
    assert q.codes.tolist() == [[1, 14, 3, 7]]
    assert tr.y.tolist() == [float(torch.tensor(5.5 * s16, dtype=torch.float32))]


@pytest.mark.parametrize("fmt", T.HW_FORMATS)
@pytest.mark.parametrize("scale_format", D.HW_SCALE_FORMATS)
def test_error_bound_random_and_real_shaped(fmt, scale_format):
    g = torch.Generator().manual_seed(7)
    w = torch.randn(48, 4096, generator=g) * 0.02
    q = sw.quantize(w, fmt, scale_format=scale_format)
    for mode, x in (("fp16", (torch.randn(4096, generator=g) * 3).half()),
                    ("int8", torch.randint(-128, 128, (4096,), generator=g, dtype=torch.int8))):
        tr = D.gemv(q, x, act_mode=mode, trace=True)
        err = (tr.y.double() - D.reference(q, x)).abs()
        bound = D.error_bound(q, tr)
        assert bool((err <= bound).all()), f"{fmt}/{scale_format}/{mode}: max err/bound {float((err / bound).max())}"


def test_error_bound_is_not_vacuous():
    # the bound must be tight enough to catch a wrong datapath: a 1-ulp error in the activations
    # of a whole group (a "round instead of truncate" bug in the other direction) is caught
    g = torch.Generator().manual_seed(3)
    w = torch.randn(8, 256, generator=g)
    q = sw.quantize(w, "int8")
    x = (torch.randn(256, generator=g)).half()
    tr = D.gemv(q, x, trace=True)
    bound = D.error_bound(q, tr)
    wrong = D.reference(q, (x.float() * 1.01).half())
    assert bool(((wrong - D.reference(q, x)).abs() > bound).any())


def test_gemv_rejects_mismatched_inputs():
    q = sw.quantize(torch.randn(4, 256), "int4")
    with pytest.raises(ValueError, match="K=256"):
        D.gemv(q, torch.zeros(128, dtype=torch.float16))
    with pytest.raises(ValueError, match="no hardware decoder"):
        D.gemv(sw.quantize(torch.randn(4, 256), "fp8_e4m3"), torch.zeros(256, dtype=torch.float16))
    with pytest.raises(ValueError, match="scale_format"):
        D.gemv(sw.quantize(torch.randn(4, 256), "int4", scale_format="e4m3"), torch.zeros(256, dtype=torch.float16))
