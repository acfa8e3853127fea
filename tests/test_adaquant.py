"""sw.eval.adaquant: learned quantizer (STE, bit-exact init, representable deployment), AdaQuant on a
synthetic layer, parallel vs sequential capture, bias correction, section smoke on tiny_llama."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sw.eval.adaquant import (
    calibrate,
    calibrate_linear,
    calibrated,
    correction_bias,
    output_mse,
    recovered_fraction,
    section,
)
from sw.eval.capture import walk_blocks
from sw.eval.context import tiny_context
from sw.eval.fakequant import quantize_dequant
from sw.eval.hooks import QuantSpec, apply_weights, decoder_linears, quantize_weight, weights_restored
from sw.eval.learned import LearnedQuantizer, is_representable
from sw.eval.models import tiny_llama

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _synthetic(out_f=32, k=256, tokens=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out_f, k, generator=g) * 0.05
    # correlated, anisotropic inputs (so output MSE differs from weight MSE)
    z = torch.randn(tokens, k, generator=g)
    x = z @ (torch.randn(k, k, generator=g) * 0.1 + torch.eye(k)) * torch.linspace(0.2, 3.0, k)
    return w, x, F.linear(x, w)


# ------------------------------------------------------------------------- STE
def test_ste_gradient_identity_inside_zero_outside_and_scale_gradient():
    # one group of 8, int4 (levels -7..7), absmax 0.875 -> scale 0.125 exactly (fp16)
    w = torch.tensor([[0.875, -0.3, 0.1, 0.0, 0.44, -0.875, 0.2, 0.05]])
    q = LearnedQuantizer(w, "int4", group_size=8)
    assert float(q.s0) == 0.125
    c = torch.arange(1.0, 9.0)
    (q()[0] * c).sum().backward()
    # at init every y = w/s is within [-7, 7] (the two extremes sit exactly on +-7: inclusive)
    assert torch.equal(q.delta.grad.reshape(-1), c * 0.125)   # d wq / d w = 1, times the unit 0.125
    y = w[0] / 0.125
    expected_ds = float((c * (torch.round(y) - y)).sum())      # LSQ: round(y) - y inside
    assert q.log_scale.grad.item() == pytest.approx(expected_ds * 0.125, rel=1e-6)

    # shrink the scale to 0.1 (fp16 0.0999755859375): |y| of 0.875 is 8.75 > 7 -> clipped
    q2 = LearnedQuantizer(w, "int4", group_size=8)
    with torch.no_grad():
        q2.log_scale.fill_(math.log(0.1 / 0.125))
    s = float(q2.scale().detach())
    assert s == float(torch.tensor(0.1).half())
    out = q2()[0]
    (out * c).sum().backward()
    y2 = w[0] / s
    inside = (y2.abs() <= 7).float()
    assert inside.tolist() == [0, 1, 1, 1, 1, 0, 1, 1]
    assert torch.equal(q2.delta.grad.reshape(-1), c * inside * 0.125)   # zero at the clipped elements
    qv = torch.clamp(torch.round(y2), -7, 7)
    assert torch.equal(out, qv * s)
    # clipped: d wq / d s = the clipped grid value (+-7); inside: round(y) - y; chain d s / d t = s (pre-rounding)
    s_cont = 0.125 * math.exp(math.log(0.1 / 0.125))
    exp_ds = float((c * torch.where(inside > 0, qv - y2, qv)).sum())
    assert q2.log_scale.grad.item() == pytest.approx(exp_ds * s_cont, rel=1e-5)


# ------------------------------------------------------------------------- bit-exact init
@pytest.mark.parametrize("fmt,gs,sf", [
    ("int4", 128, None), ("int3", 32, None), ("int4_asym", 128, None), ("int3_asym", None, None),
    ("fp4_e2m1", 128, "bf16"), ("fp3", 64, None), ("flint4", 128, None), ("fp6_e3m2", None, None),
    ("fp4_er_pos", 32, None), ("int4", 64, "e4m3"), ("bitmod4", 128, None), ("bitmod3", 32, None),
    ("mxfp4", 32, None), ("mxint8", 32, None), ("nvfp4", 16, None)])
def test_learned_forward_equals_rtn_bit_exactly_at_init(fmt, gs, sf):
    g = torch.Generator().manual_seed(1)
    w = torch.randn(24, 192, generator=g) * 0.04
    w[2] = 0.0                        # all-zero row (zero scale groups)
    w[5, 3] = 0.7                     # an outlier
    k = 200 if fmt not in ("mxfp4", "mxint8", "nvfp4") else 192   # 200: partial last group (padding)
    if k == 200:
        w = torch.cat([w, torch.randn(24, 8, generator=g) * 0.04], 1)
    q = LearnedQuantizer(w, fmt, gs, sf)
    ref = quantize_dequant(w, fmt, gs, scale_format=sf)[0]
    assert torch.equal(q(), ref)
    assert torch.equal(q.deployed_weight(), ref)
    assert is_representable(q.deploy())


def test_mx_learns_weights_only():
    w = torch.randn(8, 64) * 0.05
    assert not LearnedQuantizer(w, "mxfp4").learn_scale
    assert LearnedQuantizer(w, "nvfp4").learn_scale and LearnedQuantizer(w, "bitmod4").learn_scale


# ------------------------------------------------------------------------- AdaQuant on one layer
@pytest.mark.parametrize("fmt", ["int4", "int3_asym", "bitmod3", "nvfp4"])
def test_adaquant_reduces_layer_mse_and_deploys_representable_weights(fmt):
    w, x, y = _synthetic()
    q, b, mse_rtn, mse, kept = calibrate_linear(w, x, y, fmt, group_size=128, steps=40, batch_tokens=256,
                                                lr_w=2e-3, lr_s=2e-4, seed=0)
    assert not kept and b is None
    assert mse < 0.9 * mse_rtn
    rtn = quantize_weight(w, fmt, 128)
    assert output_mse(x, rtn, None, y) == pytest.approx(mse_rtn, rel=1e-9)
    qt = q.deploy()
    assert is_representable(qt)
    wd = q.deployed_weight()
    assert torch.equal(wd, q().detach())                       # the trained forward is what is deployed
    assert output_mse(x, wd, None, y) == pytest.approx(mse, rel=1e-9)
    assert not torch.equal(wd, rtn)
    # on the grid: every deployed weight is (grid value - zp) * (a scale of the scale format)
    vals = qt.element_values()
    grids = [v.values for v in qt.variants]
    assert all(bool(torch.isin(vals, torch.cat(grids)).all()) for _ in [0])
    assert torch.equal(qt.dequantize()[:, :w.shape[1]], wd)


def test_int_deployed_weights_are_integers_times_fp16_scales():
    w, x, y = _synthetic(seed=3)
    q, _, _, _, kept = calibrate_linear(w, x, y, "int4", group_size=64, steps=30, batch_tokens=256, lr_w=2e-3,
                                       lr_s=2e-4)
    assert not kept
    qt = q.deploy()
    s = qt.scales.float()
    assert torch.equal(s.half().float(), s) and bool((s > 0).all())
    ratio = (q.deployed_weight().reshape(32, -1, 64) / s.unsqueeze(-1))
    assert torch.equal(ratio, ratio.round()) and float(ratio.abs().max()) <= 7


def test_keep_best_returns_rtn_when_training_cannot_help():
    w, x, y = _synthetic(seed=2)
    q, _, mse_rtn, mse, kept = calibrate_linear(w, x, y, "int4", steps=3, lr_w=50.0, lr_s=5.0)
    assert kept and mse == mse_rtn
    assert torch.equal(q.deployed_weight(), quantize_weight(w, "int4", 128))


def test_calibrate_linear_rejects_bad_shapes():
    w, x, y = _synthetic()
    with pytest.raises(ValueError, match="do not match"):
        calibrate_linear(w, x[:, :10], y, "int4")
    with pytest.raises(ValueError, match="steps"):
        calibrate_linear(w, x, y, "int4", steps=-1)


# ------------------------------------------------------------------------- capture modes
def _ids(n=256, seed=0):
    return torch.randint(0, 256, (1, n), generator=torch.Generator().manual_seed(seed))


def test_sequential_capture_matches_quantized_prefix_and_parallel_matches_float():
    model = tiny_llama(0)
    ids = _ids()
    snap = {n: m.weight.detach().clone() for n, m in decoder_linears(model).items()}
    seen = {}
    with weights_restored(model):
        for mode in ("parallel", "sequential"):
            for blk in walk_blocks(model, ids, mode, seq_len=64):
                seen[mode, blk.index] = blk.x
                assert blk.x_float.keys() == blk.x.keys()
                if mode == "parallel":
                    assert all(blk.x[n] is blk.x_float[n] for n in blk.x)
                with torch.no_grad():    # quantize this block before the walker moves on
                    for local, full in blk.names.items():
                        lin = dict(blk.block.named_modules())[local]
                        lin.weight.copy_(quantize_weight(snap[full], "int3", 32))
            for n, m in decoder_linears(model).items():   # reset to float for the next mode
                with torch.no_grad():
                    m.weight.copy_(snap[n])
    b0 = [n for n in seen["parallel", 0]]
    b1 = [n for n in seen["parallel", 1]]
    assert all(torch.equal(seen["parallel", 0][n], seen["sequential", 0][n]) for n in b0)
    assert all(not torch.equal(seen["parallel", 1][n], seen["sequential", 1][n]) for n in b1)
    # reference: forward hooks on the real model (parallel: float; sequential: block 0 quantized)
    batch = ids.reshape(4, 64)
    for mode in ("parallel", "sequential"):
        got = {}
        hs = [m.register_forward_hook(lambda mod, a, o, n=n: got.__setitem__(n, a[0].reshape(-1, a[0].shape[-1])))
              for n, m in decoder_linears(model).items() if n in b1]
        with weights_restored(model), torch.no_grad():
            if mode == "sequential":
                for n, m in decoder_linears(model).items():
                    if n in b0:
                        m.weight.copy_(quantize_weight(m.weight, "int3", 32))
            model(input_ids=batch, use_cache=False)
        for h in hs:
            h.remove()
        assert all(torch.equal(got[n], seen[mode, 1][n]) for n in b1)
    assert all(torch.equal(m.weight, snap[n]) for n, m in decoder_linears(model).items())


def test_sequential_and_parallel_adaquant_agree_on_first_block_only():
    model = tiny_llama(0)
    ids = _ids()
    kw = dict(seq_len=64, steps=2, batch_tokens=64, progress=False)
    par = calibrate(model, ids, "int4", mode="parallel", **kw)
    seq = calibrate(model, ids, "int4", mode="sequential", **kw)
    first = [n for n in par.layers if ".layers.0." in n]
    second = [n for n in par.layers if ".layers.1." in n]
    assert len(first) == len(second) == 7
    assert all(torch.equal(par.layers[n].weight, seq.layers[n].weight) for n in first)
    assert any(not torch.equal(par.layers[n].weight, seq.layers[n].weight) for n in second)


def test_skip_first_leaves_the_sink_positions_out_of_the_loss_only():
    """skip_first=k: each layer's AdaQuant MSE is over the positions >= k of every sequence
    (recomputed here); out-of-range values are refused naming the parameter."""
    model = tiny_llama(0)
    ids = _ids()
    kw = dict(seq_len=64, steps=0, progress=False)
    full = calibrate(model, ids, "int4", **kw)
    cut = calibrate(model, ids, "int4", skip_first=2, **kw)
    assert cut.settings["skip_first"] == 2 and full.settings["skip_first"] == 0
    n_checked = 0
    for blk in walk_blocks(model, ids, "parallel", seq_len=64):
        mods = dict(blk.block.named_modules())
        keep = (torch.arange(blk.x[next(iter(blk.x))].shape[0]) % 64) >= 2
        for local, name in blk.names.items():
            x, w = blk.x[name], mods[local].weight.detach()
            y = F.linear(x, w)
            assert cut.layers[name].mse_rtn == output_mse(x[keep], cut.layers[name].weight, None, y[keep])
            assert full.layers[name].mse_rtn == output_mse(x, full.layers[name].weight, None, y)
            assert cut.layers[name].mse_rtn != full.layers[name].mse_rtn
            n_checked += 1
    assert n_checked == 14
    with pytest.raises(ValueError, match="skip_first="):
        calibrate(model, ids, "int4", skip_first=64, **kw)
    with pytest.raises(ValueError, match="skip_first="):
        calibrate(model, ids, "int4", skip_first=-1, **kw)


# ------------------------------------------------------------------------- bias correction
def test_bias_correction_zeroes_mean_output_error_on_calibration_data():
    model = tiny_llama(1)
    ids = _ids(seed=1)
    cal = calibrate(model, ids, "int3", method="bias_correction", mode="parallel", seq_len=64, progress=False)
    assert all(r.bias is not None for r in cal.layers.values())
    n_checked = 0
    for blk in walk_blocks(model, ids, "parallel", seq_len=64):
        mods = dict(blk.block.named_modules())
        for local, full in blk.names.items():
            x, w = blk.x[full], mods[local].weight.detach()
            y = F.linear(x, w)
            r = cal.layers[full]
            err_rtn = (y - F.linear(x, r.weight)).mean(0)
            err = (y - F.linear(x, r.weight, r.bias)).mean(0)
            assert float(err_rtn.abs().max()) > 1e-4
            assert float(err.abs().max()) < 1e-6 * max(1.0, float(y.abs().max()))
            assert r.mse <= r.mse_rtn
            n_checked += 1
    assert n_checked == 14
    assert torch.allclose(correction_bias(x, r.weight, None, y), r.bias, atol=0, rtol=0)


def test_calibrated_loads_and_restores_exactly_and_rtn_matches_apply_weights():
    model = tiny_llama(0)
    ids = _ids()
    snap = {n: m.weight.detach().clone() for n, m in decoder_linears(model).items()}
    rtn = calibrate(model, ids, "int4_asym", method="rtn", seq_len=64, progress=False)
    bc = calibrate(model, ids, "int4_asym", method="bias_correction", seq_len=64, progress=False)
    with weights_restored(model):
        apply_weights(model, QuantSpec(weight="int4_asym"), progress=False)
        expected = {n: m.weight.detach().clone() for n, m in decoder_linears(model).items()}
    with calibrated(model, rtn):
        assert all(torch.equal(m.weight, expected[n]) for n, m in decoder_linears(model).items())
    with calibrated(model, bc):
        assert all(m.bias is not None for m in decoder_linears(model).values())
    lin = decoder_linears(model)
    assert all(m.bias is None and torch.equal(m.weight, snap[n]) for n, m in lin.items())


def test_bad_arguments_raise_naming_the_parameter():
    model = tiny_llama(0)
    with pytest.raises(ValueError, match="mode="):
        calibrate(model, _ids(), "int4", mode="diagonal", seq_len=64, progress=False)
    with pytest.raises(ValueError, match="method="):
        calibrate(model, _ids(), "int4", method="obq", seq_len=64, progress=False)
    with pytest.raises(ValueError, match="fmt="):
        calibrate(model, _ids(), "int5", seq_len=64, progress=False)
    with pytest.raises(ValueError, match="seq_len="):
        calibrate(model, _ids(n=32), "int4", seq_len=64, progress=False)


@pytest.mark.parametrize("fmt,mode", [("int4_asym", "sequential"), ("bitmod3", "parallel")])
def test_gptq_method_lowers_every_layers_output_error(fmt, mode):
    model = tiny_llama(0)
    snap = {n: m.weight.detach().clone() for n, m in decoder_linears(model).items()}
    cal = calibrate(model, _ids(), fmt, method="gptq", mode=mode, group_size=32, seq_len=64,
                    act_order=mode == "sequential", progress=False)
    assert len(cal.layers) == 14 and cal.settings["act_order"] == (mode == "sequential")
    for r in cal.layers.values():
        assert r.mse < r.mse_rtn, r.name
        assert torch.equal(r.qtensor.dequantize()[:, :r.weight.shape[1]], r.weight)    # deployable
    with calibrated(model, cal):
        assert all(torch.equal(m.weight, cal.layers[n].weight) for n, m in decoder_linears(model).items())
    assert all(torch.equal(m.weight, snap[n]) for n, m in decoder_linears(model).items())


def test_gptq_calibration_stacks_the_linears_that_share_an_input(monkeypatch):
    """q/k/v and gate/up go through one stacked column loop each; every layer gets what its own call
    would give (the calibration is the same with stacking turned off)."""
    from sw.eval import adaquant as A
    from sw.eval import gptq as G
    calls = []
    real = G.gptq_quantize
    monkeypatch.setattr(G, "gptq_quantize", lambda w, *a, **k: calls.append(w.shape[0]) or real(w, *a, **k))
    model = tiny_llama(0)
    kw = dict(method="gptq", mode="sequential", group_size=32, seq_len=64, progress=False)
    cal = calibrate(model, _ids(), "int4_asym", **kw)
    per_block = calls[:4]
    monkeypatch.setattr(A, "_gptq_block", lambda *a, **k: {})
    cal1 = calibrate(model, _ids(), "int4_asym", **kw)
    sizes = {n: m.weight.shape[0] for n, m in decoder_linears(model).items() if ".layers.0." in n}
    q, k, v, o, gate, up, down = (sizes[f"model.layers.0.{s}"] for s in (
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
        "mlp.up_proj", "mlp.down_proj"))
    assert per_block == [q + k + v, gate + up, o, down]
    for n, r in cal.layers.items():
        assert torch.equal(r.weight, cal1.layers[n].weight), n
        assert torch.equal(r.qtensor.codes, cal1.layers[n].qtensor.codes), n


def test_gptq_true_sequential_quantizes_each_run_on_the_inputs_the_quantized_runs_before_it_give():
    """true_sequential: q/k/v as without it; o, gate/up and down of block 0 each GPTQ-rounded on the
    inputs the model gives with block 0's earlier linears already at their calibrated weights
    (captured here by a plain forward pass)."""
    from sw.eval.capture import calib_batch
    from sw.eval.gptq import Hessian, gptq_quantize
    model = tiny_llama(0)
    ids = _ids()
    kw = dict(method="gptq", mode="sequential", group_size=32, seq_len=64, progress=False)
    base = calibrate(model, ids, "int4_asym", **kw)
    ts = calibrate(model, ids, "int4_asym", true_sequential=True, **kw)
    assert ts.settings["true_sequential"] is True and base.settings["true_sequential"] is False
    lin = decoder_linears(model)
    b0 = [f"model.layers.0.{s}" for s in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                          "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")]
    assert all(torch.equal(ts.layers[n].weight, base.layers[n].weight) for n in b0[:3])
    assert not torch.equal(ts.layers[b0[3]].weight, base.layers[b0[3]].weight)
    for k, earlier in ((3, 3), (4, 4), (5, 4), (6, 6)):
        name = b0[k]
        got = []
        hook = lin[name].register_forward_hook(lambda mod, a, o: got.append(a[0].reshape(-1, a[0].shape[-1])))
        with weights_restored(model), torch.no_grad():
            for n in b0[:earlier]:
                lin[n].weight.copy_(ts.layers[n].weight)
            model(input_ids=calib_batch(ids, 64), use_cache=False)
        hook.remove()
        hs = Hessian(got[0].shape[1])
        hs.add(got[0])
        w, _ = gptq_quantize(lin[name].weight.detach(), hs.value(), "int4_asym", 32, act_order=True)
        assert torch.equal(ts.layers[name].weight, w), name
    with pytest.raises(ValueError, match=r"^true_sequential=True needs mode='sequential', got mode='parallel'$"):
        calibrate(model, ids, "int4_asym", method="gptq", mode="parallel", true_sequential=True, seq_len=64,
                  progress=False)
    with pytest.raises(ValueError, match=r"^true_sequential=1 must be a bool$"):
        calibrate(model, ids, "int4_asym", true_sequential=1, seq_len=64, progress=False)


def test_recovered_fraction():
    assert recovered_fraction(30.0, 26.0, 18.0) == pytest.approx(1 / 3)
    assert recovered_fraction(20.0, 19.0, 20.0) is None


# ------------------------------------------------------------------------- section smoke
def test_section_smoke_on_tiny_context(tmp_path):
    ctx = tiny_context(tmp_path)
    snap = {n: m.weight.detach().clone() for n, m in decoder_linears(ctx.model).items()}
    sec = section(ctx, params=dict(formats=["int3"], modes=["sequential"], steps=3))
    assert sec.key == "adaquant" and sec.tables and sec.text
    methods = [r[1] for r in sec.tables[0].rows]
    assert methods == ["RTN", "bias correction", "AdaQuant sequential"]
    runs = sec.data["formats"]["int3"]
    rtn_ppl = ctx.ppl(QuantSpec(weight="int3", group_size=128))["ppl"]
    assert runs["RTN"]["ppl"] == rtn_ppl
    assert runs["AdaQuant sequential"]["mse_ratio"] < 1.0
    assert "int3" in sec.data["targets"]
    assert all(m.bias is None and torch.equal(m.weight, snap[n]) for n, m in decoder_linears(ctx.model).items())


def test_section_runs_every_format_of_the_preset(tmp_path):
    """Two formats in one section: the second must see the same plan as the first (a name
    reused inside the format loop once broke every format after the first)."""
    ctx = tiny_context(tmp_path)
    sec = section(ctx, params=dict(formats=["int4", "int3"], modes=["parallel"], steps=2))
    assert [r[:2] for r in sec.tables[0].rows] == [
        ["int4 g128", "RTN"], ["int4 g128", "bias correction"], ["int4 g128", "AdaQuant parallel"],
        ["int3 g128", "RTN"], ["int3 g128", "bias correction"], ["int3 g128", "AdaQuant parallel"]]
    assert set(sec.data["targets"]) == {"int4", "int3"}


# ------------------------------------------------------------------------- max_move
def test_max_move_bounds_the_perturbation_and_int_weights_stay_next_to_their_rtn_level():
    """|D| <= max_move after every step; with max_move <= 0.5 and the scale fixed, an int4 weight
    deploys on one of the two grid levels around w / s (AdaRound's constraint). Unbounded, the same
    run moves weights further (0.08 steps here, so a bound of 0.05 binds)."""
    w, x, y = _synthetic(seed=4)
    kw = dict(group_size=128, steps=40, batch_tokens=256, lr_w=2e-3, learn_scale=False, seed=0)
    q, _, mse_rtn, mse, kept = calibrate_linear(w, x, y, "int4", max_move=0.05, **kw)
    assert not kept and mse < mse_rtn
    d = float(q.delta.detach().abs().max())
    assert d == pytest.approx(0.05, abs=0, rel=1e-7)                  # the bound binds, and holds
    s = q.s0.unsqueeze(-1)
    y0 = q.w0 / s                                                     # RTN's real-valued level
    lv = q.deployed_weight().reshape(q.w0.shape) / s
    assert bool(((lv == torch.floor(y0)) | (lv == torch.ceil(y0)) | (lv.abs() == 7)).all())
    q2, _, _, _, kept2 = calibrate_linear(w, x, y, "int4", **kw)
    assert not kept2 and float(q2.delta.detach().abs().max()) > 0.075
    for bad in (0, -1.0, True, "0.5"):
        with pytest.raises(ValueError, match="max_move="):
            calibrate_linear(w, x, y, "int4", steps=1, max_move=bad)


# ------------------------------------------------------------------------- settings sweep
def test_sweep_chooses_on_the_validation_slice_only(tmp_path):
    from sw.eval import adaquant_sweep as sweep
    ctx = tiny_context(tmp_path)
    sec = sweep.section(ctx)
    rows = sec.data["rows"]
    assert len(rows) == len(sweep.PRESETS["smoke"]["grid"]) == 2
    best = sec.data["chosen"]
    assert best == min(range(2), key=lambda i: rows[i]["val_ppl"])
    # each row's figures are the model calibrated with that setting, measured on each slice
    g = rows[best]["setting"]
    cal = calibrate(ctx.model, ctx.calib_ids, "int4", mode="sequential", seq_len=64, tokens=g["calib_tokens"],
                    steps=g["steps"], batch_tokens=g["batch_tokens"], lr_w=g["lr_w"], lr_s=g["lr_s"],
                    skip_first=g["skip_first"], max_move=g["max_move"], seed=ctx.seed, progress=False)
    with calibrated(ctx.model, cal):
        assert ctx.ppl(None, model=ctx.model, split="val")["ppl"] == rows[best]["val_ppl"]
        assert ctx.ppl(None, model=ctx.model)["ppl"] == rows[best]["eval_ppl"]
    assert rows[0]["val_ppl"] != rows[0]["eval_ppl"]
    assert sec.data["rtn"]["val"] == ctx.ppl(QuantSpec(weight="int4", group_size=128), split="val")["ppl"]
    assert [r[7] for r in sec.tables[0].rows] == [i == best for i in range(2)]
    assert "Chosen: **#" in sec.text
    assert sweep.choose([{"val_ppl": 3.0}, {"val_ppl": 2.0}, {"val_ppl": 2.0}]) == 1    # first of a tie
    with pytest.raises(ValueError, match="grid rows \\[0\\]"):
        sweep.section(ctx, params=dict(grid=[{"steps": 1}]))


def test_adaquant_presets_use_a_setting_of_the_sweep_grid():
    """The quick/full AdaQuant settings are a row of the sweep's grid (the one chosen on the
    validation slice, docs/eval_adaquant_sweep.md)."""
    from sw.eval import adaquant_sweep as sweep
    from sw.eval.adaquant import PRESETS
    for name in ("quick", "full"):
        assert any(sweep.same_setting(PRESETS[name], r) for r in sweep.PRESETS[name]["grid"]), name
