"""sw.quantize: exact hand-computed examples for every scheme, and the BitMoD fast/generic equivalence."""
import math

import ml_dtypes
import numpy as np
import pytest
import torch

import sw
from sw import bitmod
from sw import formats as F
from sw.scaling import round_scale

INF = math.inf


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def codes(q):
    return q.codes.tolist()


# ----------------------------------------------------------------------------- absmax INT
def test_int4_g4_absmax_fp16_scale():
    w = t([[3.5, -7.0, 1.75, 0.5, 0.7, 0.35, -0.1, 0.0]])
    q = sw.quantize(w, "int4", 4)
    # group 0: s = 7/7 = 1; 3.5 and 0.5 are ties -> even (4, 0); -7 = code 9
    # group 1: s = fp16(0.7/7) = 1638/16384 = 0.0999755859375 (below 0.1), so 0.35/s = 3.50085 -> 4
    assert q.scales.tolist() == [[1.0, 0.0999755859375]]
    assert q.scales.shape == (1, 2) and q.scales.dtype == torch.float32
    assert codes(q) == [[4, 9, 2, 0, 7, 4, 15, 0]]
    assert q.dequantize().tolist() == [[4.0, -7.0, 2.0, 0.0, 7 * 0.0999755859375, 4 * 0.0999755859375,
                                        -0.0999755859375, 0.0]]
    assert (q.format, q.group_size, q.axis, q.scale_format, q.rounding) == ("int4", 4, 1, "fp16", "nearest_even")
    assert q.codes.dtype == torch.uint8 and q.selectors is None and q.zero_points is None
    assert q.n_groups == 2 and q.shape == (1, 8)


@pytest.mark.parametrize("scale_format, s1, c1", [
    ("fp16", 0.0999755859375, [7, 4, 15, 0]),
    ("bf16", 0.10009765625, [7, 3, 15, 0]),   # bf16(0.1) = 205/2048 > 0.1: 0.35/s = 3.4966 -> 3
    ("e4m3", 0.1015625, [7, 3, 15, 0]),       # 13 * 2^-7
    ("e8m0", 0.125, [6, 3, 15, 0]),           # nearest power of two (linear domain): 0.7/0.125 = 5.6 -> 6
])
def test_int4_scale_formats(scale_format, s1, c1):
    w = t([[3.5, -7.0, 1.75, 0.5, 0.7, 0.35, -0.1, 0.0]])
    q = sw.quantize(w, "int4", 4, scale_format=scale_format)
    assert q.scales.tolist() == [[1.0, s1]]
    assert codes(q) == [[4, 9, 2, 0] + c1]
    assert q.scale_format == scale_format


def test_e8m0_scale_rounds_to_nearest_power_of_two_ties_up():
    # amax/7: 0.09/7 = 0.012857 > 1.5 * 2^-7 -> 2^-6; 0.08/7 = 0.011429 < 0.01171875 -> 2^-7
    w = t([[0.09, 0, 0, 0, 0.08, 0, 0, 0, 10.5, 0, 0, 0]])  # 10.5/7 = 1.5: tie -> 2
    q = sw.quantize(w, "int4", 4, scale_format="e8m0")
    assert q.scales.tolist() == [[2.0 ** -6, 2.0 ** -7, 2.0]]
    assert codes(q) == [[6, 0, 0, 0, 7, 0, 0, 0, 5, 0, 0, 0]]  # 5.76 -> 6; 10.24 -> 7 (saturates); 5.25 -> 5


def test_fp32_scale_is_exact_division():
    w = t([[0.3, 0.1, -0.2, 0.05]])
    q = sw.quantize(w, "int8", 4, scale_format="fp32")
    s = np.float32(0.3) / np.float32(127)
    assert q.scales.item() == float(s)
    y = np.array([0.3, 0.1, -0.2, 0.05], np.float32) / s
    assert q.element_values().tolist() == [[float(v) for v in np.round(y)]]


# ----------------------------------------------------------------------------- asymmetric INT
def test_int4_asym_zero_point():
    w = t([[-3.0, 0.0, 6.0, 12.0,       # lo -3, hi 12: s = 15/15 = 1, zp = 3
            0.5, 1.0, 7.5, 2.0,         # all positive: range [0, 7.5], s = 0.5, zp = 0
            -7.5, -1.0, -0.5, -3.0,     # all negative: range [-7.5, 0], s = 0.5, zp = 15
            -1.0, 0.5, 2.0, 3.5]])      # s = fp16(4.5/15) = 1229/4096 = 0.300048828125, zp = round(3.3328) = 3
    q = sw.quantize(w, "int4_asym", 4)
    assert q.scales.tolist() == [[1.0, 0.5, 0.5, 0.300048828125]]
    assert q.zero_points.tolist() == [[3, 0, 15, 3]]
    assert q.zero_points.dtype == torch.uint8
    assert codes(q) == [[0, 3, 9, 15, 1, 2, 15, 4, 0, 13, 14, 9, 0, 5, 10, 15]]
    s = 0.300048828125
    assert q.dequantize().tolist() == [[-3.0, 0.0, 6.0, 12.0, 0.5, 1.0, 7.5, 2.0, -7.5, -1.0, -0.5, -3.0,
                                        -3 * s, 2 * s, 7 * s, 12 * s]]
    assert q.bits_per_weight == 4 + 20 / 4


