"""GPTQ for every registry format: against a straightforward reference (the OBS form with an explicit
inverse-Hessian downdate), and below RTN's layer-output error on the tiny Llama."""
import pytest
import torch

import sw
from sw.eval.gptq import Hessian, gptq_quantize, group_quantize

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def reference(w, h, fmt, g, act_order, static, damp=0.01):
    """Column by column, no lazy batches, the inverse Hessian downdated after every column (float64)."""
    W, H = w.double().clone(), h.double().clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    qt = group_quantize(W.float(), fmt, g, None)
    g = qt.group_size
    n = W.shape[1]
    perm = torch.argsort(torch.diag(H), descending=True, stable=True) if act_order else torch.arange(n)
    W, H = W[:, perm], H[perm][:, perm]
    H += damp * torch.mean(torch.diag(H)) * torch.eye(n, dtype=torch.float64)
    Hi = torch.linalg.inv(H)
    Q = torch.zeros_like(W)
    c0 = 0
    for i in range(n):
        col = int(perm[i])
        if not static and col % g == 0:
            qt, c0 = group_quantize(W[:, i:i + g].float(), fmt, g, None), col
        q = qt.requantize(W[:, i:i + 1].float(), start=col if static else col - c0)[:, 0].double()
        Q[:, i] = q
        err = (W[:, i] - q) / Hi[i, i]
        W[:, i + 1:] -= err[:, None] * Hi[i, i + 1:][None, :]
        Hi = Hi - Hi[:, i:i + 1] @ Hi[i:i + 1, :] / Hi[i, i]
    return Q[:, torch.argsort(perm)].float()


@pytest.fixture(scope="module")
def layer():
    """The inputs and weight of the tiny Llama's first down projection (256 -> 128)."""
    from sw.eval.models import tiny_llama
    m = tiny_llama(0, hidden_size=128, intermediate_size=256)
    lin = m.model.layers[0].mlp.down_proj
    xs = []
    hook = lin.register_forward_hook(lambda mod, inp, out: xs.append(inp[0].detach()))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        m(input_ids=torch.randint(0, 256, (4, 64), generator=g))
    hook.remove()
    x = torch.cat(xs).reshape(-1, 256)
    hs = Hessian(256)
    hs.add(x[:128])
    hs.add(x[128:])
    return lin.weight.detach().clone(), x, hs.value()


CASES = [("int4", 64, True, True), ("int3", 64, True, True), ("int4_asym", 64, False, False),
         ("bitmod4", 64, False, False), ("bitmod3", 64, True, True), ("fp4_e2m1", 64, False, True),
         ("mxfp4", None, False, False), ("nvfp4", None, True, True), ("fp6_e3m2", None, True, True)]


@pytest.mark.parametrize("fmt,g,act_order,static", CASES)
def test_equals_the_straightforward_reference(layer, fmt, g, act_order, static):
    w, _, h = layer
    q, info = gptq_quantize(w, h, fmt, g, act_order=act_order, static_groups=static, block=64, dtype=torch.float64)
    assert torch.equal(q, reference(w, h, fmt, g, act_order, static))
    assert info["dead"] == 0 and info["loss"] > 0
    # the codes and metadata dequantize to the result (the deployable form)
    assert torch.equal(info["quantized"].dequantize()[:, :q.shape[1]], q)


@pytest.mark.parametrize("fmt,g,act_order,static", CASES)
def test_layer_output_error_below_rtn(layer, fmt, g, act_order, static):
    w, x, h = layer
    q, _ = gptq_quantize(w, h, fmt, g, act_order=act_order, static_groups=static)
    rtn = group_quantize(w, fmt, g, None).dequantize()
    e_gptq = float(((x @ (w - q).t()) ** 2).sum())
    e_rtn = float(((x @ (w - rtn).t()) ** 2).sum())
    assert e_gptq < 0.5 * e_rtn, (fmt, e_gptq / e_rtn)         # measured 0.32-0.43
    # the result is on the format's grid: requantizing it under its own RTN metadata changes nothing
    # (static groups: the same metadata as RTN's)
    if static:
        assert torch.equal(group_quantize(w, fmt, g, None).requantize(q), q)


