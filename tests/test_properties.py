"""Hypothesis properties of encode and quantize over every element format.

The settings are deterministic (``derandomize``) and keep no example database, so a failure
reproduces on every run; Hypothesis' own cache goes to the temp directory, not the checkout.
"""
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.extra import numpy as hnp

import sw
from sw import formats as F

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "bitmix-hypothesis")
SETTINGS = dict(deadline=None, database=None, derandomize=True)

ALL = F.names()
SYMMETRIC = [n for n in ALL if F.get(n).min == -F.get(n).max]          # ints, minifloats, flint4, ER variants
ASYM_INT = [n for n in ALL if isinstance(F.get(n), F.AsymmetricInt)]
SATURATING = [n for n in ALL if n not in SYMMETRIC and n not in ASYM_INT]  # the EA variants


def test_format_partition():
    assert SATURATING == ["fp4_ea_pos", "fp4_ea_neg", "fp3_ea_pos", "fp3_ea_neg"]
    assert ASYM_INT == ["int3_asym", "int4_asym"]
    assert {"int4", "fp4_e2m1", "flint4", "fp4_er_pos", "fp3_er_neg", "fp8_e5m2"} <= set(SYMMETRIC)


def magnitudes():
    # zero or a normal float32 magnitude in [2^-66, 2^13]: keeps the fp32 scale amax/qmax a normal number
    return st.one_of(st.just(0.0), st.floats(2.0 ** -66, 8192.0, width=32), st.floats(0.5, 2.0, width=32))


@st.composite
def weights(draw, max_rows=3):
    g = draw(st.sampled_from([4, 8, 16]))
    rows = draw(st.integers(1, max_rows))
    n_groups = draw(st.integers(1, 3))
    shape = (rows, g * n_groups)
    mags = draw(hnp.arrays(np.float32, shape, elements=magnitudes()))
    signs = draw(hnp.arrays(np.bool_, shape))
    # per-group dynamic range: scale whole rows by a power of two
    shift = draw(st.integers(-10, 10))
    x = np.where(signs, -mags, mags).astype(np.float32) * np.float32(2.0 ** shift)
    return torch.from_numpy(np.ascontiguousarray(x)), g


def per_element(meta, g):
    return meta.repeat_interleave(g, dim=-1)


def grid_gaps(f):
    v = f.values.double()
    return v[1:] - v[:-1]


# ----------------------------------------------------------------------------- error bounds
@pytest.mark.parametrize("name", SYMMETRIC)
@settings(max_examples=25, **SETTINGS)
@given(data=weights())
def test_error_within_half_the_largest_gap(name, data):
    x, g = data
    f = F.get(name)
    q = sw.quantize(x, name, g, scale_format="fp32")
    s = per_element(q.scales.double(), g)
    err = (x.double() - q.dequantize().double()).abs()
    # half the largest gap, plus float32 rounding of x / s and of v * s
    bound = s * float(grid_gaps(f).max()) / 2 + s * f.qmax * 2.0 ** -22 + x.double().abs() * 2.0 ** -22
    assert bool((err <= bound).all()), float((err - bound).max())


@pytest.mark.parametrize("name", ASYM_INT)
@settings(max_examples=40, **SETTINGS)
@given(data=weights())
def test_asym_error_within_half_a_step(name, data):
    x, g = data
    q = sw.quantize(x, name, g, scale_format="fp32")
    s = per_element(q.scales.double(), g)
    err = (x.double() - q.dequantize().double()).abs()
    top = (1 << F.get(name).bits) - 1
    bound = s / 2 + s * top * 2.0 ** -21 + x.double().abs() * 2.0 ** -22
    assert bool((err <= bound).all()), float((err - bound).max())
    # zero is exact
    assert bool((q.dequantize()[x == 0] == 0).all())


@pytest.mark.parametrize("name", SYMMETRIC)
@settings(max_examples=25, **SETTINGS)
@given(data=weights())
def test_group_max_reproduced_within_half_the_top_gap(name, data):
    x, g = data
    f = F.get(name)
    q = sw.quantize(x, name, g, scale_format="fp32")
    xg = x.reshape(x.shape[0], -1, g).double()
    dq = q.dequantize().reshape(x.shape[0], -1, g).double()
    i = xg.abs().argmax(-1, keepdim=True)
    s = q.scales.double()
    top_gap = float(grid_gaps(f)[-1])
    err = (xg.gather(-1, i) - dq.gather(-1, i)).abs().squeeze(-1)
    assert bool((err <= s * top_gap / 2 + s * f.qmax * 2.0 ** -22).all())