def test_int3_asym_zero_is_exact():
    w = t([[-0.35, 0.0, 1.05, 0.45]])
    q = sw.quantize(w, "int3_asym", 4, scale_format="fp32")
    s = (np.float32(1.05) - np.float32(-0.35)) / np.float32(7)
    assert q.scales.item() == float(s)
    zp = int(q.zero_points.item())
    assert zp == round(0.35 / float(s)) == 2  # 1.75 -> 2
    assert q.dequantize()[0, 1].item() == 0.0
    assert codes(q)[0][1] == zp


# ----------------------------------------------------------------------------- FP element formats
def test_fp6_e3m2_per_channel():
    row = [28.0, -28.0, 1.125, 4.5, 22.0, 26.0, 0.03125, -3.0]
    w = t([row, [v / 2 for v in row]])
    q = sw.quantize(w, "fp6_e3m2", None)
    assert q.group_size == 8 and q.scales.shape == (2, 1)
    assert q.scales.tolist() == [[1.0], [0.5]]
    # RNE on E3M2: 1.125 -> 1.0 (0x0C), 4.5 -> 4 (0x14), 22 -> 24 (0x1E), 26 -> 24 (tie, even 0x1E),
    # 0.03125 -> 0 (tie, even), -3 = 1.5 * 2^1 = 0b1_100_10 = 0x32
    expect = [0x1F, 0x3F, 0x0C, 0x14, 0x1E, 0x1E, 0x00, 0x32]
    assert codes(q) == [expect, expect]
    vals = [28.0, -28.0, 1.0, 4.0, 24.0, 24.0, 0.0, -3.0]
    assert q.dequantize().tolist() == [vals, [v / 2 for v in vals]]
    qa = sw.quantize(w, "fp6_e3m2", None, rounding="nearest_away")
    assert qa.element_values()[0].tolist() == [28.0, -28.0, 1.25, 5.0, 24.0, 28.0, 0.0625, -3.0]


def test_fp4_negative_zero_code_in_a_group():
    q = sw.quantize(t([[6.0, -0.1, -0.0, 0.0]]), "fp4_e2m1", 4)
    assert codes(q) == [[7, 8, 8, 0]]
    assert torch.signbit(q.dequantize()).tolist() == [[False, True, True, False]]


def test_axis0_groups():
    w = torch.tensor([[7.0, 1.0], [3.5, 2.0], [0.5, -1.0], [1.0, 0.0],
                      [0.0, 14.0], [-7.0, 0.0], [1.5, 7.0], [2.5, 0.0]])
    q = sw.quantize(w, "int4", 4, axis=0)
    assert q.axis == 0 and q.scales.shape == (2, 2)
    # column 1, first group: s = fp16(2/7) = 1170/4096; 1/s = 3.5009 -> 4, 2/s = 7.0017 -> 7
    assert q.scales.tolist() == [[1.0, 0.28564453125], [1.0, 2.0]]
    col0 = [7, 4, 0, 1, 0, 9, 2, 2]   # 3.5 -> 4, 0.5 -> 0, 1.5 -> 2, 2.5 -> 2 (RNE), -7 = 9
    col1 = [4, 7, 12, 0, 7, 0, 4, 0]  # second group: s = 2, 7/2 = 3.5 -> 4
    assert q.codes[:, 0].tolist() == col0 and q.codes[:, 1].tolist() == col1
    qt = sw.quantize(w.T.contiguous(), "int4", 4)
    assert torch.equal(q.codes, qt.codes.T) and torch.equal(q.scales, qt.scales.T)
    assert torch.equal(q.dequantize(), qt.dequantize().T)
    q2 = sw.quantize(w, "int4", 4, axis=-2)
    assert q2.axis == 0 and torch.equal(q2.codes, q.codes)


def test_axis_on_3d_tensor_matches_transposed():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(3, 8, 5, generator=g)
    for fmt in ("int4", "bitmod4", "fp4_e2m1", "int4_asym"):
        q = sw.quantize(w, fmt, 4, axis=1)
        assert q.scales.shape == (3, 2, 5)
        qt = sw.quantize(w.transpose(1, 2).contiguous(), fmt, 4)
        assert torch.equal(q.codes, qt.codes.transpose(1, 2))
        assert torch.equal(q.dequantize(), qt.dequantize().transpose(1, 2))
        if q.selectors is not None:
            assert torch.equal(q.selectors, qt.selectors.transpose(1, 2))


