"""The FP16 baselines as :class:`gen.designs.Design` records (area reports, sweeps).

* ``fp16xfp16_mac``: :class:`rtl.baselines.Fp16MacEngine`, priced per row by its ``pe``
  (:class:`rtl.baselines.Fp16MacRow`: the ``L`` lanes' fp16 multipliers, fp32 adders,
  accumulators and the reduction muxes); ``lane`` (one lane, ``Fp16MacRow(1)``), ``fp16_mul`` and
  ``fp32_adder`` are parts of ``pe``, listed for the breakdown, not added twice. On ECP5 the ``pe``
  is priced as ``L`` lanes (its LUTs, flip-flops and carries ``L`` times one lane's, its Fmax the
  lane's): placing and routing the whole row took 13 of a cold run's minutes. Measured both ways:
  14,168 LUT4 as 8 lanes against 12,621 for the whole row (its MACs/cycle/kLUT understated by 12%),
  Fmax 19.1 MHz against 16.1 (the lane has no reduction muxes: in its favour). Its GE, which the
  targets use, is the whole row's. No front end, no rescaler.
* ``fp16xint8_parallel``: :class:`rtl.baselines.Fp16Int8Engine` (the lean ``fma_int8``
  design), priced as the bitmix engine is: its ``pe`` (:class:`rtl.baselines.Fp16Int8Row`)
  once, and ``1/R`` of each block the ``R`` rows share: ``act_align``
  (:class:`rtl.baselines.Int8ActAlign`) and ``rescale_unit``
  (:class:`rtl.baselines.Int8GroupRescale`, i.e. :class:`rtl.rescale.RescaleUnit`).

Storage both sides need (the activation vector and the weight memory behind the streams) is
outside every design; storage only one side needs is inside it at flip-flop cost (bitmix's
weight port flops are in its row; neither baseline needs a buffer). The per-tile
control, the group scale registers and the result register are in ``top`` only, as for the
bitmix designs.
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
    "FP16 x INT8 baseline, the lean fma_int8 design (ANT/OliVe, BitMoD baselines: integer products, the group "
    "scale applied once per group), {R} rows x {L} lanes: weights are symmetric two's complement int8 codes "
    "(8-bit slots) with one fp16 scale per group of {G} per row on the meta stream (sw.quantize(w, 'int8', "
    "scale_format='fp16')). An int8 weight has no exponent, so a product's exponent is its activation's, the "
    "same for every row: one shared decoder (act_align, 1/R per row, no buffer) splits each fp16 activation "
    "into sign, 11-bit significand and e' = max(e, 1), keeps the group's running maximum exponent E (max over "
    "the steps so far) and gives every lane its shift E - e'. Per row and lane: an exact signed 8x12-bit "
    "multiply (int8 x +-sig11, 19-bit product, no rounding, no per-weight dequantization), an arithmetic right "
    "shift of the product with {F} guard bits to E (floor), an exact integer adder tree, and one block "
    "accumulator per row, P = (P >> (E_s - E_s-1)) + tree, {pb} bits (no product register: multiply -> shift "
    "-> tree -> accumulator in one cycle, like bitmix's decode -> shift -> tree -> group sum). After each group "
    "the rows' sums go through the bitmix engine's own shared pipelined rescale unit (rtl.rescale.RescaleUnit, "
    "fp16 scales, zero point tied off; 1/R per row): Q = P x sig_s, fp32 RNE conversion, fp32 RNE accumulation, "
    "one row per cycle while the rows compute the next group. No fp adder per lane. Storage: the act, wgt and "
    "meta streams (activation vector, weight memory) are outside the design as for bitmix; the per-group "
    "scale registers are in top only, as bitmix's; it needs no group buffer. Result = sw.baselines.{golden} "
    "bit for bit (error bound in its module docstring). Throughput {L} MACs/cycle per row (int8; int4 codes "
    "sign-extended into the int8 slots run at the same rate) whenever a group takes at least R + 2 cycles, as "
    "for bitmix's records{wait_note}. "
    "Tile = K/{L} + 1 cycles, results R + 6 cycles after the last step. Same five streams, payload layouts and "
    "handshakes as the bitmix engine."
)


def baseline_designs(cfg: EngineConfig | None = None) -> list[Design]:
    """The FP16xFP16 MAC and FP16xINT8 bit-parallel baselines for ``cfg``'s R, L, G, max_groups."""
    from rtl.baselines import (
        FP16_CODE_BITS,
        GUARD_BITS,
        INT8_CODE_BITS,
        Fp16Int8Engine,
        Fp16Int8Row,
        Fp16MacEngine,
        Fp16MacRow,
        Int8ActAlign,
        Int8GroupRescale,
    )
    from rtl.fp16_mul import Fp16Mul
    from rtl.fp32 import Fp32Adder
    from sw.baselines import int8_psum_bits

    cfg = cfg or load()
    R, L, G = cfg.rows, cfg.lanes, cfg.group_size
    levels = reduction_levels(L)
    fmt = dict(R=R, L=L, G=G, levels=levels)

    def params(kind: str, code_bits: int) -> dict:
        d = cfg.to_dict()
        d.pop("act_bits", None)
        d.update({"formats": ["fp16"], "scale_formats": "none",
                  "baseline": kind, "code_bits": code_bits, "act_format": "fp16", "accumulator": "fp32",
                  "reduction": "halving tree on the lane adders", "reduction_cycles": levels,
                  "tile_cycles": f"K/{L} + {levels} + 1"})
        return d

    S = G // L
    pb = int8_psum_bits(G, GUARD_BITS)
    wait_note = (f" (here, R = {R} rows and G/L = {S} steps per group, an engine built at R = {R} would wait "
                 f"{R + 2 - S} cycles per group for the shared unit: {L * S / (R + 2):.2f} MACs/cycle)"
                 if S < R + 2 else "")

    fp16 = Design(
        name="fp16xfp16_mac",
        description=FP16_MAC_DESCRIPTION.format(golden="fp16_mac_gemv", **fmt),
        components={"pe": lambda: Fp16MacRow(L), "lane": lambda: Fp16MacRow(1), "fp16_mul": lambda: Fp16Mul(),
                    "fp32_adder": lambda: Fp32Adder()},
        per_row={"pe": 1.0},
        # L identical lanes: ECP5 place and route of the whole row took 13 minutes, of one lane 34 s. L x one
        # lane is 14,168 LUT4 where the whole row placed at once was 12,621 (+12%); its Fmax, 19.1 MHz,
        # leaves out the reduction muxes (whole row: 16.1). The GE figures, which the targets use, are the row's
        fpga_proxy={"pe": ("lane", L)},
        macs_per_cycle={"fp16": float(L)},
        top=lambda: Fp16MacEngine(cfg),
        params=params("fp16xfp16_mac", FP16_CODE_BITS),
    )
    int8_params = cfg.to_dict()
    int8_params.pop("act_bits", None)
    int8_params.update({"formats": ["int8"], "scale_formats": ["fp16"],"baseline": "fp16xint8_parallel", "code_bits": INT8_CODE_BITS, "act_format": "fp16",
                        "product": "exact int8 x signed 11-bit significand (19 bits)",
                        "alignment": "running max exponent of the group, floor shift", "guard_bits": GUARD_BITS,
                        "psum_bits": pb, "rescale": "rtl.rescale.RescaleUnit shared by R rows (fp16 scales)",
                        "accumulator": "fp32 RNE", "tile_cycles": f"K/{L} + 1"})
    int8 = Design(
        name="fp16xint8_parallel",
        description=FP16_INT8_DESCRIPTION.format(golden="fp16_int8_gemv", F=GUARD_BITS, pb=pb,
                                                 wait_note=wait_note, **fmt),
        components={"pe": lambda: Fp16Int8Row(lanes=L, group_size=G),
                    "act_align": lambda: Int8ActAlign(lanes=L),
                    "rescale_unit": lambda: Int8GroupRescale(rows=R, psum_bits=pb)},
        per_row={"pe": 1.0, "act_align": 1.0 / R, "rescale_unit": 1.0 / R},
        macs_per_cycle={"int8": float(L)},
        top=lambda: Fp16Int8Engine(cfg),
        params=int8_params,
    )
    return [fp16, int8]
