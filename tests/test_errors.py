"""Bad input fails loudly, with a message that names the problem."""
import math

import numpy as np
import pytest
import torch

import sw
from sw import formats as F

NAN, INF = math.nan, math.inf
GROUP_FORMATS = ["bitmod4", "bitmod3", "mxfp4", "mxint8", "nvfp4"]


def w(*shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


# ----------------------------------------------------------------------------- NaN
@pytest.mark.parametrize("fmt", ["int4", "int4_asym", "fp4_e2m1", "flint4"] + GROUP_FORMATS)
def test_nan_reports_count_and_first_index(fmt):
    x = w(3, 64)
    x[2, 40] = NAN
    x[1, 7] = NAN
    x[2, 3] = NAN
    with pytest.raises(ValueError, match=r"^w contains 3 NaN value\(s\); the first is at index \(1, 7\)$"):
        sw.quantize(x, fmt, 32) if fmt[:2] not in ("mx", "nv") else sw.quantize(x, fmt)


def test_nan_in_half_precision_input():
    x = torch.zeros(2, 2, 8, dtype=torch.float16)
    x[1, 0, 5] = NAN
    with pytest.raises(ValueError, match=r"contains 1 NaN value\(s\); the first is at index \(1, 0, 5\)"):
        sw.quantize(x, "int8", 8)


def test_nan_in_encode():
    with pytest.raises(ValueError, match=r"^x contains 2 NaN value\(s\); the first is at index \(1,\)$"):
        F.get("fp4_e2m1").encode(torch.tensor([1.0, NAN, 0.0, -NAN]))
    with pytest.raises(ValueError, match="NaN"):
        F.get("int4").grid_values(torch.tensor([NAN]))


# ----------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype", [torch.float64, torch.int32, torch.int64, torch.int8, torch.uint8, torch.bool,
                                   torch.complex64])
def test_non_float_dtypes_are_refused(dtype):
    x = torch.ones(2, 32).to(dtype)
    with pytest.raises(TypeError, match=rf"w must have dtype float16, bfloat16 or float32, got {dtype}"):
        sw.quantize(x, "int4", 32)
    with pytest.raises(TypeError, match=rf"got {dtype}"):
        F.get("fp4_e2m1").encode(x)


def test_float64_message_explains_the_double_rounding():
    with pytest.raises(TypeError, match=r"torch.float64 \(call .float\(\) first: casting float64 to a low-bit "
                                        r"grid directly double-rounds\)"):
        sw.quantize(torch.ones(2, 32, dtype=torch.float64), "int4", 32)
    with pytest.raises(TypeError, match="float64"):  # numpy arrays go through the same check
        F.get("fp4_e2m1").encode(np.ones(4))


def test_non_tensor_input():
    with pytest.raises(TypeError, match="w must be a torch.Tensor, got list"):
        sw.quantize([[1.0, 2.0]], "int4", 2)
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got float"):
        F.get("int4").encode(1.0)


def test_numpy_float32_is_accepted():
    assert F.get("int4").encode(np.array([1.4, -2.6], np.float32)).tolist() == [1, 13]


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("shape", [(0,), (0, 128), (4, 0)])
def test_empty_tensor(shape):
    with pytest.raises(ValueError, match=rf"w is empty \(shape {re_tuple(shape)}\)"):
        sw.quantize(torch.empty(shape), "int4")
    with pytest.raises(ValueError, match="is empty"):
        F.get("int4").encode(torch.empty(shape))


def re_tuple(shape):
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


def test_zero_dim_tensor():
    with pytest.raises(ValueError, match="at least one dimension"):
        sw.quantize(torch.tensor(1.0), "int4")


@pytest.mark.parametrize("fmt", ["int4", "int4_asym", "fp6_e3m2", "bitmod4"])
def test_group_size_not_dividing(fmt):
    with pytest.raises(ValueError, match=r"group_size=64 does not divide the length 96 of axis 1"):
        sw.quantize(w(2, 96), fmt, 64)
    with pytest.raises(ValueError, match=r"group_size=128 does not divide the length 96 of axis 1"):
        sw.quantize(w(2, 96), fmt)  # the default, 128
    with pytest.raises(ValueError, match=r"group_size=5 does not divide the length 8 of axis 0"):
        sw.quantize(w(8, 3), fmt, 5, axis=0)


@pytest.mark.parametrize("g", [0, -4, 2.0, True, "32"])
def test_group_size_not_a_positive_int(g):
    with pytest.raises(ValueError, match=rf"group_size={g!r} must be a positive int or None"):
        sw.quantize(w(2, 32), "int4", g)


@pytest.mark.parametrize("axis", [2, -3, 5])
def test_bad_axis(axis):
    with pytest.raises(ValueError, match=rf"axis={axis} is out of range for w with 2 dimension\(s\)"):
        sw.quantize(w(4, 32), "int4", 32, axis=axis)