@pytest.mark.parametrize("act_order,static", [(True, True), (False, False)])
def test_a_partial_last_group_is_zero_padded(layer, act_order, static):
    """200 inputs in groups of 64: the last group has 8 columns, padded with zeros as RTN's is."""
    w, x, _ = layer
    w, x = w[:, :200], x[:, :200]
    hs = Hessian(200)
    hs.add(x)
    q, info = gptq_quantize(w, hs.value(), "bitmod4", 64, act_order=act_order, static_groups=static,
                            dtype=torch.float64)
    assert torch.equal(q, reference(w, hs.value(), "bitmod4", 64, act_order, static))
    qt = info["quantized"]
    assert qt.codes.shape == (128, 256) and torch.equal(qt.dequantize()[:, :200], q)
    assert torch.count_nonzero(qt.dequantize()[:, 200:]) == 0


def test_dead_inputs_are_zeroed(layer):
    w, _, h = layer
    h = h.clone()
    h[5, :] = 0
    h[:, 5] = 0
    q, info = gptq_quantize(w, h, "int4", 64)
    assert info["dead"] == 1 and torch.count_nonzero(q[:, 5]) == 0


def test_errors_name_the_parameter(layer):
    w, _, h = layer
    with pytest.raises(ValueError, match=r"^act_order=True needs static_groups=True"):
        gptq_quantize(w, h, "int4", 64, act_order=True, static_groups=False)
    with pytest.raises(ValueError, match=r"^static_groups=False: nvfp4's fp32 tensor scale"):
        gptq_quantize(w, h, "nvfp4", act_order=False, static_groups=False)
    with pytest.raises(ValueError, match=r"^block=48 must be a multiple of the group size 64"):
        gptq_quantize(w, h, "int4", 64, act_order=False, static_groups=False, block=48)
    with pytest.raises(ValueError, match=r"^H must be \[256, 256\] for w of shape \(128, 256\), got \(128, 128\)$"):
        gptq_quantize(w, h[:128, :128], "int4", 64)
    with pytest.raises(ValueError, match=r"^damp=1\.5 must be a number in \[0, 1\)$"):
        gptq_quantize(w, h, "int4", 64, damp=1.5)
    with pytest.raises(ValueError, match="int5"):
        gptq_quantize(w, h, "int5", 64)
    with pytest.raises(ValueError, match=r"^the Hessian has no samples"):
        Hessian(8).value()
    with pytest.raises(ValueError, match=r"^x has 4 features, the Hessian 8$"):
        Hessian(8).add(torch.zeros(3, 4))


def test_section_on_the_tiny_context(tmp_path):
    from sw.eval import tiny_context
    from sw.eval.gptq_eval import section
    ctx = tiny_context(tmp_path)
    s = section(ctx)
    assert s.key == "gptq" and s.tables[0].columns[:5] == ["format", "method", "bits/weight", "PPL (mean)",
                                                           "PPL mean (min..max)"]
    assert [(r[0], r[1]) for r in s.tables[0].rows] == [
        ("int4_asym", "RTN"), ("int4_asym", "GPTQ act-order"), ("int4_asym", "GPTQ act-order + scale refit"),
        ("bitmod3", "RTN"), ("bitmod3", "GPTQ act-order"), ("bitmod3", "GPTQ act-order + scale refit"),
        ("bitmod3", "GPTQ in-loop groups")]
    tg = s.data["targets"]
    assert set(tg["gptq_below_rtn"]) == {"int4_asym", "bitmod3"} and tg["w4"]["format"] == "int4_asym"
    assert "GPTQ below RTN for every format" in s.text
    act = s.data["formats"]["int4_asym"]["GPTQ act-order"]        # the smoke preset's 2 calibration slices
    assert [x["slice"] for x in act["per_slice"]] == [0, 1]
    assert act["ppl"] == pytest.approx(sum(x["ppl"] for x in act["per_slice"]) / 2, rel=1e-12)
    assert act["per_slice"][0]["ppl"] != act["per_slice"][1]["ppl"]     # really another calibration text


