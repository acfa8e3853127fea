"""sw.pack: bit-exact memory images and round trips."""
import pytest
import torch

import sw
from sw import pack as P


def test_int4_two_per_byte_low_nibble_first():
    assert P.pack_int4(torch.tensor([0x1, 0x2, 0xF, 0x0, 0x7])).tolist() == [0x21, 0x0F, 0x07]
    assert P.unpack_int4(torch.tensor([0x21, 0x0F, 0x07], dtype=torch.uint8), 5).tolist() == [1, 2, 15, 0, 7]


def test_fp6_plain_is_fp6_llm_layout():
    # byte0 = v0[5:0] v1[5:4], byte1 = v1[3:0] v2[5:2], byte2 = v2[1:0] v3[5:0]
    codes = torch.tensor([0x3F, 0x01, 0x20, 0x15])
    assert P.pack_fp6(codes).tolist() == [0xFC, 0x18, 0x15]
    assert P.unpack_fp6(P.pack_fp6(codes), 4).tolist() == codes.tolist()


def test_fp6_split_segments_and_reconstruction_trick():
    codes = torch.tensor([0x3F, 0x01, 0x20, 0x15, 0x2A, 0x11, 0x00, 0x3C])
    seg2, seg4 = P.pack_fp6_split(codes)
    assert seg2.tolist() == [0b11001001, 0b10010011]
    assert seg4.tolist() == [0xF1, 0x05, 0xA1, 0x0C]
    # the FP6-LLM runtime trick: (seg2 & 0xC0) | (seg4 & 0xF0) >> 2 puts code 0 in bits [7:2]
    assert ((int(seg2[0]) & 0xC0) | (int(seg4[0]) & 0xF0) >> 2) >> 2 == 0x3F
    assert P.unpack_fp6_split(seg2, seg4, 8).tolist() == codes.tolist()


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("order", ["lsb_first", "msb_first"])
def test_stream_round_trip_every_width(bits, order):
    g = torch.Generator().manual_seed(bits)
    codes = torch.randint(0, 1 << bits, (1001,), generator=g)
    data = P.pack_stream(codes, bits, order)
    assert data.numel() == (1001 * bits + 7) // 8
    assert torch.equal(P.unpack_stream(data, bits, 1001, order), codes.to(torch.uint8))


def test_three_bit_codes_msb_first_contiguous():
    # 3-bit codes 0b101, 0b011, 0b111 -> 101 011 11|1 0000000
    assert P.pack_stream(torch.tensor([5, 3, 7]), 3).tolist() == [0b10101111, 0b10000000]


CASES = [("int4", "fp16"), ("int3", "bf16"), ("int8", "e8m0"), ("fp6_e3m2", "fp16"), ("fp6_e2m3", "e4m3"),
         ("bitmod4", "fp16"), ("bitmod3", "fp32"), ("int4_asym", "fp16"), ("int3_asym", "fp16"),
         ("mxfp4", None), ("mxfp6_e3m2", None), ("mxint8", None), ("nvfp4", None), ("fp8_e4m3", "fp16")]


@pytest.mark.parametrize("fmt,sf", CASES)
@pytest.mark.parametrize("layout", ["split", "plain"])
def test_quantized_round_trip_bit_exact(fmt, sf, layout, tmp_path):
    g = torch.Generator().manual_seed(1)
    w = torch.randn(6, 256, generator=g) * torch.rand(6, 1, generator=g)
    kw = {} if sf is None else {"scale_format": sf, "group_size": 64}
    q = sw.quantize(w, fmt, **kw)
    img = P.pack(q, fp6_layout=layout)
    # storage equals bits_per_weight exactly for these byte-aligned shapes
    assert img.nbytes * 8 == pytest.approx(q.bits_per_weight * w.numel())
    back = P.unpack(P.MemoryImage.read(img.write(tmp_path / "img")))
    assert torch.equal(back.codes, q.codes)
    assert torch.equal(back.scales, q.scales)
    for a, b in ((back.selectors, q.selectors), (back.zero_points, q.zero_points)):
        assert (a is None and b is None) or torch.equal(a, b)
    assert back.tensor_scale == q.tensor_scale
    assert torch.equal(back.dequantize(), q.dequantize())


def test_round_trip_axis0_and_scale_bits():
    w = torch.tensor([[1.0, -2.0], [3.0, 4.0], [0.5, 0.25], [-7.0, 1.0]])
    q = sw.quantize(w, "int4", group_size=2, axis=0)
    img = P.pack(q)
    # groups along axis 0, stored with the group axis innermost: column 0 has groups (1, 3) and
    # (0.5, -7) with scales 3/7 and 1; column 1 has (-2, 4) and (0.25, 1) with 4/7 and 1/7 (fp16)
    assert P._from_le_bytes(img.streams["scales"], 2, 4).tolist() == [
        int(torch.tensor(v, dtype=torch.float16).view(torch.int16)) & 0xFFFF
        for v in (3 / 7, 1.0, 4 / 7, 1 / 7)]
    back = P.unpack(img)
    assert torch.equal(back.dequantize(), q.dequantize())


def test_pack_errors_name_the_parameter():
    with pytest.raises(ValueError, match="bits=9"):
        P.pack_stream(torch.tensor([1]), 9)
    with pytest.raises(ValueError, match="outside the 4-bit code range"):
        P.pack_int4(torch.tensor([16]))
    with pytest.raises(ValueError, match="need"):
        P.unpack_stream(torch.tensor([1], dtype=torch.uint8), 4, 3)
    with pytest.raises(ValueError, match="fp6_layout"):
        P.pack(sw.quantize(torch.ones(1, 128), "int4"), fp6_layout="tc")