def test_mx_block_must_divide_the_axis():
    with pytest.raises(ValueError, match=r"group_size=32 does not divide the length 48"):
        sw.quantize(w(2, 48), "mxfp4")
    with pytest.raises(ValueError, match=r"group_size=16 does not divide the length 40"):
        sw.quantize(w(2, 40), "nvfp4")


# ----------------------------------------------------------------------------- formats and options
def test_unknown_format_lists_known_names():
    with pytest.raises(ValueError, match=r"unknown format 'int5'; known element formats: int3, int4, ") as e:
        sw.quantize(w(2, 128), "int5")
    for name in F.names():
        assert name in str(e.value)
    assert "fpN_eXmY" in str(e.value)
    with pytest.raises(ValueError, match=r"unknown format 'nope'"):
        F.get("nope")


def test_unknown_format_lists_group_formats_too():
    with pytest.raises(ValueError) as e:
        sw.quantize(w(2, 128), "mxfp5")
    for name in sw.group_format_names():
        assert name in str(e.value)


def test_format_must_be_a_name():
    with pytest.raises(TypeError, match="fmt must be a format name"):
        sw.quantize(w(2, 32), F.get("int4"), 32)
    with pytest.raises(TypeError, match="fmt must be a format name"):
        sw.quantize(w(2, 32), None, 32)


def test_scale_format_is_not_an_element_format():
    with pytest.raises(ValueError, match=r"fmt='e8m0' is a scale format, not an element format"):
        sw.quantize(w(2, 32), "e8m0", 32)


@pytest.mark.parametrize("kw, msg", [
    ({"group_size": 64}, r"group_size=64 is not allowed for mxfp4: its block size is fixed at 32"),
    ({"group_size": 128}, r"group_size=128 is not allowed for mxfp4"),
    ({"group_size": None}, r"group_size=None is not allowed for mxfp4"),
    ({"scale_format": "fp16"}, r"scale_format='fp16' is not allowed for mxfp4: it uses e8m0"),
    ({"scale_format": "e4m3"}, r"scale_format='e4m3' is not allowed for mxfp4"),
])
def test_mx_options_rejected(kw, msg):
    with pytest.raises(ValueError, match=msg):
        sw.quantize(w(2, 128), "mxfp4", **kw)


def test_mx_options_accepted_when_they_match():
    a = sw.quantize(w(2, 128), "mxfp4", 32, scale_format="e8m0")
    b = sw.quantize(w(2, 128), "mxfp4")
    assert torch.equal(a.codes, b.codes)
    with pytest.raises(ValueError, match=r"scale_format='fp16' is not allowed for nvfp4: it uses e4m3"):
        sw.quantize(w(2, 128), "nvfp4", scale_format="fp16")
    with pytest.raises(ValueError, match=r"group_size=32 is not allowed for nvfp4: its block size is fixed at 16"):
        sw.quantize(w(2, 128), "nvfp4", 32)


def test_unknown_scale_format():
    with pytest.raises(ValueError, match=r"scale_format='fp8' is not a scale format; known: fp32, fp16, bf16, "
                                         r"e4m3, e8m0"):
        sw.quantize(w(2, 32), "int4", 32, scale_format="fp8")


def test_unknown_mx_scale_rule():
    with pytest.raises(ValueError, match=r"mx_scale_rule='ceil'; choose one of floor, rceil"):
        sw.quantize(w(2, 32), "mxfp4", mx_scale_rule="ceil")


@pytest.mark.parametrize("fmt", ["int4", "bitmod4", "mxfp4", "nvfp4", "fp4_e2m1"])
def test_unknown_rounding(fmt):
    with pytest.raises(ValueError, match=r"rounding='nearest' is not a rounding mode; choose one of nearest_even, "
                                         r"nearest_away, nearest_down, nearest_up"):
        sw.quantize(w(2, 32), fmt, rounding="nearest") if fmt[:2] in ("mx", "nv") else \
            sw.quantize(w(2, 32), fmt, 32, rounding="nearest")


def test_unknown_rounding_in_encode():
    with pytest.raises(ValueError, match="rounding='stochastic' is not a rounding mode"):
        F.get("fp4_e2m1").encode(torch.ones(3), "stochastic")


# ----------------------------------------------------------------------------- scales
def test_scale_overflow_names_scale_format_and_group():
    x = torch.ones(2, 16)
    x[1, 8:] = 1e6  # amax / 7 = 142857 > 65504
    with pytest.raises(ValueError, match=r"scale 142857 of group \(1, 1\) \(in \[\.\.\., group\] order\) exceeds "
                                         r"the largest fp16 value 65504; use a wider scale_format"):
        sw.quantize(x, "int4", 8)
    q = sw.quantize(x, "int4", 8, scale_format="bf16")
    assert q.scales[1, 1].item() == float(torch.tensor(1e6 / 7).bfloat16())
    with pytest.raises(ValueError, match="exceeds the largest e4m3 value 448"):
        sw.quantize(x, "int4", 8, scale_format="e4m3")
    with pytest.raises(ValueError, match="fp16"):
        sw.quantize(x, "bitmod4", 8)
    with pytest.raises(ValueError, match="fp16"):
        sw.quantize(x, "int4_asym", 8)