def test_every_variant_runs_and_is_recorded_in_the_calibration_settings():
    from sw.eval.adaquant import calibrate
    from sw.eval.gptq_eval import VARIANTS
    from sw.eval.models import tiny_llama
    model = tiny_llama(0)
    ids = torch.randint(0, 256, (1, 128), generator=torch.Generator().manual_seed(0))
    for label, kw in VARIANTS.items():
        cal = calibrate(model, ids, "bitmod3", method="gptq", mode="sequential", group_size=32, seq_len=64,
                        progress=False, **kw)
        assert len(cal.layers) == 14, label
        want = {"act_order": kw["act_order"], "static_groups": kw["static_groups"],
                "refit": kw.get("gptq_refit", False), "true_sequential": kw.get("true_sequential", False)}
        assert {k: cal.settings[k] for k in want} == want, label


def test_targets_arithmetic():
    from sw.eval.gptq_eval import targets
    runs = {"int4": {"RTN": {"ppl": 30.0}, "GPTQ act-order": {"ppl": 27.0}},
            "int3_asym": {"RTN": {"ppl": 50.0}, "GPTQ act-order": {"ppl": 52.0}}}
    t = targets(runs, 25.0)
    assert t["gptq_below_rtn"] == {"int4": True, "int3_asym": False} and t["all_below"] is False
    assert t["w4"] == {"ppl": 27.0, "format": "int4", "method": "GPTQ act-order", "delta_pct": pytest.approx(8.0),
                       "target_pct": 12.0, "met": True}
    assert t["w3"]["method"] == "RTN" and t["w3"]["met"] is False          # 50 = +100 %


# ----------------------------------------------------------------------------- scale refit
@pytest.mark.parametrize("fmt", ["int4_asym", "int4", "bitmod4", "fp4_e2m1", "nvfp4", "int3_asym"])
def test_scale_refit_keeps_codes_and_lowers_the_output_error(fmt):
    from sw.eval.gptq import Hessian, gptq_quantize
    from sw.eval.scale_refit import refit_scales
    from sw.formats import get_scale_format
    g = torch.Generator().manual_seed(2)
    x = torch.randn(512, 96, generator=g)
    x[:, :3] *= 10
    w = torch.randn(40, 96, generator=g) * 0.05
    y = x @ w.t()
    hs = Hessian(96)
    hs.add(x)
    q, info = gptq_quantize(w, hs.value(), fmt, 32, act_order=True)
    qt2, r = refit_scales(info["quantized"], x, y)
    assert torch.equal(qt2.codes, info["quantized"].codes)
    sf = get_scale_format(qt2.scale_format)
    assert torch.equal(sf.round(qt2.scales.float()), qt2.scales.float())     # deployable scales
    err = lambda qq: float(((x @ qq.dequantize()[:, :96].t() - y) ** 2).sum())   # noqa: E731
    assert err(qt2) == pytest.approx(r["loss_after"], rel=1e-4) and err(info["quantized"]) == pytest.approx(
        r["loss_before"], rel=1e-4)
    assert r["rows_changed"] > 20 and err(qt2) < 0.95 * err(info["quantized"])


def test_scale_refit_is_the_least_squares_solution():
    """With fp32 scales the refit equals numpy's least squares over each row's group scales."""
    import numpy as np

    from sw.eval.scale_refit import refit_scales, unscaled_values
    g = torch.Generator().manual_seed(4)
    x = torch.randn(300, 64, generator=g)
    w = torch.randn(6, 64, generator=g)
    y = x @ w.t() + 0.1 * torch.randn(300, 6, generator=g)
    qt = sw.quantize(w, "int4", 16, scale_format="fp32")
    qt2, _ = refit_scales(qt, x, y, ridge=0.0)
    u = unscaled_values(qt).numpy()
    for r in range(6):
        A = np.stack([x.double().numpy()[:, gi * 16:(gi + 1) * 16] @ u[r, gi * 16:(gi + 1) * 16] for gi in range(4)], 1)
        sol = np.linalg.lstsq(A, y.double().numpy()[:, r], rcond=None)[0]
        assert np.allclose(qt2.scales[r].double().numpy(), sol, rtol=1e-6)