# ----------------------------------------------------------------------------- BitMoD
def test_bitmod4_selects_each_variant():
    w = t([[6, 5, 1, 2, 0.5, 3, 4, 0],          # ER+ exact with s = 1
           [-6, -5, -1, -2, -0.5, -3, -4, 0],   # ER- exact
           [8, 1, 1, 0.5, 0, 2, 3, 4],          # lone +8 outlier: EA+ exact with s = 1
           [-8, -1, -1, -0.5, 0, -2, -3, -4]])  # EA-
    q = sw.quantize(w, "bitmod4", 8)
    assert q.selectors.tolist() == [[0], [1], [2], [3]]
    assert q.selectors.dtype == torch.uint8
    assert q.scales.tolist() == [[1.0], [1.0], [1.0], [1.0]]
    assert codes(q) == [[7, 8, 2, 4, 1, 5, 6, 0],
                        [15, 8, 10, 12, 9, 13, 14, 0],
                        [8, 2, 2, 1, 0, 4, 5, 6],
                        [8, 10, 10, 9, 0, 12, 13, 14]]
    assert torch.equal(q.dequantize(), w)
    assert [v.name for v in q.variants] == ["fp4_er_pos", "fp4_er_neg", "fp4_ea_pos", "fp4_ea_neg"]
    assert q.element.name == "fp4_er_pos"


def test_bitmod4_scales_follow_the_winning_variant():
    # amax 12: ER scale 2, EA scale 1.5; a group on the EA grid * 1.5 picks EA+ with scale 1.5
    w = t([[12, 1.5, 3, 0.75, 0, 4.5, 6, 9]])
    q = sw.quantize(w, "bitmod4", 8)
    assert q.selectors.item() == 2 and q.scales.item() == 1.5
    assert codes(q) == [[8, 2, 4, 1, 0, 5, 6, 7]]
    assert torch.equal(q.dequantize(), w)


def test_bitmod_mse_tie_picks_the_earlier_variant():
    # [8, -8, 1 x 62]: ER+ and ER- give the same error (~6.9, scale fp16(8/6) = 1.3330078125),
    # EA+ and EA- the same smaller one (4: the opposite outlier saturates to 6). -> EA+ (2), not EA- (3).
    w = t([[8.0, -8.0] + [1.0] * 62])
    q = sw.quantize(w, "bitmod4", 64)
    assert q.selectors.item() == 2 and q.scales.item() == 1.0
    assert codes(q)[0][:3] == [8, 15, 2]
    sse = [float((w - sw.quantize(w, v, 64).dequantize()).square().sum()) for v in
           ("fp4_er_pos", "fp4_er_neg", "fp4_ea_pos", "fp4_ea_neg")]
    assert sse[2] == sse[3] == 4.0 and sse[0] == sse[1] > 4.0
    # all-equal errors (exact on every variant) -> selector 0
    for fmt in ("bitmod4", "bitmod3"):
        assert sw.quantize(t([[0.0] * 8]), fmt, 8).selectors.item() == 0
    # ER+ and ER- both exact (no +-5 in the group) -> 0 rather than 1
    q = sw.quantize(t([[6, -6, 1, -1, 3, -3, 0.5, 0]]), "bitmod4", 8)
    assert q.selectors.item() == 0
    q = sw.quantize(t([[6, -6, 1, -1, 3, -3, 0.5, 0]]), "bitmod4", 8, rounding="nearest_down")
    assert q.selectors.item() == 0


def test_bitmod3():
    w = t([[6, 1, 2, 4, 0, -1, -2, -4],       # EA+ exact with s = 1
           [-3, -1, 2, 4, 0, 1, -2, -4],      # ER- exact with s = 1
           [3, -1, 2, 4, 0, 1, -2, -4],       # ER+
           [-6, 1, 2, 4, 0, -1, -2, -4]])     # EA-
    q = sw.quantize(w, "bitmod3", 8)
    assert q.selectors.tolist() == [[2], [1], [0], [3]]
    assert q.scales.tolist() == [[1.0]] * 4
    assert codes(q) == [[4, 1, 2, 3, 0, 5, 6, 7],
                        [4, 5, 2, 3, 0, 1, 6, 7],
                        [4, 5, 2, 3, 0, 1, 6, 7],
                        [4, 1, 2, 3, 0, 5, 6, 7]]
    assert torch.equal(q.dequantize(), w)
    assert q.bits_per_weight == 3 + 18 / 8


@pytest.mark.parametrize("rounding, code, sel", [("nearest_even", 6, 0), ("nearest_down", 5, 0),
                                                 ("nearest_up", 6, 0), ("nearest_away", 6, 0)])
def test_bitmod_rounding_modes(rounding, code, sel):
    # ER s = 1: 3.5 is a tie between 3 (code 5) and 4 (code 6); EA (s = 0.75) is worse
    w = t([[6.0, 3.5, 1.0, 0.0]])
    q = sw.quantize(w, "bitmod4", 4, rounding=rounding)
    assert q.selectors.item() == sel
    assert codes(q) == [[7, code, 2, 0]]
    assert q.rounding == rounding
    # the generic path agrees with quantizing to the chosen variant directly
    direct = sw.quantize(w, "fp4_er_pos", 4, rounding=rounding)
    assert torch.equal(direct.codes, q.codes) and torch.equal(direct.scales, q.scales)


def test_bitmod_nearest_down_negative_tie():
    # nearest_down: -3.5 -> -4 (toward -inf), nearest_up: -> -3
    w = t([[6.0, -3.5, 1.0, 0.0]])
    assert codes(sw.quantize(w, "bitmod4", 4, rounding="nearest_down")) == [[7, 14, 2, 0]]
    assert codes(sw.quantize(w, "bitmod4", 4, rounding="nearest_up")) == [[7, 13, 2, 0]]


