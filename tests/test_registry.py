"""Every registered format, through every consumer of the registries."""
from __future__ import annotations

import pytest
import torch

import sw
from sw import catalog
from sw import formats as F
from sw import group_formats as GF
from sw.eval import hwcost
from sw.eval.fakequant import fake_quant, quantize_dequant
from sw.eval.learned import LearnedQuantizer

ALL = F.names() + GF.names()


def _w(shape=(4, 256), seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_group_registry_contents():
    assert GF.names() == ["bitmod4", "bitmod3", "mxfp4", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp8_e4m3", "mxfp8_e5m2",
                          "mxint8", "nvfp4"]
    assert GF.names("mx") == ["mxfp4", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp8_e4m3", "mxfp8_e5m2", "mxint8"]
    assert sw.group_format_names() == GF.names()
    assert (GF.get("nvfp4").block, GF.get("nvfp4").scale_format, GF.get("nvfp4").tensor_scale_bits) == (16, "e4m3", 32)
    assert GF.get("bitmod3").selector_bits == 2 and GF.get("bitmod3").block is None
    assert [v.name for v in GF.get("bitmod4").variants()] == ["fp4_er_pos", "fp4_er_neg", "fp4_ea_pos", "fp4_ea_neg"]
    assert GF.find("int4") is None and GF.find(4) is None


def test_registry_errors():
    with pytest.raises(ValueError, match=r"^unknown group format 'int4'; group formats: bitmod4, bitmod3, mxfp4,"):
        GF.get("int4")
    with pytest.raises(ValueError, match=r"^group format 'mxfp4' is already registered$"):
        GF.register(GF.get("mxfp4"))
    with pytest.raises(TypeError, match=r"^fmt must be a GroupFormat, not str$"):
        GF.register("mxfp4")
    with pytest.raises(ValueError, match=r"^fmt='int9' is not a known format; element formats: int3, int4,"):
        sw.format_spec("int9")
    with pytest.raises(ValueError, match=r"^fmt='e8m0' is a scale format, not an element format$"):
        sw.format_spec("e8m0")


@pytest.mark.parametrize("fmt", ALL)
def test_every_format_through_every_consumer(fmt):
    w = _w()
    spec = sw.format_spec(fmt)
    q = sw.quantize(w, fmt)
    # sw.quantize: the format's own element bits, block and metadata accounting
    assert q.format == fmt and q.element.bits == spec.bits
    assert q.group_size == (spec.block or 128)
    assert spec.bits_per_weight(numel=w.numel()) == q.bits_per_weight
    # the hardware cost model reads the same registry
    assert hwcost.bits_per_weight(fmt, numel=w.numel()) == q.bits_per_weight == hwcost.probe_bits(fmt)
    assert (hwcost.terms(fmt) is not None) == hwcost.is_engine_format(fmt)
    # fake quantization and the learned quantizer at init are bit-equal to sw.quantize
    deq = q.dequantize()
    assert torch.equal(fake_quant(w, fmt), deq)
    assert torch.equal(quantize_dequant(w, fmt)[0], deq)
    lq = LearnedQuantizer(w, fmt)
    assert torch.equal(lq().detach(), deq)
    assert torch.equal(lq.deploy().dequantize(), deq)
    # the catalogue (and so the README table) lists it with the same bits per weight
    row = next(r for r in catalog.markdown().splitlines() if r.startswith(f"| `{fmt}` |"))
    assert f"{spec.bits_per_weight((spec.block or 128), spec.scale_format or 'fp16'):.4f}" in row
