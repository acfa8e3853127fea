"""The designs that area reports and sweeps compare (each a :class:`gen.design.Design`).

Baselines (FP16 MAC, FP16xINT8, INT8xINT4 bit-parallel) live in ``gen/baselines.py`` and
register the same way; the INT4-only bit-serial PE is this generator with one format.
"""
from __future__ import annotations

import dataclasses

from sw import terms as T

from .baselines import baseline_designs
from .config import EngineConfig, load
from .design import Design


def engine_design(cfg: EngineConfig, name: str, description: str, pe: str = "bitserial") -> Design:
    from rtl.act_frontend import ActFrontEnd
    from rtl.decoder import TermDecoder
    from rtl.engine import Engine, sum_bits, zpc_bits
    from rtl.pe import BitSerialPE, ParallelPE
    from rtl.rescale import RescaleUnit
    from rtl.weight_port import WeightPort

    pe_cls = ParallelPE if pe == "parallel" else BitSerialPE
    comps = {
        "pe": lambda: pe_cls(cfg.formats, cfg.lanes, cfg.act_bits, cfg.code_bits, cfg.max_terms,
                                  cfg.shift_bits, cfg.psum_width),
        "decoder": lambda: TermDecoder(list(cfg.formats), cfg.max_terms, cfg.shift_bits, cfg.code_bits),
        "rescale_unit": lambda: RescaleUnit(cfg.scale_formats, cfg.rows, cfg.psum_width, sum_bits(cfg),
                                            zpc_bits(cfg), result_registers=False),
        "act_frontend": lambda: ActFrontEnd(lanes=cfg.lanes, group_size=cfg.group_size, act_bits=cfg.act_bits,
                                            mode=cfg.act_mode),
        "weight_port": lambda: WeightPort.for_config(cfg, word_bits=cfg.word_bits),
    }
    # "decoder" is part of "pe" (lanes of them): reported for the breakdown, not added twice
    # the rescale unit, the front end and the weight port (R row buffers, shared control) serve R rows
    per_row = {"pe": 1.0, "rescale_unit": 1.0 / cfg.rows, "act_frontend": 1.0 / cfg.rows,
               "weight_port": 1.0 / cfg.rows}
    if pe == "parallel":
        del comps["decoder"]
    macs = {f: cfg.lanes / (1 if pe == "parallel" else T.terms(f)) for f in cfg.formats}
    return Design(name=name, description=description, components=comps, per_row=per_row, macs_per_cycle=macs,
                  top=lambda: Engine(cfg, pe=pe), params={**cfg.to_dict(), "pe": pe})


def default_designs(cfg: EngineConfig | None = None) -> list[Design]:
    cfg = cfg or load()
    int4 = dataclasses.replace(cfg, formats=("int4",), scale_formats=("fp16",), name="int4_only")
    int8x4 = dataclasses.replace(cfg, formats=("int4",), scale_formats=("fp16",), act_mode="int8", act_bits=8,
                                 psum_bits=0, name="int8xint4")
    out = [
        engine_design(cfg, "bitmix", f"bit-serial mixed-datatype PE, {len(cfg.formats)} formats "
                      f"({', '.join(cfg.formats)}), {cfg.lanes} lanes"),
        engine_design(int4, "bitmix_int4_only", f"the same generator with INT4 only (fp16 scales), "
                      f"{cfg.lanes} lanes: prices the datatype flexibility"),
        engine_design(int8x4, "int8xint4_parallel", f"INT8 activations x INT4 weights, bit-parallel: {cfg.lanes} "
                      f"lanes of 8x4-bit multipliers (weights from a ROM, one per lane per cycle), the same adder "
                      f"tree, exact integer group sum, the same fp16 per-group rescale and fp32 accumulation as "
                      f"bitmix; the activation front end only sign-extends int8", pe="parallel"),
    ]
    # the strongest bit-parallel alternative: INT8 weights x the same block-FP activations
    int8xbfp = dataclasses.replace(cfg, formats=("int8",), scale_formats=("fp16",), psum_bits=0, name="int8xbfp")
    out.append(engine_design(
        int8xbfp, "int8xbfp_parallel",
        f"INT8 weights x block-floating-point FP16 activations, bit-parallel: what a competent designer builds "
        f"for group-quantized integer weights: the bitmix engine with its bit-serial PE swapped for {cfg.lanes} "
        f"lanes of exact {cfg.act_bits}-bit x int8 multipliers (int8 code -> signed value, one weight per lane per "
        f"cycle, so 4-bit weights sign-extended into the int8 slots run at the same rate), the same adder tree "
        f"and exact integer group sum, the same shared activation front end (FP16 aligned once per group of "
        f"{cfg.group_size} into {cfg.act_bits}-bit block-FP mantissas), the same shared pipelined rescale unit "
        f"(fp16 scales) and fp32 accumulation: every block bitmix amortizes, it amortizes too, so only the PE "
        f"differs; no format decoders{_rescale_wait(int8xbfp, 1)}", pe="parallel"))
    out.append(pe_only_design(cfg, PE4_LANES))
    return out + baseline_designs(cfg)


def _rescale_wait(cfg: EngineConfig, terms: int) -> str:
    """The description's note when a group (G/L steps x ``terms``) is shorter than the shared rescale
    unit's turn (:attr:`gen.config.EngineConfig.rescale_cycles`): the PEs wait; MACs/cycle stays the
    PE's own rate (the wait is priced in favour of the design)."""
    busy, turn = cfg.steps_per_group * terms, cfg.rescale_cycles
    if busy >= turn:
        return ""
    return (f". Its MACs/cycle is the PE's rate; at R = {cfg.rows} rows a group of {busy} cycles is shorter than "
            f"the shared rescale unit's {turn}, so an engine of this size would wait {turn - busy} cycle{'s' if turn - busy > 1 else ''} per group "
            f"({cfg.lanes * busy / turn:.2f} MACs/cycle): the comparison is in its favour")


#: Lanes of the PE priced alone against the BitMoD authors' 4-lane PE (an external anchor).
PE4_LANES = 4


def pe_only_design(cfg: EngineConfig, lanes: int) -> Design:
    """The bitmix PE alone at ``lanes`` lanes with the config's formats (no front end, no rescale
    unit, no top): what the external per-PE anchors are compared with."""
    pe_cfg = dataclasses.replace(cfg, lanes=lanes, name=f"pe{lanes}")
    full = engine_design(pe_cfg, f"bitmix_pe{lanes}",
                         f"the bitmix PE alone at {lanes} lanes with the full format set "
                         f"({len(cfg.formats)} formats): its term decoders, shifters, adder tree and group sum "
                         f"register; no activation front end, rescale unit or control. Priced against the "
                         f"BitMoD authors' {lanes}-lane PE")
    keep = {c: b for c, b in full.components.items() if c in ("pe", "decoder")}
    return dataclasses.replace(full, components=keep, per_row={"pe": 1.0}, top=None,
                               params={**full.params, "priced": "PE only"})
