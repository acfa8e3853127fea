"""The FP16 baselines as :class:`gen.designs.Design` records (area reports, sweeps).

* ``fp16xfp16_mac``: :class:`rtl.baselines.Fp16MacEngine`;
* ``fp16xint8_parallel``: :class:`rtl.baselines.Fp16Int8Engine` (ANT/OliVe style).

Each is priced per row by its ``pe`` component (:class:`rtl.baselines.Fp16MacRow` /
:class:`rtl.baselines.Fp16Int8Row`: the ``L`` lanes' multipliers, dequantizers, fp32 adders,
accumulators and the reduction muxes). ``fp16_mul``, ``fp32_adder`` and ``dequant`` are
parts of ``pe`` (``L`` of each), listed for the breakdown, not added twice. Neither baseline
has an activation front end (activations enter the multipliers as they are) nor a rescaler
(the FP16xINT8 scale is applied in each lane's dequantizer); the per-tile control and the
``R x 32`` result register are in ``top`` only, as for the bitmix designs.
"""
from __future__ import annotations

from sw.baselines import reduction_levels

from .config import EngineConfig, load
from .design import Design

__all__ = ["baseline_designs", "FP16_MAC_DESCRIPTION", "FP16_INT8_DESCRIPTION"]

_COMMON = (
    "Every cycle each lane multiplies one weight by one fp16 activation (taken as is from the act stream, "
    "no block alignment) with a full IEEE fp16 x fp16 multiplier whose product is exact in fp32 "
    "(11x11-bit significand multiplier, leading-zero normalisation for subnormal operands, inf/NaN/signed "
    "zero; no rounding is ever needed), and adds it to its own fp32 accumulator with a full IEEE binary32 "
    "adder (round to nearest even, subnormals kept, canonical NaN) in the same cycle: 1 MAC per lane per "
    "cycle, a combinational multiply->add->register path, no pipeline registers (like bitmix's own "
    "convert->add rescale path). Each lane accumulates inputs k = l, l+L, l+2L, ... from +0.0. After the "
    "tile's last weight beat the lane adders themselves reduce the {L} lane sums as a halving tree "
    "(n live sums, h = ceil(n/2): acc[l] += acc[l+h] for l < n-h), one level per cycle, {levels} cycles, "
    "with 2:1 muxes on the adder inputs and no extra adder; the last level writes the R x fp32 result "
    "register. Tile = K/L + {levels} + 1 cycles (ideal K/L). Same five streams, payload layouts and "
    "handshakes as the bitmix engine; the result equals sw.baselines.{golden} bit for bit."
)

FP16_MAC_DESCRIPTION = (
    "FP16 x FP16 MAC baseline, {R} rows x {L} lanes: weights are raw fp16 codes (16-bit slots on the wgt "
    "stream); fp16 weights carry no group scale, so the meta stream is a sink (always ready, beats "
    "discarded) and cmd.fmt/scale_fmt are ignored. " + _COMMON)

FP16_INT8_DESCRIPTION = (
    "FP16 x INT8 bit-parallel baseline (ANT/OliVe style: dequantize the weight, then multiply), {R} rows x "
    "{L} lanes: weights are symmetric two's complement int8 codes (8-bit slots) with one fp16 scale per "
    "group of {G} per row on the meta stream (sw.quantize(w, 'int8', scale_format='fp16')). Each lane first "
    "dequantizes its weight to fp16, w = fp16_RNE(int8 x scale) (8x11-bit multiplier, leading-zero "
    "normalisation, RNE with gradual underflow and overflow to inf, IEEE specials of the scale): "
    "dequantize-then-multiply in fp16 is the ANT/OliVe-style baseline the project asks for (an fp16 datapath "
    "fed by int8 storage); it rounds each weight once (relative 2^-11). Then, as in the FP16 MAC baseline: "
    + _COMMON[0].lower() + _COMMON[1:])


def baseline_designs(cfg: EngineConfig | None = None) -> list[Design]:
    """The FP16xFP16 MAC and FP16xINT8 bit-parallel baselines for ``cfg``'s R, L, G, max_groups."""
    from rtl.baselines import FP16_CODE_BITS, INT8_CODE_BITS, Fp16Int8Engine, Fp16Int8Row, Fp16MacEngine, Fp16MacRow
    from rtl.fp16_mul import Fp16Mul, Int8Fp16Dequant
    from rtl.fp32 import Fp32Adder

    cfg = cfg or load()
    R, L, G = cfg.rows, cfg.lanes, cfg.group_size
    levels = reduction_levels(L)
    fmt = dict(R=R, L=L, G=G, levels=levels)

    def params(kind: str, code_bits: int) -> dict:
        d = cfg.to_dict()
        d.update({"baseline": kind, "code_bits": code_bits, "act_format": "fp16", "accumulator": "fp32",
                  "reduction": "halving tree on the lane adders", "reduction_cycles": levels,
                  "tile_cycles": f"K/{L} + {levels} + 1"})
        return d

    fp16 = Design(
        name="fp16xfp16_mac",
        description=FP16_MAC_DESCRIPTION.format(golden="fp16_mac_gemv", **fmt),
        components={"pe": lambda: Fp16MacRow(L), "fp16_mul": lambda: Fp16Mul(), "fp32_adder": lambda: Fp32Adder()},
        per_row={"pe": 1.0},
        macs_per_cycle={"fp16": float(L)},
        top=lambda: Fp16MacEngine(cfg),
        params=params("fp16xfp16_mac", FP16_CODE_BITS),
    )
    int8 = Design(
        name="fp16xint8_parallel",
        description=FP16_INT8_DESCRIPTION.format(golden="fp16_int8_gemv", **fmt),
        components={"pe": lambda: Fp16Int8Row(L), "dequant": lambda: Int8Fp16Dequant(),
                    "fp16_mul": lambda: Fp16Mul(), "fp32_adder": lambda: Fp32Adder()},
        per_row={"pe": 1.0},
        macs_per_cycle={"int8": float(L)},
        top=lambda: Fp16Int8Engine(cfg),
        params=params("fp16xint8_parallel", INT8_CODE_BITS),
    )
    return [fp16, int8]