def test_scale_refit_errors():
    from sw.eval.scale_refit import refit_scales
    qt = sw.quantize(torch.randn(4, 32), "int4", 16)
    with pytest.raises(ValueError, match=r"x \[n, in\] and y \[n, 4\] must share n, with in <= 32; got \(10, 32\) "
                                         r"and \(9, 4\)"):
        refit_scales(qt, torch.randn(10, 32), torch.randn(9, 4))
    with pytest.raises(ValueError, match=r"^xtx must be \[32, 32\] \(x\^T x\), got \(16, 16\)$"):
        refit_scales(qt, torch.randn(10, 32), torch.randn(10, 4), xtx=torch.zeros(16, 16, dtype=torch.float64))


def test_scale_refit_with_the_hessians_xtx_is_the_same_fit():
    from sw.eval.scale_refit import refit_scales
    g = torch.Generator().manual_seed(2)
    x, w = torch.randn(300, 64, generator=g), torch.randn(8, 64, generator=g)
    qt = sw.quantize(w, "int4", 16)
    hs = Hessian(64)
    hs.add(x)
    a, ia = refit_scales(qt, x, x @ w.t())
    b, ib = refit_scales(qt, x, x @ w.t(), xtx=hs.xtx)
    assert torch.equal(a.scales, b.scales) and ia == ib


def test_hessian_float32_blocks_match_float64():
    """float32 products in blocks of Hessian.ROWS rows, summed in float64: within 1e-6 of the float64
    product; float64 inputs are exact."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5000, 48, generator=g)
    hs = Hessian(48)
    hs.add(x)
    want = 2.0 * x.double().t() @ x.double() / 5000
    assert hs.n == 5000 and torch.allclose(hs.value(), want, rtol=1e-6, atol=1e-6)
    h64 = Hessian(48)
    h64.add(x.double())
    assert torch.allclose(h64.value(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fmt", ["int4_asym", "bitmod4", "mxfp4", "nvfp4"])
def test_stacked_weights_give_each_weights_own_result(layer, fmt):
    """q/k/v (or gate/up) in one column loop: each weight's result and codes are its own call's."""
    from sw.eval.gptq import gptq_stacked
    w, _, h = layer
    g = torch.Generator().manual_seed(5)
    ws = [w, torch.randn(32, w.shape[1], generator=g) * 0.05, w[:16] * 0.5]
    got = gptq_stacked(ws, h, fmt, 64, act_order=True, static_groups=True)
    for wi, (q, info) in zip(ws, got):
        q1, info1 = gptq_quantize(wi, h, fmt, 64, act_order=True, static_groups=True)
        assert torch.equal(q, q1) and torch.equal(info["quantized"].codes, info1["quantized"].codes)
        assert torch.equal(info["quantized"].scales, info1["quantized"].scales)
        assert info["loss"] == pytest.approx(info1["loss"], rel=1e-6)
        assert torch.equal(info["quantized"].dequantize()[:, :q.shape[1]], q)


def test_stacked_errors():
    from sw.eval.gptq import gptq_stacked
    with pytest.raises(ValueError, match=r"^ws is empty: give at least one \[out, in\] weight$"):
        gptq_stacked([], torch.eye(4), "int4")
    with pytest.raises(ValueError, match=r"^ws\[1\] must be a 2-d \[out, 4\] tensor like ws\[0\]$"):
        gptq_stacked([torch.zeros(2, 4), torch.zeros(2, 5)], torch.eye(4), "int4")
