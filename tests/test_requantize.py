"""QuantizedTensor.requantize: codes chosen again under fixed metadata (the GPTQ primitive)."""
import pytest
import torch

import sw
from sw import group_formats as GF

ELEMENT = ["int3", "int4", "int8", "int4_asym", "int3_asym", "fp3", "fp4_e2m1", "fp6_e3m2", "fp6_e2m3", "fp8_e4m3"]


def _w():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(48, 256, generator=g) * 0.05
    w[3, 17], w[5, 200], w[7, :16] = 0.9, -0.7, 0.0            # an outlier of each sign, an all-zero block
    return w


@pytest.mark.parametrize("fmt", ELEMENT + GF.names())
def test_requantize_of_the_original_is_the_dequantized_tensor(fmt):
    w = _w()
    q = sw.quantize(w, fmt, 128) if GF.find(fmt) is None or GF.find(fmt).block is None else sw.quantize(w, fmt)
    d = q.dequantize()
    assert torch.equal(q.requantize(w), d)
    assert torch.equal(q.recode(w), q.codes)
    # in pieces, each with its own start
    assert torch.equal(torch.cat([q.requantize(w[:, :100]), q.requantize(w[:, 100:], start=100)], 1), d)


def test_requantize_uses_the_fixed_metadata():
    w = _w()
    q = sw.quantize(w, "int4", 128)
    s = q.scales[0, 0].item()
    x = torch.zeros(48, 1)
    x[0, 0] = 2.6 * s                          # the scale is not recomputed: 2.6 s -> 3 s
    x[1, 0] = 100.0                             # saturates at the group's +7 s
    r = q.requantize(x, start=5)
    assert r[0, 0].item() == 3 * s and r[1, 0].item() == 7 * q.scales[1, 0].item() and r[2, 0].item() == 0.0


def test_requantize_errors_name_the_parameter():
    w = _w()
    q = sw.quantize(w, "int4", 128)
    with pytest.raises(ValueError, match=r"^requantize: x must have shape \(48,\) \+ \(n,\), got \(47, 3\)$"):
        q.requantize(torch.zeros(47, 3))
    with pytest.raises(ValueError, match=r"^requantize: start=250 with 8 positions runs past the 256 of the group axis$"):
        q.requantize(torch.zeros(48, 8), start=250)
    qt = sw.quantize(w.t().contiguous(), "int4", 16, axis=0)
    with pytest.raises(ValueError, match=r"^requantize: the group axis is 0; it must be the last axis \(1\)$"):
        qt.requantize(torch.zeros(256, 1))


@pytest.mark.parametrize("fmt", ["bitmod4", "bitmod3"])
@pytest.mark.parametrize("rounding", ["nearest_even", "nearest_away", "nearest_down", "nearest_up"])
def test_batched_variant_encode_equals_each_variants_encoder(fmt, rounding):
    """recode's one batched search over per-element midpoint rows gives, element by element, the codes
    of the selected variant's own encoder: at every midpoint (ties), at ±0, ±tiny, ±inf and at random."""
    from sw.quantized import _encode_selected
    vs = sw.quantize(torch.randn(4, 128), fmt, 128).variants
    g = torch.Generator().manual_seed(3)
    y = torch.cat([torch.randn(4000, generator=g) * 3, torch.tensor([0.0, -0.0, 1e-30, -1e-30, float("inf"),
                                                                      float("-inf")])]
                  + [m for v in vs for m in (v.midpoints, -v.midpoints)])
    sel = torch.randint(0, len(vs), y.shape, generator=g)
    want = torch.zeros(y.shape, dtype=torch.uint8)
    for i, v in enumerate(vs):
        want = torch.where(sel == i, v._encode_f32(y, rounding), want)
    assert torch.equal(_encode_selected(vs, sel, y, rounding), want)