def test_bitmod_equals_best_single_variant():
    g = torch.Generator().manual_seed(5)
    w = torch.randn(64, 128, generator=g) * torch.rand(64, 1, generator=g)
    for fam, fmt in (("fp4", "bitmod4"), ("fp3", "bitmod3")):
        q = sw.quantize(w, fmt, 32)
        singles = [sw.quantize(w, v.name, 32) for v in F.bitmod_variants(fam)]
        sel = q.selectors.long()
        for i, s in enumerate(singles):
            m = (sel == i).repeat_interleave(32, dim=1)
            assert torch.equal(q.codes[m], s.codes[m])
            assert torch.equal(q.scales[sel == i], s.scales[sel == i])
        assert set(sel.unique().tolist()) == {0, 1, 2, 3}


# ----------------------------------------------------------------------------- MX
def test_mxfp4_floor_vs_rceil():
    b0 = [7.9, 1.0, -0.5] + [0.0] * 29     # amax 7.9: floor X = 1 (7.9 saturates), rceil X = 2
    b1 = [6.0, -3.0] + [0.0] * 30          # amax 6: both X = 1
    b2 = [6.0001, 1.0] + [0.0] * 30        # just above 6: floor 1, rceil 2
    b3 = [0.75, 0.1] + [0.0] * 30          # floor(log2 .75) - 2 = -3: X = 1/8
    b4 = [0.0] * 32
    w = t([b0 + b1 + b2 + b3 + b4])
    qf = sw.quantize(w, "mxfp4")
    qr = sw.quantize(w, "mxfp4", mx_scale_rule="rceil")
    assert qf.scales.tolist() == [[1.0, 1.0, 1.0, 0.125, 2.0 ** -127]]
    assert qr.scales.tolist() == [[2.0, 1.0, 2.0, 0.125, 2.0 ** -127]]
    cf, cr = codes(qf)[0], codes(qr)[0]
    assert cf[0:3] == [7, 2, 9] and cr[0:3] == [6, 1, 8]  # rceil: -0.25 ties to -0 (code 8)
    assert cf[32:34] == cr[32:34] == [7, 13]
    assert cf[64:66] == [7, 2] and cr[64:66] == [5, 1]    # floor: 6.0001 saturates; rceil: 3.00005 -> 3
    assert cf[96:98] == cr[96:98] == [7, 2]               # X = 1/8: 0.1 * 8 = 0.8 -> 1 (code 2)
    assert all(c == 0 for c in cf[128:]) and all(c == 0 for c in cr[128:])
    dq = qf.dequantize()[0]
    assert dq[0].item() == 6.0 and qr.dequantize()[0, 0].item() == 8.0
    assert (qf.group_size, qf.scale_format, qf.bits_per_weight) == (32, "e8m0", 4.25)


def test_mxfp4_small_block_value():
    w = t([[0.75, 0.1] + [0.0] * 30])
    q = sw.quantize(w, "mxfp4")
    # X = 1/8: 0.1 * 8 = 0.8 -> nearest of {0.5, 1} is 1 (code 2)
    assert codes(q)[0][:2] == [7, 2]


def test_mxint8():
    b0 = [1.5, 0.01, -1.984375, 1 / 128, 3 / 128, -3 / 128] + [0.0] * 26
    b1 = [3.0, -1.0] + [0.0] * 30      # X = 2
    b2 = [1.99, 0.5] + [0.0] * 30      # X = 1, 1.99 saturates to 127/64
    w = t([b0 + b1 + b2])
    q = sw.quantize(w, "mxint8")
    assert q.scales.tolist() == [[1.0, 2.0, 1.0]]
    c = codes(q)[0]
    assert c[:6] == [96, 1, 129, 0, 2, 254]
    assert c[32:34] == [96, 224]       # 1.5 -> 96; -0.5 -> -32 = 224
    assert c[64:66] == [127, 32]
    assert q.element.name == "mxint8_element" and q.element.max == 127 / 64
    assert q.bits_per_weight == 8.25
    qr = sw.quantize(w, "mxint8", mx_scale_rule="rceil")
    assert qr.scales.tolist() == [[1.0, 2.0, 2.0]]   # 1.99 > 127/64: X = 2
    assert codes(qr)[0][64:66] == [64, 16]          # 0.995 * 64 = 63.68 -> 64; 0.25 * 64 = 16


def test_mx_other_elements():
    w = t([[20.0, 1.0] + [0.0] * 30])
    # e3m2: floor(log2 20) - 4 = 0 -> X = 1; e2m3: 4 - 2 = 2 -> X = 4; e4m3: 4 - 8 -> X = 1/16
    assert sw.quantize(w, "mxfp6_e3m2").scales.item() == 1.0
    assert sw.quantize(w, "mxfp6_e2m3").scales.item() == 4.0
    assert sw.quantize(w, "mxfp8_e4m3").scales.item() == 2.0 ** -4
    assert sw.quantize(w, "mxfp8_e5m2").scales.item() == 2.0 ** -11
    q = sw.quantize(w, "mxfp6_e2m3")
    assert q.element_values()[0, :2].tolist() == [5.0, 0.25]
    assert q.bits_per_weight == 6.25


