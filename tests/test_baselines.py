"""FP16xFP16 MAC and FP16xINT8 (``fma_int8``-style) baselines: golden models and cocotb runs.

* ``sw.baselines`` golden models: hand-checked examples (reduction order; FP16xINT8 block
  alignment, floor of negative products, accumulator shift), independent scalar models
  (numpy float32 for the FP16 MAC; Python integers and ``fractions`` for FP16xINT8), the
  documented error bounds against the float64 references on 4096-wide layers, input checks;
* the RTL (``rtl.baselines``) under cocotb through the engine's own testbench
  (``verif/test_engine.py``) on Icarus and Verilator: random, corner and IEEE-special data,
  random stalls on every stream, back-pressure, a reset in the middle of a first GEMV; a
  no-stall run checks the documented cycle count; the default 4 x 8 config on Icarus;
* the interface is the engine's: same streams, same field order, only the code width differs.
"""
import dataclasses
import functools
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

import sw
from gen.config import load
from sw import baselines as SB


def _checked_only(component):
    """Built only to inspect its signature: silence Amaranth's UnusedElaboratable warning."""
    component._MustUse__silence = True
    return component


def small_cfg():
    return dataclasses.replace(load(), rows=2, lanes=4, group_size=32, max_groups=32, name="small")


# =========================================================================== golden models
def test_fp16_mac_reduction_order_hand_checked():
    # products 2^24, 1, 1, 1: the order of the fp32 additions decides the result
    w = torch.tensor([[4096.0, 1, 1, 1]], dtype=torch.float16)
    x = torch.tensor([4096.0, 1, 1, 1], dtype=torch.float16)
    assert SB.reference_fp16(w, x).item() == 16777219.0
    assert SB.fp16_mac_gemv(w, x, 1).item() == 16777216.0     # ((2^24 + 1) + 1) + 1: each tie to even
    assert SB.fp16_mac_gemv(w, x, 2).item() == 16777218.0     # lanes (2^24 + 1 = 2^24), (1 + 1); then 2^24 + 2
    assert SB.fp16_mac_gemv(w, x, 4).item() == 16777218.0     # tree (2^24 + 1), (1 + 1) -> 2^24 + 2
    w3 = w[:, :3].contiguous()
    x3 = x[:3].contiguous()
    assert SB.fp16_mac_gemv(w3, x3, 3).item() == 16777216.0   # n=3, h=2: (2^24 + 1), 1 -> 2^24 + 1 -> 2^24


def test_fp16_mac_specials_hand_checked():
    inf, nan = float("inf"), float("nan")
    w = torch.tensor([[inf, 1], [inf, -inf], [nan, 0], [-0.0, -0.0], [65504, 65504]], dtype=torch.float16)
    x = torch.tensor([1.0, 2.0], dtype=torch.float16)
    y = SB.fp16_mac_gemv(w, x, 2)
    bits = (y.view(torch.int32).to(torch.int64) & 0xFFFFFFFF).tolist()
    assert bits == [0x7F800000, SB.FP32_QNAN, SB.FP32_QNAN, 0x00000000, 0x483FE800]   # -0 * 1 + -0 * 2 from +0: +0
    assert y[4].item() == 65504.0 * 3                             # max fp16 weights


