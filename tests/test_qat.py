"""sw.eval.qat: data-free generation, student = RTN at init, KD reduces KL, teacher untouched, section smoke."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from sw.eval.context import tiny_context
from sw.eval.hooks import QuantSpec, apply_weights, attach_act_kv, decoder_linears, weights_restored
from sw.eval.learned import is_representable
from sw.eval.models import tiny_llama
from sw.eval.qat import cached_data, deploy_student, generate_data, kd_loss, make_student, mean_kl, section, train

SPEC = QuantSpec(weight="int4", group_size=128, act="int8", kv="int4")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_generation_is_deterministic_hybrid_and_leaves_teacher_untouched():
    model = tiny_llama(0)
    before = _state(model)
    a = generate_data(model, 4, 12, batch=3, seed=7, progress=False)
    c = generate_data(model, 4, 12, batch=3, seed=8, progress=False)
    assert a.shape == (4, 12) and a.dtype == torch.long
    assert torch.equal(a, generate_data(model, 4, 12, batch=3, seed=7, progress=False))
    assert not torch.equal(a, c)
    assert _same(before, _state(model))
    # start tokens and greedy lengths come from the seeded generator; positions < j are the argmax
    g = torch.Generator().manual_seed(7)
    starts = torch.randint(0, 256, (4,), generator=g)
    j = torch.randint(3, 6, (4,), generator=g)
    assert torch.equal(a[:, 0], starts)
    with torch.no_grad():
        logits = model(input_ids=a, use_cache=False).logits
    for i in range(4):
        for t in range(1, int(j[i])):
            assert int(a[i, t]) == int(logits[i, t - 1].argmax())


def test_generation_rejects_bad_arguments():
    model = tiny_llama(0)
    with pytest.raises(ValueError, match="seq_len"):
        generate_data(model, 2, 1, progress=False)
    with pytest.raises(ValueError, match="greedy"):
        generate_data(model, 2, 8, greedy=(4, 2), progress=False)


def test_student_initial_forward_equals_rtn_quantized_model():
    model = tiny_llama(0)
    before = _state(model)
    ids = torch.randint(0, 256, (2, 24), generator=torch.Generator().manual_seed(0))
    student, handle = make_student(model, SPEC)
    with torch.no_grad():
        s_logits = student(input_ids=ids, use_cache=False).logits
    handle.remove()
    with weights_restored(model), torch.no_grad():
        apply_weights(model, SPEC, progress=False)
        with attach_act_kv(model, SPEC):
            r_logits = model(input_ids=ids, use_cache=False).logits
    assert torch.equal(s_logits, r_logits)
    assert _same(before, _state(model))
    trainable = [n for n, p in student.named_parameters() if p.requires_grad]
    assert all(n.endswith(("delta", "log_scale", "norm.weight")) for n in trainable)
    assert not any("embed" in n for n in trainable)


def test_kd_loss_is_token_mean_kl():
    g = torch.Generator().manual_seed(0)
    t, s = torch.randn(2, 3, 5, generator=g), torch.randn(2, 3, 5, generator=g)
    p = F.softmax(t, -1)
    expected = (p * (F.log_softmax(t, -1) - F.log_softmax(s, -1))).sum(-1).mean()
    assert float(kd_loss(s, t)) == pytest.approx(float(expected), rel=1e-5)
    assert float(kd_loss(t, t)) == pytest.approx(0.0, abs=1e-7)


def test_kd_steps_reduce_kl_and_teacher_stays_untouched():
    model = tiny_llama(0)
    spec = QuantSpec(weight="int3", group_size=32, act="int4", kv="int4")
    ids = generate_data(model, 4, 24, batch=4, seed=0, progress=False)
    before = _state(model)
    student, handle = make_student(model, spec)
    kl0 = mean_kl(student, model, ids)
    log = train(student, model, ids, steps=12, batch=2, lr=1e-2, lr_scale=1e-3, lr_norm=1e-3, seed=0,
                progress=False)
    kl1 = mean_kl(student, model, ids)
    handle.remove()
    assert len(log["losses"]) == 12 and log["tokens_per_step"] == 48
    assert kl1 < 0.6 * kl0
    assert _same(before, _state(model))
    assert all(p.grad is None for p in model.parameters())
    qts = deploy_student(student)
    lin = decoder_linears(student)
    assert set(qts) == set(lin)
    for n, m in lin.items():
        assert not parametrize.is_parametrized(m, "weight")
        assert is_representable(qts[n])
        assert torch.equal(m.weight, qts[n].dequantize()[:, :m.in_features])


def test_generated_data_cache(tmp_path):
    model = tiny_llama(0)
    p = dict(n_seqs=2, seq_len=8, greedy=(3, 5), top_k=50, gen_batch=2)
    a, info = cached_data(model, p, 0, tmp_path, progress=False)
    b, info2 = cached_data(model, p, 0, tmp_path, progress=False)
    assert not info["cached"] and info2["cached"] and torch.equal(a, b)
    c, info3 = cached_data(model, {**p, "seq_len": 9}, 0, tmp_path, progress=False)
    assert not info3["cached"] and c.shape == (2, 9)


def test_section_smoke_on_tiny_context(tmp_path):
    ctx = tiny_context(tmp_path)
    before = _state(ctx.model)
    sec = section(ctx, params=dict(n_seqs=3, seq_len=16, steps=2, heldout=1))
    # float, RTN, one row per data set (the smoke preset's 2 slices: seeds 0 and 1), their mean
    assert sec.key == "qat" and len(sec.tables[0].rows) == 5 and sec.data["slices"] == 2
    per = sec.data["per_slice"]
    assert [x["seed"] for x in per] == [0, 1]
    assert sec.data["qat_ppl"]["mean"] == pytest.approx((per[0]["ppl"] + per[1]["ppl"]) / 2, rel=1e-12)
    assert sec.tables[0].rows[-1][2] == sec.data["qat_ppl"]["mean"]
    assert sec.data["generated_tokens"] == 48 and len(sec.data["train"]["losses"]) == 2
    assert sec.data["rtn"]["ppl"] == ctx.ppl(SPEC)["ppl"]
    assert isinstance(sec.data["target_met"], bool)
    assert _same(before, _state(ctx.model))