# ----------------------------------------------------------------------------- NVFP4
def test_nvfp4_two_level_exact():
    blocks = [[2688.0, 1.0], [6.0, -3.0, 0.5], [13.0], [0.01], []]
    w = t([sum((b + [0.0] * (16 - len(b)) for b in blocks), [])])
    q = sw.quantize(w, "nvfp4")
    assert q.tensor_scale == 1.0   # 2688 / (448 * 6)
    # s_b = E4M3(clamp(amax_b / 6 / s_t, 2^-6, 448)): 448, 1, E4M3(2.1667) = 2.25, 2^-6 (floor), 2^-6 (zero block)
    assert q.scales.tolist() == [[448.0, 1.0, 2.25, 2.0 ** -6, 2.0 ** -6]]
    c = codes(q)[0]
    assert c[0:2] == [7, 0]          # 2688/448 = 6; 1/448 -> 0
    assert c[16:19] == [7, 13, 1]
    assert c[32] == 7                # 13/2.25 = 5.78 -> 6
    assert c[48] == 1                # 0.01 * 64 = 0.64 -> 0.5
    assert all(v == 0 for v in c[64:])
    dq = q.dequantize()[0]
    assert dq[0].item() == 2688.0 and dq[32].item() == 13.5 and dq[48].item() == 2.0 ** -7
    assert (q.group_size, q.scale_format) == (16, "e4m3")
    assert q.bits_per_weight == 4.5 + 32 / 80


def test_nvfp4_tensor_scale_is_amax_over_2688_in_fp32():
    g = torch.Generator().manual_seed(7)
    w = torch.randn(4, 64, generator=g)
    w[2, 17] = 3.0
    q = sw.quantize(w, "nvfp4")
    amax = np.float32(w.abs().max().item())
    st = np.float32(amax / np.float32(448 * 6))
    assert q.tensor_scale == float(st)
    # block scales: E4M3 RNE of clamp((amax_b / 6) / s_t, 2^-6, 448)
    amax_b = w.reshape(4, 4, 16).abs().amax(-1).numpy().astype(np.float32)
    raw = np.clip((amax_b / np.float32(6)) / st, np.float32(2.0 ** -6), np.float32(448))
    ref = raw.astype(ml_dtypes.float8_e4m3fn).astype(np.float32)
    assert q.scales.numpy().tolist() == ref.tolist()
    assert q.scales[2, 1].item() == 448.0  # the amax block
    # value = e * fp32(s_b * s_t)
    e = q.element_values().reshape(4, 4, 16).numpy()
    ref_dq = e * (ref * st)[..., None]
    assert q.dequantize().reshape(4, 4, 16).numpy().tolist() == ref_dq.tolist()


def test_nvfp4_all_zero_tensor():
    q = sw.quantize(torch.zeros(1, 32), "nvfp4")
    assert q.tensor_scale == 1.0 and q.scales.tolist() == [[2.0 ** -6] * 2]
    assert codes(q) == [[0] * 32] and q.dequantize().abs().sum().item() == 0


def test_nvfp4_tiny_tensor_keeps_zeros_and_values():
    w = torch.zeros(1, 16)
    w[0, 0] = 1e-36
    w[0, 1] = 1e-36 / 3       # x / (s_t * s_b) = 2.0000005 -> code 4
    q = sw.quantize(w, "nvfp4")
    assert codes(q) == [[7, 4] + [0] * 14]
    assert q.dequantize()[0, 2:].abs().max().item() == 0.0


def test_nvfp4_small_tensor_is_fine():
    # amax 1e-30: s_t = 3.7e-34 is normal; same codes as the tensor scaled by 2^100
    w = torch.zeros(1, 32)
    w[0, 0], w[0, 1], w[0, 17] = 1e-30, 1e-30 / 3, 0.5e-30
    q = sw.quantize(w, "nvfp4")
    assert codes(q)[0][:3] == [7, 4, 0] and codes(q)[0][16:19] == [0, 7, 0]
    assert q.scales.tolist() == [[448.0, 224.0]]


def test_nvfp4_single_level():
    blocks = [[6.0, -3.0], [0.01], [0.001], []]
    w = t([sum((b + [0.0] * (16 - len(b)) for b in blocks), [])])
    q = sw.quantize(w, "nvfp4", tensor_scale=False)
    assert q.tensor_scale is None
    # E4M3 subnormals kept: 0.01/6 -> 2^-9; 0.001/6 -> 0 (scale underflow: codes 0); zero block -> 0
    assert q.scales.tolist() == [[1.0, 2.0 ** -9, 0.0, 0.0]]
    c = codes(q)[0]
    assert c[:2] == [7, 13] and c[16] == 7 and all(v == 0 for v in c[32:])  # 0.01 * 512 = 5.12 -> 6
    assert q.bits_per_weight == 4.5