@pytest.mark.parametrize("name", ALL)
@settings(max_examples=15, **SETTINGS)
@given(data=weights())
def test_dequantize_lies_on_the_scaled_grid(name, data):
    x, g = data
    f = F.get(name)
    q = sw.quantize(x, name, g, scale_format="fp32")
    vals = q.element_values()
    assert bool(torch.isin(vals, f.values).all())
    if q.zero_points is not None:
        vals = vals - per_element(q.zero_points.float(), g)
    assert torch.equal(q.dequantize(), vals * per_element(q.scales, g))
    # the scale is amax / qmax in float32 (affine: range / (2^b - 1))
    xg = x.reshape(x.shape[0], -1, g)
    if q.zero_points is None:
        assert torch.equal(q.scales, xg.abs().amax(-1) / f.qmax)
    else:
        span = xg.amax(-1).clamp(min=0) - xg.amin(-1).clamp(max=0)
        assert torch.equal(q.scales, span / float((1 << f.bits) - 1))


# ----------------------------------------------------------------------------- encode
@st.composite
def encode_inputs(draw):
    name = draw(st.sampled_from(ALL + ["e8m0", "fp5_e3m1"]))
    f = F.get(name)
    q = f.qmax
    mids = f.midpoints.tolist()
    elems = st.one_of(st.floats(-1.5 * q, 1.5 * q, width=32), st.sampled_from(mids),
                      st.sampled_from([math.inf, -math.inf, 0.0, -0.0]),
                      st.floats(width=32, allow_nan=False))
    xs = draw(st.lists(elems, min_size=2, max_size=60))
    return name, xs


@settings(max_examples=150, **SETTINGS)
@given(data=encode_inputs(), rounding=st.sampled_from(F.ROUNDINGS))
def test_encode_is_monotone(data, rounding):
    name, xs = data
    f = F.get(name)
    x = torch.tensor(sorted(xs), dtype=torch.float32)
    v = f.grid_values(x, rounding)
    assert bool((v[1:] >= v[:-1]).all())
    # and it picks a nearest grid value
    finite = torch.isfinite(x)
    grid = f.values.double()
    d = (x[finite].double().unsqueeze(-1) - grid).abs().min(-1).values
    assert torch.equal((x[finite].double() - v[finite].double()).abs(), d)
    assert torch.equal(f.decode(f.encode(x, rounding)), v)


# ----------------------------------------------------------------------------- quantize
@pytest.mark.parametrize("name", ["int4", "int4_asym", "fp4_e2m1", "fp6_e3m2", "flint4", "fp3_ea_neg",
                                  "bitmod4", "bitmod3"])
@settings(max_examples=15, **SETTINGS)
@given(data=weights(), sf=st.sampled_from(["fp16", "bf16", "e4m3", "e8m0", "fp32"]),
       rounding=st.sampled_from(F.ROUNDINGS))
def test_quantize_is_deterministic(name, data, sf, rounding):
    x, g = data
    x = x.clamp(-100, 100)  # keep E4M3 scales in range
    a = sw.quantize(x, name, g, scale_format=sf, rounding=rounding)
    b = sw.quantize(x.clone(), name, g, scale_format=sf, rounding=rounding)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.scales, b.scales)
    for m in ("selectors", "zero_points"):
        ma, mb = getattr(a, m), getattr(b, m)
        assert (ma is None and mb is None) or torch.equal(ma, mb)
    assert torch.equal(a.dequantize(), b.dequantize())


@pytest.mark.parametrize("fmt, family", [("bitmod4", "fp4"), ("bitmod3", "fp3")])
@settings(max_examples=20, **SETTINGS)
@given(data=weights(max_rows=4), sf=st.sampled_from(["fp16", "fp32", "bf16"]),
       rounding=st.sampled_from(["nearest_even", "nearest_away", "nearest_down"]))
def test_bitmod_error_is_the_minimum_over_variants(fmt, family, data, sf, rounding):
    x, g = data
    x = x.clamp(-1e4, 1e4)  # keep fp16 scales in range
    q = sw.quantize(x, fmt, g, scale_format=sf, rounding=rounding)

    def group_sse(qt):
        d = (x.double() - qt.dequantize().double()).square()
        return d.reshape(x.shape[0], -1, g).sum(-1)

    errs = torch.stack([group_sse(sw.quantize(x, v.name, g, scale_format=sf, rounding=rounding))
                        for v in F.bitmod_variants(family)])
    best = errs.min(0).values
    mine = group_sse(q)
    # the choice is made on float32 sums: allow their rounding
    assert bool((mine <= best * (1 + 2.0 ** -18) + 1e-300).all())
    # and the winner is reproduced exactly: same error as the selected single variant
    assert torch.equal(mine, errs.gather(0, q.selectors.long().unsqueeze(0)).squeeze(0))
