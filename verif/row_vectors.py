"""Vectors for the PE and rescale testbenches: random and corner-case groups, from ``sw``."""
from __future__ import annotations

import random

import torch

from sw import terms as T
from sw.datapath import canonical_nan, scale_fields


def pe_groups(formats, lanes: int, steps: int, act_bits: int, code_bits: int, seed: int = 0) -> list[dict]:
    """Groups of ``steps`` beats for a BitSerialPE, with the expected partial sum."""
    rng = random.Random(seed)
    amin, amax = -(1 << (act_bits - 1)), (1 << (act_bits - 1)) - 1
    out = []
    for fi, fmt in enumerate(formats):
        bits = T.code_bits(fmt)
        nsel = len(T.variants(fmt))
        table = T.int_value_table(fmt)
        worst_code = int(table[0].abs().argmax())
        kinds = ["random", "zero", "max_pos", "max_neg", "special", "small"]
        for kind in kinds:
            sel = rng.randrange(nsel)
            codes, mants = [], []
            for _ in range(steps):
                if kind == "random":
                    c = [rng.randrange(1 << bits) for _ in range(lanes)]
                    a = [rng.randint(amin, amax) for _ in range(lanes)]
                elif kind == "zero":
                    c = [rng.randrange(1 << bits) for _ in range(lanes)]
                    a = [0] * lanes
                elif kind in ("max_pos", "max_neg"):   # the worst case the psum width is sized for
                    wc = int(table[sel].abs().argmax())
                    c = [wc] * lanes
                    w = int(table[sel, wc])
                    a = [amin if (w > 0) == (kind == "max_neg") else amax] * lanes
                elif kind == "special":               # BitMoD special code / INT most negative / FP6 subnormals
                    special = (1 << (bits - 1))
                    c = [special if rng.random() < 0.5 else rng.randrange(4) for _ in range(lanes)]
                    a = [rng.randint(amin, amax) for _ in range(lanes)]
                else:                                 # FP6 subnormals and tiny codes
                    c = [rng.randrange(8) | (rng.randrange(2) << (bits - 1)) for _ in range(lanes)]
                    a = [rng.randint(amin, amax) for _ in range(lanes)]
                codes.append(c)
                mants.append(a)
            psum = sum(int(table[sel, c]) * a for cs, as_ in zip(codes, mants) for c, a in zip(cs, as_))
            out.append({"name": f"{fmt}/{kind}", "fmt": fi, "sel": sel, "terms": T.terms(fmt),
                        "codes": [sum(c << (code_bits * l) for l, c in enumerate(cs)) for cs in codes],
                        "mants": [sum((a & ((1 << act_bits) - 1)) << (act_bits * l) for l, a in enumerate(as_))
                                  for as_ in mants],
                        "psum": psum})
        del worst_code
    return out


_SCALE_CORNERS = {
    "fp16": [0x3C00, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0x2E66, 0x8001 & 0x7FFF],
    "bf16": [0x3F80, 0x0001, 0x007F, 0x0080, 0x7F7F, 0x3DCD],
    "e8m0": [127, 0, 1, 254, 253, 100],
}


def _scale_value(bits: int, fmt: str) -> torch.Tensor:
    if fmt == "fp16":
        return torch.tensor([bits], dtype=torch.int16 if bits < 0x8000 else torch.int32).to(torch.int16).view(torch.float16).float()
    if fmt == "bf16":
        return torch.tensor([bits], dtype=torch.int16).view(torch.bfloat16).float()
    return torch.ldexp(torch.ones(1), torch.tensor([bits - 127]))