# ----------------------------------------------------------------------------- bits per weight
@pytest.mark.parametrize("fmt, kw, bpw", [
    ("int4", {}, 4.125), ("int4", {"scale_format": "bf16"}, 4.125), ("int4", {"scale_format": "fp32"}, 4.25),
    ("int4", {"scale_format": "e8m0"}, 4.0625), ("bitmod4", {}, 4.140625), ("bitmod3", {}, 3.140625),
    ("mxfp4", {}, 4.25), ("mxfp6_e3m2", {}, 6.25), ("mxfp8_e4m3", {}, 8.25), ("mxint8", {}, 8.25),
    ("int4_asym", {}, 4 + 20 / 128), ("int3_asym", {}, 3 + 19 / 128), ("fp6_e3m2", {}, 6.125),
    ("nvfp4", {}, 4.5 + 32 / (2 * 256)), ("nvfp4", {"tensor_scale": False}, 4.5),
])
def test_bits_per_weight(fmt, kw, bpw):
    w = torch.randn(2, 256, generator=torch.Generator().manual_seed(0))
    assert sw.quantize(w, fmt, **kw).bits_per_weight == bpw


def test_default_group_size_is_128():
    w = torch.randn(2, 256, generator=torch.Generator().manual_seed(0))
    assert sw.quantize(w, "int4").group_size == 128 == sw.DEFAULT_GROUP_SIZE
    assert sw.quantize(w, "mxfp4").group_size == 32
    assert sw.quantize(w, "nvfp4").group_size == 16
    assert sw.quantize(w, "int4", None).group_size == 256
    assert repr(sw.DEFAULT_GROUP_SIZE) == "128"