def _int8_q(codes, scale, group_size):
    w = torch.ones(1, len(codes))
    q = sw.quantize(w, "int8", group_size=group_size)
    q.codes = torch.tensor([[c & 0xFF for c in codes]], dtype=torch.uint8)
    q.scales = torch.full((1, len(codes) // group_size), scale, dtype=torch.float32)
    return q


def test_fp16_int8_hand_checked():
    # one group of 4 on 2 lanes, F = 8 guard bits. Step 0: x = 1.0 (e'=15, sig 1024), -2^-10
    # (e'=5, sig 1024); step 1: x = 4.0 (e'=17), 1.5 (e'=15, sig 1536).
    x = torch.tensor([1.0, -2.0 ** -10, 4.0, 1.5], dtype=torch.float16)
    q = _int8_q([3, 1, -1, 5], 0.5, 4)
    tr = SB.fp16_int8_gemv(q, x, 2, trace=True)
    # E_0 = 15: a = 3*1024*256 = 786432 and floor(-1024*256 / 2^10) = -256 -> T_0 = 786176
    # E_1 = 17: P = floor(786176 / 4) + floor(-1024*256 / 1) + floor(5*1536*256 / 4) = 196544 - 262144 + 491520
    assert tr.E.tolist() == [17] and tr.ea.tolist() == [17 - 25 - 8]
    assert tr.P.tolist() == [[425920]]
    assert tr.y.item() == 425920 * 2.0 ** -16 * 0.5                  # exact: 3 - 2^-10 - 4 + 7.5, times 0.5
    assert SB.reference_int8(q, x).item() == (3 - 2.0 ** -10 - 4 + 7.5) * 0.5
    # the floor of a negative product shifted out entirely is -1, not 0
    x = torch.tensor([2.0 ** 15, -(2.0 ** -24)], dtype=torch.float16)
    tr = SB.fp16_int8_gemv(_int8_q([0, 1], 1.0, 2), x, 2, guard_bits=0, trace=True)
    assert tr.P.tolist() == [[-1]] and tr.y.item() == -(2.0 ** (30 - 25))
    # the running maximum: the accumulator floors by 2^(E_s - E_{s-1}) when the exponent grows
    x = torch.tensor([-(2.0 ** -14), 2.0 ** 0], dtype=torch.float16)     # e' = 1, then 15
    tr = SB.fp16_int8_gemv(_int8_q([1, 1], 1.0, 2), x, 1, guard_bits=0, trace=True)
    assert tr.P.tolist() == [[-1 + 1024]]                                # floor(-1024 / 2^14) = -1
    assert SB.int8_psum_bits(128) == 34 and SB.int8_psum_bits(128, 0) == 26 and SB.int8_psum_bits(1) == 27


def _int8_scalar_model(codes, scales, x16: np.ndarray, G: int, lanes: int, F: int) -> np.ndarray:
    """Independent model of steps 1-6 with Python integers, exact fractions and numpy float32."""
    O, K = codes.shape
    out = np.zeros(O, dtype=np.float32)
    bits = x16.view(np.uint16).astype(int)
    for o in range(O):
        y = np.float32(0.0)
        for gi in range(K // G):
            E_prev, P = None, 0
            for st in range(G // lanes):
                ks = range(gi * G + st * lanes, gi * G + (st + 1) * lanes)
                effs = {k: max((int(bits[k]) >> 10) & 31, 1) for k in ks}
                E = max(effs.values()) if E_prev is None else max(E_prev, *effs.values())
                T = 0
                for k in ks:
                    b = int(bits[k])
                    sig = (b & 0x3FF) | ((((b >> 10) & 31) != 0) << 10)
                    p = int(codes[o, k]) * (-sig if b >> 15 else sig)
                    T += (p * 2 ** F) // 2 ** (E - effs[k])
                P = T if E_prev is None else P // 2 ** (E - E_prev) + T
                E_prev = E
            s = Fraction(float(scales[o, gi]))
            q = np.float32(float(Fraction(P) * 2 ** Fraction(E_prev - 25 - F) * s))   # exact, then one RNE
            y = np.float32(y + q)
        out[o] = y
    return out


def _scalar_model(w16: np.ndarray, x16: np.ndarray, lanes: int) -> np.ndarray:
    """Independent loop model with numpy float32 scalars (the docstring's steps 2-5)."""
    O, K = w16.shape
    out = np.zeros(O, dtype=np.float32)
    with np.errstate(all="ignore"):
        for o in range(O):
            acc = [np.float32(0.0)] * lanes
            for k in range(K):
                acc[k % lanes] = np.float32(acc[k % lanes] + np.float32(w16[o, k]) * np.float32(x16[k]))
            n = lanes
            while n > 1:
                h = (n + 1) // 2
                for l in range(n - h):
                    acc[l] = np.float32(acc[l] + acc[l + h])
                n = h
            out[o] = acc[0]
    return out


def _same_bits(a: torch.Tensor, b: np.ndarray) -> bool:
    b = torch.from_numpy(b)
    b = torch.where(torch.isnan(b), torch.tensor(SB.FP32_QNAN, dtype=torch.int32).view(torch.float32), b)
    return torch.equal(a.view(torch.int32), b.view(torch.int32))


@pytest.mark.parametrize("lanes", [1, 3, 4, 8])
def test_golden_equals_scalar_model(lanes):
    g = torch.Generator().manual_seed(lanes)
    K = 24 * lanes
    w = (torch.randn(6, K, generator=g) * torch.exp(3 * torch.randn(6, K, generator=g))).clamp(-6e4, 6e4).half()
    x = (torch.randn(K, generator=g) * torch.exp(3 * torch.randn(K, generator=g))).clamp(-6e4, 6e4).half()
    w[0, 1], w[1, 2], x[5] = float("inf"), float("nan"), -0.0
    assert _same_bits(SB.fp16_mac_gemv(w, x, lanes), _scalar_model(w.numpy(), x.numpy(), lanes))



@pytest.mark.parametrize("lanes,G,F", [(1, 4, 8), (3, 12, 0), (4, 32, 8), (8, 64, 16)])
def test_int8_golden_equals_scalar_model(lanes, G, F):
    g = torch.Generator().manual_seed(100 + lanes)
    K = 2 * G
    x = (torch.randn(K, generator=g) * torch.exp(4 * torch.randn(K, generator=g))).clamp(-6e4, 6e4).half()
    x[0], x[1] = -0.0, 2.0 ** -24
    q = sw.quantize(torch.randn(5, K, generator=g) * torch.exp(3 * torch.randn(5, 1, generator=g)), "int8",
                    group_size=G)
    q.codes[0, ::5] = 128                                           # -128
    codes = SB.int8_codes(q)
    ref = _int8_scalar_model(codes, q.scales, x.numpy(), G, lanes, F)
    assert _same_bits(SB.fp16_int8_gemv(q, x, lanes, guard_bits=F), ref)


def test_error_bounds_hold_on_4096_wide_layers():
    g = torch.Generator().manual_seed(11)
    O, K, L = 64, 4096, 8
    w = (torch.randn(O, K, generator=g) * torch.exp(torch.randn(O, 1, generator=g))).half()
    x = (torch.randn(K, generator=g) * torch.exp(2 * torch.randn(K, generator=g))).clamp(-6e4, 6e4).half()
    y, ref, bound = SB.fp16_mac_gemv(w, x, L), SB.reference_fp16(w, x), SB.error_bound_fp16(w, x, L)
    err = (y.double() - ref).abs()
    assert torch.all(err <= bound), (err / bound).max()
    absp = (w.double().abs() * x.double().abs()).sum(-1)
    assert torch.all(bound <= 1e-4 * absp)                       # the bound is not vacuous
    assert (err / bound).max() < 0.5
    q = sw.quantize(torch.randn(O, K, generator=g) * torch.exp(torch.randn(O, 1, generator=g)), "int8",
                    group_size=128)
    abs_qx = (SB.int8_codes(q).double() * q.scales.double().repeat_interleave(128, 1)).abs() @ x.double().abs()
    for F in (8, 0):
        y, ref = SB.fp16_int8_gemv(q, x, L, guard_bits=F), SB.reference_int8(q, x)
        bound = SB.error_bound_int8(q, x, L, guard_bits=F)
        err = (y.double() - ref).abs()
        assert torch.all(err <= bound), (F, (err / bound).max())
        assert err.max() > 0 and (err / bound).max() < 0.5
        # not vacuous: with the default 8 guard bits about fp32 accuracy
        assert torch.all(bound <= (2.0 ** -14 if F == 8 else 2.0 ** -6) * abs_qx), (F, (bound / abs_qx).max())


@pytest.mark.parametrize("lanes", [3, 4, 8, 16])
def test_reduction_order_is_observable(lanes):
    """The corners case has a row where a sequential lane reduction gives other bits, so the
    cocotb runs check the documented order; random 1024-wide layers differ too."""
    from verif.baseline_vectors import fp16_operands
    from verif.baseline_vectors import sequential_reduce as _sequential_reduce

    cfg = dataclasses.replace(load(), rows=2, lanes=lanes, group_size=8 * lanes, name="order")
    w, x = fp16_operands(cfg, 5, 16 * lanes, seed=1, kind="corners")
    p = w.float() * x.float()
    assert SB.lane_reduce(p, lanes)[3].item() != _sequential_reduce(p, lanes)[3].item()
    g = torch.Generator().manual_seed(5)
    w = torch.randn(64, 96 * lanes, generator=g).half()
    x = torch.randn(96 * lanes, generator=g).half()
    p = w.float() * x.float()
    assert not torch.equal(SB.lane_reduce(p, lanes), _sequential_reduce(p, lanes))


def test_golden_input_checks():
    x = torch.ones(8, dtype=torch.float16)
    with pytest.raises(TypeError, match="float16"):
        SB.fp16_mac_gemv(torch.ones(2, 8), x, 4)
    with pytest.raises(ValueError, match="multiple of lanes"):
        SB.fp16_mac_gemv(torch.ones(2, 8, dtype=torch.float16), x, 3)
    with pytest.raises(ValueError, match="int8"):
        SB.fp16_int8_gemv(sw.quantize(torch.randn(2, 8), "int4", group_size=4), x, 4)
    with pytest.raises(ValueError, match="fp16 group scales"):
        SB.fp16_int8_gemv(sw.quantize(torch.randn(2, 8), "int8", group_size=4, scale_format="bf16"), x, 4)
    q = sw.quantize(torch.randn(2, 8), "int8", group_size=4)
    with pytest.raises(ValueError, match=r"^guard_bits=17 must be an int in 0\.\.16$"):
        SB.fp16_int8_gemv(q, x, 4, guard_bits=17)
    with pytest.raises(ValueError, match="^K=4 is not a multiple of lanes=3$"):
        SB.fp16_int8_gemv(q, x, 3)
    with pytest.raises(ValueError, match="^x holds inf/NaN"):
        SB.fp16_int8_gemv(q, torch.full((8,), float("inf"), dtype=torch.float16), 4)


# =========================================================================== interface
def test_interface_is_the_engines():
    from amaranth.hdl import Shape

    from rtl.baselines import Fp16Int8Engine, Fp16MacEngine, baseline_meta_layout
    from rtl.engine import Engine, meta_layout

    cfg = load()
    R, L = cfg.rows, cfg.lanes
    ref = _checked_only(Engine(cfg)).signature.members
    widths = {}
    for E, B in ((Fp16MacEngine, 16), (Fp16Int8Engine, 8)):
        mem = _checked_only(E(cfg)).signature.members
        assert list(mem) == list(ref)
        for name in ("cmd", "act", "res"):
            assert mem[name] == ref[name], name
        assert Shape.cast(mem["wgt"].signature.members["payload"].shape).width == R * L * B
        meta = mem["meta"].signature.members["payload"].shape
        assert meta.length == R                                                  # same names, order, offsets
        assert [(n, f.offset) for n, f in meta.elem_shape] == [(n, f.offset) for n, f in meta_layout(cfg)]
        assert [(n, f.width) for n, f in baseline_meta_layout(B)] == [("scale", 16), ("sel", 2), ("zp", B)]
        widths[E.__name__] = {n: Shape.cast(mem[n].signature.members["payload"].shape).width
                              for n in ("cmd", "act", "wgt", "meta", "res")}
    assert widths == {"Fp16MacEngine": {"cmd": 13, "act": 133, "wgt": 512, "meta": 136, "res": 128},
                      "Fp16Int8Engine": {"cmd": 13, "act": 133, "wgt": 256, "meta": 104, "res": 128}}


def test_designs_registry():
    from gen.baselines import baseline_designs
    from gen.designs import default_designs

    cfg = load()
    ds = baseline_designs(cfg)
    assert [d.name for d in ds] == ["fp16xfp16_mac", "fp16xint8_parallel"]
    assert ds[0].macs_per_cycle == {"fp16": 8.0} and ds[1].macs_per_cycle == {"int8": 8.0}
    assert ds[0].per_row == {"pe": 1.0}
    # the FP16 MAC row is placed and routed as L copies of one lane
    assert ds[0].fpga_proxy == {"pe": ("lane", cfg.lanes)} and ds[1].fpga_proxy == {}
    assert _checked_only(ds[0].components["lane"]()).lanes == 1
    assert ds[1].per_row == {"pe": 1.0, "act_align": 1 / cfg.rows, "rescale_unit": 1 / cfg.rows}
    for d in ds:
        assert set(d.per_row) <= set(d.components)
        assert _checked_only(d.components["pe"]()).lanes == cfg.lanes
        assert _checked_only(d.top()).cfg is cfg
    assert "halving tree" in ds[0].description and "3 cycles" in ds[0].description
    assert "RescaleUnit" in ds[1].description and "34 bits" in ds[1].description
    assert _checked_only(ds[1].components["rescale_unit"]()).psum_bits == 34
    assert {"fp16xfp16_mac", "fp16xint8_parallel"} <= {d.name for d in default_designs(cfg)}


def test_int8_constructor_checks():
    from rtl.baselines import Fp16Int8Engine, Fp16Int8Row, Int8ActAlign, Int8GroupRescale

    with pytest.raises(ValueError, match=r"^Fp16Int8Row: lanes=0 must be a positive integer$"):
        Fp16Int8Row(lanes=0, group_size=8)
    with pytest.raises(ValueError, match=r"^Fp16Int8Row: group_size=12 is not a multiple of lanes=8$"):
        Fp16Int8Row(lanes=8, group_size=12)
    with pytest.raises(ValueError, match=r"^Fp16Int8Row: guard_bits=-1 must be an int in 0\.\.16$"):
        Fp16Int8Row(lanes=8, group_size=16, guard_bits=-1)
    with pytest.raises(TypeError):
        Fp16Int8Row(8, 16)                                          # keyword-only
    with pytest.raises(ValueError, match=r"^Int8ActAlign: lanes=True must be a positive integer$"):
        Int8ActAlign(lanes=True)
    with pytest.raises(ValueError, match=r"^Int8GroupRescale: psum_bits=43 must be an int in 2\.\.42 "):
        Int8GroupRescale(rows=4, psum_bits=43)
    with pytest.raises(ValueError, match=r"^Int8GroupRescale: rows=0 must be a positive integer$"):
        Int8GroupRescale(rows=0, psum_bits=34)
    cfg = dataclasses.replace(load(), group_size=4096, max_groups=4)
    with pytest.raises(ValueError, match=r"^Fp16Int8Engine: group_size=4096 with guard_bits=16 needs a 47-bit "
                                         r"group sum; the rescale unit takes at most 42$"):
        Fp16Int8Engine(cfg, guard_bits=16)
    with pytest.raises(ValueError, match=r"^Fp16Int8Engine: guard_bits='8' must be an int in 0\.\.16$"):
        Fp16Int8Engine(load(), guard_bits="8")
    assert _checked_only(Fp16Int8Engine(load(), guard_bits=0)).psum_bits == 26


# =========================================================================== cocotb
@functools.lru_cache(maxsize=None)
def _verilog(kind: str, cfg, sim: str) -> str:
    from gen.elaborate import to_verilog
    from rtl.baselines import Fp16Int8Engine, Fp16MacEngine

    top = {"fp16": Fp16MacEngine, "int8": Fp16Int8Engine}[kind](cfg)
    return to_verilog(top, "bitmix_engine")


def _cases(kind, cfg, K, O, seed, specials=True):
    from verif.baseline_vectors import fp16_case, int8_case

    if kind == "fp16":
        out = [fp16_case(cfg, O, K, seed, "random"), fp16_case(cfg, O, K // 2, seed + 1, "corners")]
        if specials:
            out.append(fp16_case(cfg, O, cfg.group_size * max(2, -(-16 // cfg.group_size)), seed + 2, "specials"))
        return out
    return [int8_case(cfg, O, K, seed, "random"), int8_case(cfg, O, K // 2, seed + 1, "corners")]


@pytest.mark.parametrize("kind", ["fp16", "int8"])
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_baseline_with_stalls_and_reset(kind, sim, sim_build_dir):
    from verif.sim import run_engine

    cfg = small_cfg()
    cases = _cases(kind, cfg, 512, 2 * cfg.rows + 1, seed=10)
    report = run_engine(cfg, cases, sim, sim_build_dir, p_valid=0.7, p_ready=0.6, reset_case=True,
                        verilog_text=_verilog(kind, cfg, sim))
    assert [r["mismatches"] for r in report] == [0] * len(cases)


@pytest.mark.parametrize("kind", ["fp16", "int8"])
def test_baseline_cycle_count_without_stalls(kind, sim_build_dir):
    from verif.baseline_vectors import fp16_case, int8_case
    from verif.sim import run_engine

    cfg = small_cfg()
    K, O = 256, 3 * cfg.rows
    c = (fp16_case if kind == "fp16" else int8_case)(cfg, O, K, seed=20)
    report = run_engine(cfg, [c], "icarus", sim_build_dir, verilog_text=_verilog(kind, cfg, "icarus"))
    tiles = math.ceil(O / cfg.rows)
    assert report[0]["mismatches"] == 0
    # FP16 MAC: per tile K/L MAC cycles + ceil(log2 L) reduction cycles + 1 command cycle;
    # FP16xINT8: per tile K/L + 1, then R + 6 for the last group's rescale; +1: the testbench
    # counts from the cycle the first cmd beat moves to the one the last result moves, inclusive
    if kind == "fp16":
        assert report[0]["cycles"] == tiles * SB.tile_cycles(K, cfg.lanes) + 1, report
    else:
        assert report[0]["cycles"] == SB.int8_gemv_cycles(tiles, K, cfg.lanes, cfg.rows) + 1, report


@pytest.mark.parametrize("kind", ["fp16", "int8"])
def test_baseline_default_config(kind, sim_build_dir):
    """The default 4 rows x 8 lanes, K = 1024, more outputs than rows (Icarus)."""
    from verif.sim import run_engine

    cfg = load()
    cases = _cases(kind, cfg, 1024, 2 * cfg.rows + 1, seed=30, specials=False)
    report = run_engine(cfg, cases, "icarus", sim_build_dir, p_valid=0.8, p_ready=0.7, reset_case=True,
                        verilog_text=_verilog(kind, cfg, "icarus"))
    assert [r["mismatches"] for r in report] == [0] * len(cases)


@pytest.mark.parametrize("kind,rows,lanes,group_size", [
    ("fp16", 1, 1, 4),      # one lane: no reduction level, the last MAC step writes the result
    ("int8", 3, 3, 6),      # three lanes: a non-power-of-two tree (n=3 -> 2 -> 1)
    ("int8", 2, 4, 4),      # one step per group: a meta beat with every weight beat
    ("int8", 1, 1, 4),      # one row (the rescale unit drains between batches), one lane
    ("fp16", 2, 2, 2),
])
def test_baseline_odd_shapes(kind, rows, lanes, group_size, sim_build_dir):
    from verif.sim import run_engine

    cfg = dataclasses.replace(load(), rows=rows, lanes=lanes, group_size=group_size, max_groups=16, name="odd")
    cases = _cases(kind, cfg, 16 * group_size, 2 * rows + 1, seed=40)
    report = run_engine(cfg, cases, "icarus", sim_build_dir, p_valid=0.7, p_ready=0.5, reset_case=True,
                        verilog_text=_verilog(kind, cfg, "icarus"))
    assert [r["mismatches"] for r in report] == [0] * len(cases)


# =========================================================================== INT8 x block-FP, bit-parallel
def _int8xbfp(cfg):
    from gen.designs import default_designs
    return next(d for d in default_designs(cfg) if d.name == "int8xbfp_parallel")


def test_int8xbfp_design():
    """The bit-parallel INT8 x block-FP design: the engine with a parallel PE, int8 weights, the
    config's FP16 activation front end (act_bits) and fp16 scales; only the PE differs from bitmix."""
    cfg = dataclasses.replace(load(), rows=16, act_bits=14)
    d = _int8xbfp(cfg)
    top = _checked_only(d.top())
    assert top.pe_kind == "parallel"
    assert (top.cfg.formats, top.cfg.scale_formats, top.cfg.act_mode, top.cfg.act_bits) == (("int8",), ("fp16",),
                                                                                          "fp16", 14)
    assert (top.cfg.rows, top.cfg.lanes, top.cfg.group_size) == (16, 8, 128)
    assert d.macs_per_cycle == {"int8": 8.0}
    assert d.per_row == {"pe": 1.0, "rescale_unit": 1 / 16, "act_frontend": 1 / 16, "weight_port": 1 / 16}
    assert type(_checked_only(d.components["pe"]())).__name__ == "ParallelPE"
    assert "decoder" not in d.components
    assert "an engine of this size would wait 1 cycle per group (7.53 MACs/cycle)" in d.description
    assert "wait" not in _int8xbfp(load()).description          # R = 4: a group (16 cycles) outlasts the turn (6)


def test_pe4_design():
    from gen.designs import PE4_LANES, default_designs

    cfg = load()
    d = next(d for d in default_designs(cfg) if d.name == "bitmix_pe4")
    assert PE4_LANES == 4
    assert d.per_row == {"pe": 1.0} and set(d.components) == {"pe", "decoder"} and d.top is None
    pe = _checked_only(d.components["pe"]())
    assert type(pe).__name__ == "BitSerialPE" and pe.lanes == 4
    assert d.params["formats"] == list(cfg.formats) and d.params["lanes"] == 4
    assert d.macs_per_cycle["int4"] == 2.0 and d.macs_per_cycle["int8"] == 1.0


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_int8xbfp_bit_exact_with_stalls_and_reset(sim, sim_build_dir):
    """int8xbfp_parallel's own top (default config: R = 4, L = 8, G = 128) against sw.datapath.gemv,
    random and corner data, random stalls on every stream, a reset in mid-stream."""
    from gen.elaborate import to_verilog
    from verif.engine_vectors import case
    from verif.sim import run_engine

    top = _int8xbfp(load()).top()
    cfg = top.cfg
    cases = [case(cfg, "int8", "fp16", 2 * cfg.rows + 1, 1024, seed=80, kind="random"),
             case(cfg, "int8", "fp16", 2 * cfg.rows + 1, 512, seed=81, kind="corners")]
    report = run_engine(cfg, cases, sim, sim_build_dir, p_valid=0.7, p_ready=0.6, reset_case=True,
                        verilog_text=to_verilog(top, "bitmix_engine"))
    assert [r["mismatches"] for r in report] == [0, 0]