def rescale_outputs(scale_formats, psum_bits: int, sum_bits: int, zpc_bits: int, rows: int = 1,
                    seed: int = 0) -> list[dict]:
    """Sequences of group batches (one output per row) for the RescaleUnit, with the expected
    fp32 result bits of every row.

    Each case's named corner (extreme scales, the largest sum, zero, zero point, cancellation,
    overflow to inf, an fp32 subnormal) sits on row ``case index % rows``; the other rows carry
    random sums, zero points and scales under the same shared ``sum_a``, ``ea`` and ``unit``.
    """
    rng = random.Random(seed)
    pmax, smax = (1 << (psum_bits - 2)) - 1, (1 << (sum_bits - 2)) - 1
    zlo, zhi = -(1 << (zpc_bits - 2)), (1 << (zpc_bits - 2)) - 1
    outs = []
    for si, sf in enumerate(scale_formats):
        corners = _SCALE_CORNERS[sf]

        def random_scale():
            if sf == "e8m0":
                return rng.randint(100, 150)
            return rng.randint(0x1000, 0x5000) if sf == "fp16" else rng.randint(0x3000, 0x4800)

        for kind in ("random", "corner_scales", "max_psum", "zero", "zero_point", "cancel", "overflow", "underflow"):
            hot = len(outs) % rows            # the row that carries the corner
            groups = []
            for g in range(rng.randint(1, 6) if kind != "corner_scales" else len(corners)):
                psum = rng.randint(-pmax, pmax)
                zpc = sum_a = 0
                if kind == "max_psum":
                    psum = rng.choice([pmax, -pmax])
                elif kind == "zero":
                    psum = 0
                elif kind == "zero_point":
                    zpc = rng.randint(zlo, zhi)
                    sum_a = rng.randint(-smax // 64, smax // 64)
                    psum = rng.randint(-pmax // 4, pmax // 4)
                elif kind == "cancel" and g % 2:
                    psum = -groups[-1]["psum"][hot]
                if kind == "corner_scales":
                    bits = corners[g]
                else:
                    bits = random_scale()
                if kind == "cancel" and g % 2:
                    bits = groups[-1]["scale"][hot]
                ea = rng.randint(-40, 20)
                unit = rng.randint(0, 4)
                if kind == "overflow":       # the largest scale of the format, the largest sum: fp32 inf
                    bits, psum, ea, unit = max(corners, key=lambda b: float(_scale_value(b, sf))), pmax, 60, 0
                elif kind == "underflow":    # the smallest scale, a small sum: an fp32 subnormal (or 0)
                    bits = min(corners, key=lambda b: float(_scale_value(b, sf)))
                    lg = int(torch.log2(_scale_value(bits, sf))[0])
                    psum, unit = 3 + 2 * g, 0
                    ea = max(-128, -140 - lg)     # lands near 2^-138, an fp32 subnormal
                if kind == "cancel" and g % 2:
                    ea, unit = groups[-1]["ea"], groups[-1]["unit"]
                # the other rows: random sums (a quarter of the range, so zero points cannot overflow)
                row_psum = [rng.randint(-pmax // 4, pmax // 4) for _ in range(rows)]
                row_zpc = [rng.randint(zlo, zhi) if sum_a else 0 for _ in range(rows)]
                row_scale = [random_scale() for _ in range(rows)]
                row_psum[hot], row_zpc[hot], row_scale[hot] = psum, zpc, bits
                groups.append({"psum": row_psum, "sum_a": sum_a, "zpc": row_zpc, "scale": row_scale,
                               "ea": ea, "unit": unit})
            # expected: exactly sw.datapath steps 3-6, per row
            results = []
            for r in range(rows):
                acc = torch.zeros(1, dtype=torch.float32)
                for gr in groups:
                    sig, es = scale_fields(_scale_value(gr["scale"][r], sf), sf)
                    Q = (gr["psum"][r] - gr["zpc"][r] * gr["sum_a"]) * int(sig[0])
                    E = gr["ea"] + int(es[0]) - gr["unit"]
                    q32 = torch.ldexp(torch.tensor([float(Q)], dtype=torch.float64),
                                      torch.tensor([float(E)], dtype=torch.float64)).to(torch.float32)
                    acc = acc + q32
                results.append(int(canonical_nan(acc).view(torch.int32)[0]) & 0xFFFFFFFF)
            outs.append({"name": f"{sf}/{kind}", "scale_fmt": si, "hot_row": hot, "groups": groups,
                         "result": results})
    return outs
