"""sw.eval on the real SmolLM2-135M and the gensim Wikipedia text (model load from the cache: a few s;
the first run converts the GGUF, ~25 s, and extracts the text, ~25 s)."""
from __future__ import annotations

import math
import re

import pytest
import torch

import sw
from sw.eval import QuantSpec, decoder_linears, perplexity
from sw.eval.context import PRESETS, EvalContext
from sw.eval.data import splits, tokenize, wiki_text
from sw.eval.models import DEFAULT_CACHE, load_smollm2

pytestmark = pytest.mark.eval

pytest.importorskip("gguf")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)     # the machine is shared: one thread is faster under contention
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def smol():
    return load_smollm2(DEFAULT_CACHE)


@pytest.fixture(scope="module")
def text():
    return wiki_text(cache_dir=DEFAULT_CACHE)


def test_gensim_extraction_gives_106_articles(text):
    titles = re.findall(r"^ = (.+) = $", text, re.M)
    assert len(titles) == 106
    assert titles[:3] == ["Anarchism", "Autism", "Albedo"]
    assert 2.8e6 < len(text) < 3.1e6
    assert "{{" not in text and "<ref" not in text and "[[Category:" not in text


def test_q4_1_known_answer(smol):
    """Every loaded linear weight is exactly m + q*d per block of 32 along in_features with fp16 d and
    fp16 *float* min m, q in 0..15 (Q4_1); sw's integer-zero-point int4_asym g32 is not exact."""
    model, _ = smol
    lin = decoder_linears(model)
    assert len(lin) == 210
    for name, m in lin.items():
        w = m.weight.detach().reshape(-1, 32)
        lo, hi = w.amin(1, keepdim=True), w.amax(1, keepdim=True)
        assert torch.equal(lo, lo.half().float()), name                  # the float min is an fp16 number
        d = ((hi - lo) / 15).half().float()                              # recover the fp16 scale
        q = torch.where(d > 0, torch.round((w - lo) / torch.where(d > 0, d, 1.0)), 0.0)
        assert 0 <= float(q.min()) and float(q.max()) <= 15, name
        assert torch.equal(d * q + lo, w), name
    w = lin["model.layers.0.self_attn.q_proj"].weight.detach()
    rel = float((sw.quantize(w, "int4_asym", 32).dequantize() - w).pow(2).sum() / w.pow(2).sum())
    assert rel > 1e-3                                                     # integer zero point misses the grid


def test_reference_and_w4_perplexity(smol, text, tmp_path):
    model, tok = smol
    ids = tokenize(tok, text, cache_dir=DEFAULT_CACHE)
    assert ids.shape[1] > 600_000
    ev, cal = splits(ids, 512, 256)
    ref = perplexity(model, ev, window=256, progress=False)
    assert ref["tokens"] == 2 * 255 and math.isfinite(ref["ppl"]) and 8 < ref["ppl"] < 80
    ctx = EvalContext(model, tok, ev, cal, PRESETS["smoke"].__class__("smoke", 2, 256, 256), ref, tmp_path,
                      progress=False)
    w0 = model.model.layers[7].mlp.down_proj.weight.detach().clone()
    r = ctx.ppl(QuantSpec(weight="int4", group_size=128))
    assert r["ppl"] > ref["ppl"] * 1.05 and r["bits_per_weight"] == pytest.approx(4 + 16 * 5 / 576, rel=0.02)
    assert torch.equal(model.model.layers[7].mlp.down_proj.weight, w0)    # model restored exactly