# ----------------------------------------------------------------------------- edge cases
ALL_FORMATS = [n for n in F.names()] + sw.group_format_names()


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_all_zero_group(fmt):
    w = torch.zeros(2, 64)
    w[1, 5] = 1.0  # one live group, the others all zero
    q = sw.quantize(w, fmt) if fmt[:2] in ("mx", "nv") else sw.quantize(w, fmt, 32)
    zero_code = int(q.element.grid_codes[(q.element.values == 0).nonzero()[0, 0]])
    c = q.codes.clone()
    live = torch.zeros_like(c, dtype=torch.bool)
    live[1, : q.group_size * (5 // q.group_size + 1)] = True
    live[1, : q.group_size * (5 // q.group_size)] = False
    assert zero_code == 0
    assert (c[~live] == 0).all()
    dq = q.dequantize()
    assert dq[~live].abs().max().item() == 0.0
    assert dq[1, 5].item() > 0


@pytest.mark.parametrize("fmt, pos, neg", [("int4", 7, 9), ("int8", 127, 129), ("fp4_e2m1", 7, 15),
                                           ("fp6_e3m2", 0x1F, 0x3F), ("flint4", 7, 15), ("int4_asym", 15, 0)])
def test_inf_saturates(fmt, pos, neg):
    w = t([[INF, 1.0, -INF, 0.5, -1.0, 0.25, 0.0, 0.0]])
    q = sw.quantize(w, fmt, 8)
    c = codes(q)[0]
    assert (c[0], c[2]) == (pos, neg)
    # the scale comes from the finite elements
    f = F.get(fmt)
    if "asym" in fmt:
        assert q.scales.item() == float(torch.tensor(2.0 / f.max).half())
    else:
        assert q.scales.item() == float(torch.tensor(1.0 / f.qmax).half())
    dq = q.dequantize()[0]
    assert dq[0].item() == dq.max().item() and dq[2].item() == dq.min().item()


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4", "bitmod4", "bitmod3", "mxint8"])
def test_inf_saturates_group_formats(fmt):
    w = torch.zeros(1, 32)
    w[0, :4] = t([INF, -INF, 1.0, -0.5])
    q = sw.quantize(w, fmt) if fmt[:2] in ("mx", "nv") else sw.quantize(w, fmt, 32)
    vals = q.element_values()[0]
    grid = q.variants[int(q.selectors.item())].values if q.selectors is not None else q.element.values
    assert vals[0].item() == grid.max().item() and vals[1].item() == grid.min().item()


def test_bitmod_inf_picks_on_finite_error():
    # +inf lands on EA+'s +8 / ER's +6 but is left out of the error: the finite elements decide
    w = t([[INF, 6, 5, 1, 2, 0.5, 3, 4]])
    q = sw.quantize(w, "bitmod4", 8)
    assert q.selectors.item() == 0 and q.scales.item() == 1.0
    assert codes(q) == [[7, 7, 8, 2, 4, 1, 5, 6]]


def test_dequantize_is_exact():
    g = torch.Generator().manual_seed(11)
    w = torch.randn(16, 128, generator=g) * torch.rand(16, 1, generator=g) * 10
    # element value (- zero point) times scale, computed in float64: the float32 product is exact
    # for the hardware scale formats (fp16, bf16, e4m3, e8m0)
    for fmt in ["int4", "int8", "int4_asym", "fp6_e3m2", "fp8_e4m3", "flint4", "bitmod4", "bitmod3", "mxfp4",
                "mxint8", "mxfp8_e5m2"]:
        for sf in ((None,) if fmt[:2] == "mx" else ("fp16", "bf16", "e4m3", "e8m0")):
            q = sw.quantize(w, fmt, scale_format=sf) if sf else sw.quantize(w, fmt)
            vals = q.element_values().double().reshape(16, -1, q.group_size)
            if q.zero_points is not None:
                vals = vals - q.zero_points.double().unsqueeze(-1)
            ref = (vals * q.scales.double().unsqueeze(-1)).reshape(16, -1)
            assert torch.equal(q.dequantize().double(), ref), (fmt, sf)


def test_nvfp4_dequantize_rule():
    # NVFP4: value = e * fp32(s_b * s_t), a float32 product (s_b * s_t has a 24-bit significand, so
    # this product is rounded, unlike the single-level formats)
    g = torch.Generator().manual_seed(11)
    w = torch.randn(16, 256, generator=g) * torch.rand(16, 1, generator=g) * 10
    q = sw.quantize(w, "nvfp4")
    vals = q.element_values().reshape(16, -1, 16)
    s = q.scales * torch.tensor(q.tensor_scale, dtype=torch.float32)
    assert torch.equal(q.dequantize(), (vals * s.unsqueeze(-1)).reshape(16, -1))
    q1 = sw.quantize(w, "nvfp4", tensor_scale=False)
    ref = (q1.element_values().double().reshape(16, -1, 16) * q1.scales.double().unsqueeze(-1)).reshape(16, -1)
    assert torch.equal(q1.dequantize().double(), ref)


def test_quantize_accepts_half_and_bfloat16():
    w = t([[3.5, -7.0, 1.75, 0.5]])
    for dt in (torch.float16, torch.bfloat16):
        q = sw.quantize(w.to(dt), "int4", 4)
        assert codes(q) == [[4, 9, 2, 0]]


def test_quantize_rounding_modes_int4():
    w = t([[7.0, 3.5, -3.5, 0.5]])
    got = {r: codes(sw.quantize(w, "int4", 4, rounding=r))[0] for r in F.ROUNDINGS}
    assert got == {"nearest_even": [7, 4, 12, 0], "nearest_away": [7, 4, 12, 1],
                   "nearest_down": [7, 3, 12, 0], "nearest_up": [7, 4, 13, 1]}


# ----------------------------------------------------------------------------- BitMoD fast == generic
def tie_groups(family, sf, n, g, seed):
    """Groups whose elements sit exactly on midpoints (and grid points) of one scale class."""
    rng = np.random.default_rng(seed)
    variants = F.bitmod_variants(family)
    cand = sorted({float(m) for v in variants for m in v.midpoints.tolist() + v.values.tolist()})
    rows = []
    for i in range(n):
        qmax = [v.qmax for v in variants][i % 4]
        amax = float(rng.uniform(0.5, 2.0)) * float(2.0 ** rng.integers(-6, 6))
        s = float(round_scale(torch.tensor([amax / qmax], dtype=torch.float32), sf)[0])
        ms = [m for m in cand if abs(m) <= 0.9 * qmax]
        pick = rng.choice(ms, size=g - 1)
        row = torch.tensor([amax] + [float(m) for m in pick], dtype=torch.float32)
        row[1:] = row[1:] * s
        if sf != "fp32":
            assert torch.equal(row[1:] / s, torch.tensor(pick, dtype=torch.float32))  # exact ties
        if rng.random() < 0.5:
            row = -row
        rows.append(row[torch.from_numpy(rng.permutation(g))])
    return torch.stack(rows)


def random_groups(n, g, seed, top=8):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, g, generator=gen)
    x = x * torch.exp2(torch.randint(top - 16, top, (n, 1), generator=gen).float())
    heavy = torch.rand(n, g, generator=gen) < 0.02
    x = torch.where(heavy, x * 8, x)
    x[3::11] *= 2.0 ** -28             # scales that underflow (or go subnormal in) fp16
    x[5::13, 3] = INF                  # saturated elements
    x[6::13, 1] = -INF
    x[9::17, 2] = -0.0
    x[::7] = 0.0                       # all-zero groups
    return x


@pytest.mark.parametrize("family", ["fp4", "fp3"])
@pytest.mark.parametrize("rounding", ["nearest_even", "nearest_away"])
@pytest.mark.parametrize("sf", ["fp16", "bf16", "e4m3", "e8m0", "fp32"])
def test_search_fast_equals_generic(family, rounding, sf):
    variants = F.bitmod_variants(family)
    top = 2 if sf == "e4m3" else 8  # keep the group scales below E4M3's 448
    xg = torch.cat([tie_groups(family, sf, 160, 32, 1), random_groups(800, 32, 2, top)]).reshape(-1, 6, 32)
    c1, s1, sel1 = bitmod.search_fast(xg, variants, sf, rounding)
    c2, s2, sel2 = bitmod.search_generic(xg, variants, sf, rounding)
    assert torch.equal(sel1, sel2)
    assert torch.equal(s1, s2)
    assert torch.equal(c1, c2)
    assert c1.dtype == c2.dtype == torch.uint8
    assert set(sel1.unique().tolist()) == {0, 1, 2, 3}


def test_search_fast_hits_ties_on_both_sides():
    # the tie groups really put elements on midpoints: fast and generic agree *and* ties go the
    # documented way, checked against the variant's own encoder
    variants = F.bitmod_variants("fp4")
    xg = tie_groups("fp4", "fp16", 200, 32, 4)
    for rounding in ("nearest_even", "nearest_away"):
        c, s, sel = bitmod.search_fast(xg, variants, "fp16", rounding)
        for i, v in enumerate(variants):
            m = sel == i
            if m.any():
                ref = v.encode(xg[m] / s[m].unsqueeze(-1), rounding)
                assert torch.equal(c[m], ref)


def test_search_fast_equals_generic_across_chunks():
    # more rows than one CHUNK holds (2^18 elements): the chunked fast path matches
    variants = F.bitmod_variants("fp4")
    xg = random_groups(9000, 32, 8)
    c1, s1, sel1 = bitmod.search_fast(xg, variants, "fp16", "nearest_even")
    c2, s2, sel2 = bitmod.search_generic(xg, variants, "fp16", "nearest_even")
    assert torch.equal(sel1, sel2) and torch.equal(s1, s2) and torch.equal(c1, c2)


def test_quantize_bitmod_fast_flag_and_axis():
    from sw.bitmod import quantize_bitmod
    w = random_groups(64, 96, 9).reshape(64, 96)
    for fmt in ("bitmod4", "bitmod3"):
        for axis, g in ((1, 32), (0, 16), (1, 96)):
            a = quantize_bitmod(w, fmt, g, axis, "fp16", "nearest_even", fast=True)
            b = quantize_bitmod(w, fmt, g, axis, "fp16", "nearest_even", fast=False)
            assert torch.equal(a.codes, b.codes) and torch.equal(a.selectors, b.selectors)
            assert torch.equal(a.scales, b.scales)


def test_quantize_nearest_down_generic_path():
    g = torch.Generator().manual_seed(12)
    w = torch.randn(8, 64, generator=g)
    w[0, :4] = t([6.0, 3.5, -3.5, 0.0]) * float((w[0].abs().max() / 6).half())
    q = sw.quantize(w, "bitmod4", 32, rounding="nearest_down")
    c, s, sel = bitmod.search_generic(w.reshape(8, 2, 32), F.bitmod_variants("fp4"), "fp16", "nearest_down")
    assert torch.equal(q.codes.reshape(8, 2, 32), c) and torch.equal(q.selectors, sel)
    # every code is what the chosen variant's encoder gives with ties toward -inf
    vals = q.element_values()
    for i, v in enumerate(q.variants):
        m = (q.selectors == i).repeat_interleave(32, dim=1)
        y = (w.reshape(8, 2, 32) / q.scales.unsqueeze(-1)).reshape(8, 64)
        if not m.any():
            continue
        assert torch.equal(v.encode(y[m], "nearest_down"), q.codes[m])
    assert vals.shape == w.shape
    # int4 generic path too
    q = sw.quantize(t([[7.0, 0.5, -0.5, 2.5]]), "int4", 4, rounding="nearest_down")
    assert q.element_values().tolist() == [[7.0, 0.0, -1.0, 2.0]]


# ----------------------------------------------------------------------------- MX shared exponent rules
@pytest.mark.parametrize("fmt", ["mxfp4", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp8_e4m3", "mxfp8_e5m2", "mxint8"])
def test_mx_shared_exponent_definitions(fmt):
    gen = torch.Generator().manual_seed(13)
    n = 512
    w = torch.randn(n, 32, generator=gen) * torch.exp2(torch.randint(-40, 40, (n, 1), generator=gen).float())
    # blocks whose amax is exactly qmax * 2^k or a power of two, or one ulp either side
    qmax = sw.quantize(w[:1], fmt).element.qmax
    k = torch.randint(-20, 20, (n,), generator=gen).float()
    edge = torch.tensor(qmax) * torch.exp2(k)
    edge = torch.where(torch.arange(n) % 3 == 0, torch.nextafter(edge, edge * 2), edge)
    edge = torch.where(torch.arange(n) % 3 == 1, torch.nextafter(edge, edge * 0), edge)
    w[::2, 0] = edge[::2]
    w[::2, 1:] = w[::2, 1:].clamp(-edge[::2, None] / 2, edge[::2, None] / 2)
    amax = w.abs().amax(1).double()
    emax = math.frexp(qmax)[1] - 1
    floor_e = torch.tensor([math.frexp(a)[1] - 1 - emax for a in amax.tolist()], dtype=torch.float64)
    qf = sw.quantize(w, fmt)
    assert torch.equal(qf.scales.reshape(-1).double(), torch.exp2(floor_e))
    qr = sw.quantize(w, fmt, mx_scale_rule="rceil")
    x = qr.scales.reshape(-1).double()
    # rceil: the smallest power of two X with X * qmax >= amax
    assert bool((x * qmax >= amax).all()) and bool((x / 2 * qmax < amax).all())
    assert bool((qr.scales >= qf.scales).all())
    # no element saturates under rceil: the amax element is within half the top grid gap
    v = qr.element.values
    top_gap = float(v[-1] - v[-2])
    assert bool(((qr.dequantize().abs().amax(1).double() - amax).abs() <= x * top_gap / 2).all())


def test_mx_rceil_emits_no_warning():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sw.quantize(torch.ones(2, 64), "mxfp4", mx_scale_rule="rceil")
