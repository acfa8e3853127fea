"""sw.eval core on tiny_llama: perplexity protocol, fake_quant, hooks, QuantSpec, splits, context."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import sw
from sw.eval import (
    QuantSpec,
    apply_weights,
    attach_act_kv,
    decoder_linears,
    fake_quant,
    perplexity,
    quantize_weight,
    tiny_context,
    weights_restored,
)
from sw.eval.data import calibration_slices, sentences, splits, strip_markup, validation_slice
from sw.eval.fakequant import dequant_values, quantize_dequant
from sw.eval.models import tiny_llama

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def model():
    return tiny_llama(0)


def _ids(n, seed=1, vocab=256):
    return torch.randint(0, vocab, (1, n), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- perplexity
def test_perplexity_matches_manual_nll(model):
    ids = _ids(3 * 64 + 17)
    r = perplexity(model, ids, window=64, progress=False)
    assert (r["windows"], r["window"], r["stride"], r["tokens"]) == (3, 64, 64, 3 * 63)
    total = 0.0
    with torch.no_grad():
        for i in range(3):
            x = ids[:, i * 64:(i + 1) * 64]
            logp = torch.log_softmax(model(x).logits[0, :-1].double(), -1)
            total -= float(logp.gather(1, x[0, 1:, None]).sum())
    assert r["nll"] == pytest.approx(total / (3 * 63), rel=1e-6)
    assert r["ppl"] == pytest.approx(math.exp(total / (3 * 63)), rel=1e-6)
    r2 = perplexity(model, ids, window=64, max_windows=2, progress=False)
    assert (r2["windows"], r2["tokens"]) == (2, 126)


def test_perplexity_errors_name_parameters(model):
    with pytest.raises(ValueError, match="window"):
        perplexity(model, _ids(50), window=64, progress=False)
    with pytest.raises(ValueError, match="ids"):
        perplexity(model, torch.zeros(2, 100, dtype=torch.long), window=64, progress=False)
    with pytest.raises(TypeError, match="ids"):
        perplexity(model, torch.zeros(1, 100), window=64, progress=False)


# ----------------------------------------------------------------------------- fake_quant
@pytest.mark.parametrize("fmt,g", [("int4", 32), ("int4_asym", 32), ("fp4_e2m1", None), ("bitmod4", 32),
                                   ("bitmod3", 64), ("mxfp4", 32), ("nvfp4", 16), ("fp6_e3m2", 32),
                                   ("fp8_e4m3", None), ("int8", 64), ("fp7_e3m3", 32)])
def test_fake_quant_bit_equal_and_identity_grad(fmt, g):
    x = torch.randn(8, 128, generator=torch.Generator().manual_seed(3)) * 0.05
    x.requires_grad_(True)
    y = fake_quant(x, fmt, g)
    want = sw.quantize(x.detach(), fmt, g if g not in (16, 32) or not fmt.startswith(("mx", "nv")) else
                       sw.DEFAULT_GROUP_SIZE).dequantize()
    assert torch.equal(y.detach(), want)
    assert not torch.equal(y.detach(), x.detach())      # it really quantized
    c = torch.randn(8, 128)
    (y * c).sum().backward()
    assert torch.equal(x.grad, c)


def _bits(t):
    return t.view(torch.int16) if t.dtype != torch.float32 else t.view(torch.int32)


@pytest.mark.parametrize("fmt", ["int8", "int4", "int3", "fp8_e4m3", "fp4_e2m1", "fp6_e3m2", "fp3", "flint4",
                                 "int4_asym", "bitmod4", "mxfp4", "nvfp4"])
@pytest.mark.parametrize("g", [None, 32, 48])
def test_dequant_values_fast_path_is_bit_equal(fmt, g):
    """The activation hot path (no codes built) gives the checked path's bits, signs of zero included,
    for finite input, zero and tiny groups (scales rounding to 0), fp16/bf16 input, inf (falls back)."""
    if fmt.startswith(("mx", "nv")):
        g = 128                      # "the format's own block" (another group size is refused)
    gen = torch.Generator().manual_seed(5)
    xs = [torch.randn(3, 64, 576, generator=gen) * 3, torch.randn(2, 576, generator=gen).half(),
          torch.randn(4, 576, generator=gen).bfloat16() * 1e3, -torch.zeros(2, 576),
          torch.cat([torch.zeros(1, 576), torch.randn(1, 576, generator=gen) * 1e-6,
                     -torch.rand(1, 576, generator=gen) * 1e-9]),
          torch.tensor([[math.inf] + [1.0] * 575])]
    for x in xs:
        want = quantize_dequant(x, fmt, g)[0]
        got = dequant_values(x, fmt, g)
        assert got.dtype == want.dtype and torch.equal(_bits(got), _bits(want))


def test_fake_quant_partial_last_group_equals_separate_groups():
    x = torch.randn(4, 96, generator=torch.Generator().manual_seed(4))
    for fmt in ("int4", "int4_asym", "bitmod4"):
        y = fake_quant(x, fmt, 64)
        a = sw.quantize(x[:, :64], fmt, 64).dequantize()
        b = sw.quantize(x[:, 64:], fmt, 32).dequantize()
        assert torch.equal(y, torch.cat([a, b], 1)), fmt
    _, bpw = quantize_dequant(x, "int4", 64)
    assert bpw == pytest.approx(4 + 2 * 16 / 96)     # two fp16 scales per 96-element row


def test_fake_quant_errors():
    with pytest.raises(ValueError, match="fmt"):
        fake_quant(torch.randn(4, 8), "int5")
    with pytest.raises(ValueError, match="group_size"):
        fake_quant(torch.randn(4, 64), "mxfp4", 64)


# ----------------------------------------------------------------------------- QuantSpec / weights
def test_quantspec_errors_name_the_field(model):
    for kw, field in [(dict(weight="int5"), "weight"), (dict(act="fp4x"), "act"), (dict(kv="nope"), "kv"),
                      (dict(group_size=0), "group_size"), (dict(scale_format="int4"), "scale_format"),
                      (dict(layer_formats={"a": "int9"}), "layer_formats")]:
        with pytest.raises((ValueError, TypeError), match=field):
            QuantSpec(**kw)
    spec = QuantSpec(weight="int4", layer_formats={"model.layers.9.mlp.up_proj": "int8"})
    with pytest.raises(ValueError, match="layer_formats"):
        apply_weights(model, spec, progress=False)
    assert QuantSpec(weight="bitmod4", act="int8", kv="int4").label() == "W bitmod4 g128 · A int8 · KV int4"
    assert QuantSpec().label() == "float"


def test_decoder_linears_order(model):
    names = list(decoder_linears(model))
    assert len(names) == 14 and "lm_head" not in names
    assert [n.split(".")[-1] for n in names[:7]] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                      "up_proj", "down_proj"]


def test_apply_weights_and_restore_bit_exact(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lin = decoder_linears(model)
    with weights_restored(model):
        info = apply_weights(model, QuantSpec(weight="int4", group_size=32, include_head=True), progress=False)
        assert info["layers"] == 15
        assert info["bits_per_weight"] == pytest.approx(4.5)           # 4 + 16/32
        w = lin["model.layers.0.mlp.down_proj"].weight
        assert torch.equal(w, quantize_weight(before["model.layers.0.mlp.down_proj.weight"], "int4", 32))
        assert model.lm_head.weight is not model.model.embed_tokens.weight     # untied while quantized
        model.model.layers[1].self_attn.q_proj.weight = torch.nn.Parameter(torch.zeros(64, 64))
    assert model.lm_head.weight is model.model.embed_tokens.weight
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_layer_formats_override_and_float_layers(model):
    names = list(decoder_linears(model))
    spec = QuantSpec(weight=None, layer_formats={names[0]: "int8", names[1]: None})
    with weights_restored(model):
        info = apply_weights(model, spec, progress=False)
    assert info["layers"] == 1 and info["per_layer"][names[1]] is None
    assert info["per_layer"][names[0]] == pytest.approx(8 + 16 / 64)


# ----------------------------------------------------------------------------- act / KV hooks
def test_act_hook_quantizes_each_linear_input_per_token(model):
    raw, seen = {}, {}
    lin = decoder_linears(model)
    caps = [m.register_forward_pre_hook(lambda mod, a, n=n: raw.__setitem__(n, a[0].detach().clone()), prepend=True)
            for n, m in lin.items()]
    h = attach_act_kv(model, QuantSpec(act="int8"))
    caps += [m.register_forward_pre_hook(lambda mod, a, n=n: seen.__setitem__(n, a[0].detach().clone()))
             for n, m in lin.items()]
    assert len(h) == len(lin)
    with torch.no_grad():
        model(_ids(20), use_cache=False)
    for n in lin:
        x = raw[n]
        assert torch.equal(seen[n], sw.quantize(x, "int8", None).dequantize()), n
        # per token: every row is an integer multiple of its own scale amax/127 (fp16)
        s = (x.abs().amax(-1, keepdim=True) / 127).half().float()
        k = seen[n] / s
        assert torch.allclose(k, k.round(), atol=1e-3) and k.abs().max() <= 127
    h.remove()
    for c in caps:
        c.remove()
    assert all(not m._forward_pre_hooks for m in lin.values())


def test_kv_hook_quantizes_k_v_before_rope_over_all_heads(model):
    lin = decoder_linears(model)
    raw, seen = {}, {}
    kv = {n: m for n, m in lin.items() if n.endswith(("k_proj", "v_proj"))}
    caps = [m.register_forward_hook(lambda mod, a, o, n=n: raw.__setitem__(n, o.detach().clone()), prepend=True)
            for n, m in kv.items()]
    h = attach_act_kv(model, QuantSpec(kv="int4"))
    caps += [m.register_forward_hook(lambda mod, a, o, n=n: seen.__setitem__(n, o.detach().clone()))
             for n, m in kv.items()]
    assert len(h) == 4
    ids = _ids(24)
    with torch.no_grad():
        out_q = model(ids, use_cache=False).logits
    for n in kv:
        assert raw[n].shape[-1] == 2 * 16     # 2 KV heads x head_dim 16: one scale over both heads
        assert torch.equal(seen[n], sw.quantize(raw[n], "int4", None).dequantize()), n
    h.remove()
    for c in caps:
        c.remove()
    # the quantized K/V are what attention uses: replay them through the unhooked model (K and V are
    # the projections' outputs, so RoPE is applied after the hook) and get the same logits
    kq = {n: seen[n] for n in kv}
    rep = [m.register_forward_hook(lambda mod, a, o, n=n: kq[n]) for n, m in kv.items()]
    with torch.no_grad():
        assert torch.equal(model(ids, use_cache=False).logits, out_q)
        for r in rep:
            r.remove()
        out_f = model(ids, use_cache=False).logits
    assert not torch.equal(out_f, out_q)


def test_ste_hooks_pass_gradients(model):
    ids = _ids(16)
    with attach_act_kv(model, QuantSpec(act="int4", kv="int4"), ste=True):
        loss = model(ids, labels=ids, use_cache=False).loss
        loss.backward()
    g = model.model.layers[0].self_attn.q_proj.weight.grad
    assert g is not None and float(g.abs().sum()) > 0
    model.zero_grad(set_to_none=True)


# ----------------------------------------------------------------------------- data / context
def test_splits_disjoint_and_errors():
    ids = torch.arange(100).unsqueeze(0)
    e, c = splits(ids, 30, 20)
    assert e[0].tolist() == list(range(30)) and c[0].tolist() == list(range(80, 100))
    with pytest.raises(ValueError, match="eval_tokens=90"):
        splits(ids, 90, 20)
    v = validation_slice(ids, 30, 20, 25)                     # just before the calibration slice
    assert v[0].tolist() == list(range(55, 80))
    assert validation_slice(ids, 30, 20, 50)[0].tolist() == list(range(30, 80))   # touching, not overlapping
    with pytest.raises(ValueError, match="val_tokens=51"):
        validation_slice(ids, 30, 20, 51)
    with pytest.raises(ValueError, match="val_tokens=-1"):
        validation_slice(ids, 30, 20, -1)


def test_calibration_slices_are_disjoint_seeded_and_checked():
    ids = torch.arange(200).unsqueeze(0)
    sl = calibration_slices(ids, 30, 20, 25, 3, seed=0)
    assert sl[0][0].tolist() == list(range(180, 200))                # slice 0 = splits()' calibration slice
    seen = set(range(30)) | set(range(155, 180))                      # evaluation and validation tokens
    for s_ in sl:
        toks = set(s_[0].tolist())
        assert len(toks) == 20 and not toks & seen
        seen |= toks
    for s_ in sl[1:]:                                                 # whole blocks between eval and val
        assert (s_[0, 0].item() - 30) % 20 == 0 and s_[0].tolist() == list(range(s_[0, 0].item(), s_[0, 0].item() + 20))
    assert [x.tolist() for x in calibration_slices(ids, 30, 20, 25, 3, seed=0)] == [x.tolist() for x in sl]
    assert [x.tolist() for x in calibration_slices(ids, 30, 20, 25, 3, seed=1)] != [x.tolist() for x in sl]
    assert len(calibration_slices(ids, 30, 20, 25, 1)) == 1
    with pytest.raises(ValueError, match=r"n=8: the text between the evaluation and validation slices holds 6 "
                                         r"block\(s\) of calib_tokens=20, fewer than the 7 extra slices asked for"):
        calibration_slices(ids, 30, 20, 25, 8)
    with pytest.raises(ValueError, match=r"n=0 must be a positive int"):
        calibration_slices(ids, 30, 20, 25, 0)


def test_context_calib_slice(tmp_path):
    from sw.eval.context import tiny_context
    ctx = tiny_context(tmp_path)
    assert ctx.calib_slice(0) is ctx.calib_ids and ctx.calib_slice(1).shape == ctx.calib_ids.shape
    assert not torch.equal(ctx.calib_slice(1), ctx.calib_ids)
    with pytest.raises(ValueError, match=r"k=2: this context has calibration slices 0..1"):
        ctx.calib_slice(2)


def test_slice_summary_and_spread():
    from sw.eval.slices import spread_exceeds, spread_text, summary
    s = summary([1.0, 2.0, None, 4.0])
    assert s == {"mean": pytest.approx(7 / 3), "min": 1.0, "max": 4.0, "std": pytest.approx(1.5275252316519468),
                 "n": 3, "values": [1.0, 2.0, 4.0]}
    assert spread_text(s, "{:.2f}") == "2.33 (1.00..4.00, 3 slices)"
    assert spread_text(summary([5.0])) == "5.000" and spread_text(summary([None])) == "n/a"
    assert spread_exceeds(s, 2.9) and not spread_exceeds(s, 3.0) and not spread_exceeds(summary([5.0]), 0.0)


def test_strip_markup_removes_templates_refs_files_categories_interwiki():
    wt = ("{{Infobox|x=1}}'''Albedo''' is the [[reflection|reflectivity]] of a surface.<ref>Cite {{a}}</ref> "
          "[[File:Earth.jpg|thumb|Earth]]\n== History ==\nIt was [[measured]].\n[[Category:Physics]]\n[[de:Albedo]]")
    t = strip_markup(wt)
    assert "Albedo is the reflectivity of a surface." in t and "It was measured." in t and "History" in t
    for junk in ("Infobox", "Cite", "Earth", "Category", "Physics", "de:", "{{", "[[", "<ref"):
        assert junk not in t, junk
    assert sentences("One two three four five six. Seven eight nine ten eleven twelve!", 2) == [
        "One two three four five six.", "Seven eight nine ten eleven twelve!"]


def test_context_ppl_delta_and_restore(tmp_path):
    ctx = tiny_context(tmp_path)
    assert ctx.preset.name == "smoke"
    assert ctx.eval_ids.shape[1] == ctx.preset.eval_tokens and ctx.calib_ids.shape[1] == ctx.preset.calib_tokens
    before = [p.clone() for p in ctx.model.parameters()]
    r0 = ctx.ppl()
    assert r0["delta_pct"] == 0.0 and r0["ppl"] == ctx.reference["ppl"]
    r = ctx.ppl(QuantSpec(weight="int3", group_size=32, act="int4", kv="int4"))
    assert r["ppl"] != ctx.reference["ppl"]
    assert r["delta_pct"] == pytest.approx(100 * (r["ppl"] / ctx.reference["ppl"] - 1))
    assert r["label"] == "W int3 g32 · A int4 · KV int4"
    assert all(torch.equal(a, b) for a, b in zip(before, ctx.model.parameters()))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in ctx.model.modules())
    # the validation slice: its own ids, reference and memo; never the evaluation slice's figures
    assert ctx.val_ids.shape[1] == ctx.preset.val_tokens
    assert not torch.equal(ctx.val_ids, ctx.eval_ids)
    rv0 = ctx.reference_for(split="val")
    assert rv0["ppl"] == perplexity(ctx.model, ctx.val_ids, ctx.preset.window, progress=False)["ppl"]
    assert rv0["ppl"] != ctx.reference["ppl"] and rv0["windows"] == ctx.preset.val_windows
    rv = ctx.ppl(QuantSpec(weight="int3", group_size=32), split="val")
    re_ = ctx.ppl(QuantSpec(weight="int3", group_size=32))
    assert rv["ppl"] != re_["ppl"] and rv["delta_pct"] == pytest.approx(100 * (rv["ppl"] / rv0["ppl"] - 1))
    with pytest.raises(ValueError, match="split='test'"):
        ctx.ppl(split="test")


def test_embed_sentences_masked_mean_pool_l2():
    from transformers import AutoTokenizer

    from sw.eval.minilm import encoder_linears, evaluate_format, tiny_bert
    from sw.eval.models import embed_sentences, minilm_dir
    tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    bert = tiny_bert(0)
    sents = ["A short one.", "A noticeably longer sentence that needs padding in the batch."]
    e = embed_sentences(bert, tok, sents, batch_size=2)
    with torch.no_grad():
        for i, s in enumerate(sents):            # unpadded, one at a time
            h = bert(**tok(s, return_tensors="pt")).last_hidden_state[0].mean(0)
            assert torch.allclose(e[i], F.normalize(h, dim=0), atol=1e-5)
    assert len(encoder_linears(bert)) == 12
    r = evaluate_format(bert, tok, sents, e, "int4", 64)
    assert 0.9 < r["cos_mean"] < 1.0 and r["sqnr_db"] > 10
    assert torch.equal(embed_sentences(bert, tok, sents, batch_size=2), e)     # weights restored