def test_nvfp4_single_level_scale_overflow():
    x = torch.ones(1, 16)
    x[0, 0] = 6 * 449
    with pytest.raises(ValueError, match="exceeds the largest e4m3 value 448"):
        sw.quantize(x, "nvfp4", tensor_scale=False)
    assert sw.quantize(x, "nvfp4").scales.item() == 448.0  # two-level: fine


@pytest.mark.parametrize("fmt", ["int4", "fp4_e2m1", "flint4", "bitmod4", "bitmod3", "mxfp4", "nvfp4"])
@pytest.mark.parametrize("bad", [[INF], [-INF], [INF, -INF]])
def test_group_of_only_inf_raises(fmt, bad):
    x = torch.ones(2, 64)
    x[1, 32:] = 0.0
    x[1, 32:32 + len(bad)] = torch.tensor(bad)
    g = 32 if fmt[:2] not in ("mx", "nv") else None
    k = 2 if fmt == "nvfp4" else 1  # nvfp4 blocks are 16 wide: element 32 is in block 2
    with pytest.raises(ValueError, match=rf"group \(1, {k}\) \(in \[\.\.\., group\] order\) has no finite non-zero "
                                         r"element but contains inf"):
        sw.quantize(x, fmt, g) if g else sw.quantize(x, fmt)


@pytest.mark.parametrize("fmt", ["int4_asym", "int3_asym"])
def test_group_of_only_inf_raises_asym(fmt):
    x = torch.ones(2, 64)
    x[1, 32:] = 0.0
    x[1, 32] = INF
    with pytest.raises(ValueError, match="has no finite non-zero element but contains inf"):
        sw.quantize(x, fmt, 32)


# ----------------------------------------------------------------------------- decode
@pytest.mark.parametrize("name, bad", [("int4", 16), ("fp4_e2m1", 16), ("fp3", 8), ("fp6_e3m2", 64),
                                       ("int4", -1), ("fp8_e4m3", 256)])
def test_decode_out_of_range_codes(name, bad):
    f = F.get(name)
    with pytest.raises(ValueError, match=rf"codes holds 1 value\(s\) outside the {f.bits}-bit code range "
                                         rf"0\.\.{(1 << f.bits) - 1}; the first is {bad} at index \(1, 0\)"):
        f.decode(torch.tensor([[0, 1], [bad, 2]]))


def test_decode_needs_integer_codes():
    with pytest.raises(TypeError, match="codes must have an integer dtype"):
        F.get("int4").decode(torch.tensor([1.0]))
    with pytest.raises(TypeError, match="codes must have an integer dtype"):
        F.get("int4").decode(torch.tensor([True]))
    with pytest.raises(TypeError, match="codes must be a torch.Tensor of integer codes, got list"):
        F.get("int4").decode([1, 2])


def test_decode_unused_code():
    with pytest.raises(ValueError, match=r"codes holds 1 code\(s\) that int4 never uses; the first is 8 at index "
                                         r"\(0, 1\)"):
        F.get("int4").decode(torch.tensor([[0, 8]]))
    with pytest.raises(ValueError, match="flint4 never uses"):
        F.get("flint4").decode(torch.tensor([8], dtype=torch.uint8))


# ----------------------------------------------------------------------------- format construction
def test_format_construction_errors():
    with pytest.raises(ValueError, match="table has 3 entries, expected 4"):
        F.ElementFormat(name="x", bits=2, table=[0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="codes 1 and 2 both decode to 1.0"):
        F.ElementFormat(name="x", bits=2, table=[0.0, 1.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="not exact in float32"):
        F.ElementFormat(name="x", bits=2, table=[0.0, 0.1, 1.0, 2.0])
    with pytest.raises(ValueError, match="has -0 but no \\+0 code"):
        F.ElementFormat(name="x", bits=2, table=[-0.0, 1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="rounding='odd' is not a rounding mode"):
        F.ElementFormat(name="x", bits=2, table=[0.0, 1.0, 2.0, 3.0], default_rounding="odd")
    with pytest.raises(ValueError, match="bits=9 must be in 2..8"):
        F.SymmetricInt(9)
    with pytest.raises(ValueError, match="bits=1 must be in 2..8"):
        F.AsymmetricInt(1)
    with pytest.raises(ValueError, match="exponent bits e=0"):
        F.MiniFloat(0, 3)
    with pytest.raises(ValueError, match="gives 9 bits"):
        F.MiniFloat(5, 3)
    with pytest.raises(ValueError, match="specials='inf'"):
        F.MiniFloat(2, 1, specials="inf")
    with pytest.raises(ValueError, match=r"scale_format='int8' is not a scale format"):
        F.get_scale_format("int8")
