"""cocotb unit tests of the term decoder and the FP6 split unpacker, on Icarus and Verilator.

Expected values are computed here (sw.terms / sw.pack, torch) and reach the simulator as
plain integers in the JSON file named by ``BITMIX_VECTORS`` (see verif/runner.py).
"""
from __future__ import annotations

import json

import pytest
import torch

from rtl.decoder import TermDecoder
from rtl.fp6_unpack import Fp6SplitUnpacker
from sw import pack as P
from sw import terms as T
from verif.runner import run_cocotb

SIMS = ["icarus", "verilator"]
MAX_TERMS, SHIFT_BITS, CODE_BITS = 4, 4, 8


def decoder_vectors(formats=T.HW_FORMATS, code_bits=CODE_BITS, max_terms=MAX_TERMS) -> dict:
    """``expected[fmt][sel][term][code] = zero << 8 | sign << 7 | shift`` from sw.terms.decompose."""
    expected = []
    for f in formats:
        b, nsel = T.code_bits(f), len(T.variants(f))
        per_sel = []
        for s in range(4):
            per_term = [[] for _ in range(max_terms)]
            for c in range(1 << code_bits):
                ts = T.decompose(f, c & ((1 << b) - 1), s if nsel > 1 else 0)
                for t in range(max_terms):
                    if t >= len(ts) or ts[t].zero:
                        per_term[t].append(1 << 8)
                    else:
                        per_term[t].append(ts[t].sign << 7 | ts[t].shift)
            per_sel.append(per_term)
        expected.append(per_sel)
    return {"formats": list(formats), "code_bits": code_bits, "sels": 4, "terms": max_terms,
            "expected": expected}


def fp6_vectors(n: int = 8, beats: int = 120, seed: int = 7) -> dict:
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 64, (beats * n,), generator=g)
    codes[:n] = torch.tensor([0x3F, 0x00, 0x15, 0x2A, 0x30, 0x0F, 0x01, 0x20])[:n]   # corner patterns
    seg2, seg4 = P.pack_fp6_split(codes)
    b2, b4 = seg2.tolist(), seg4.tolist()
    w2, w4 = n // 4, n // 2                       # bytes per beat
    beat2 = [int.from_bytes(bytes(b2[i * w2:(i + 1) * w2]), "little") for i in range(beats)]
    beat4 = [int.from_bytes(bytes(b4[i * w4:(i + 1) * w4]), "little") for i in range(beats)]
    cl = codes.tolist()
    phases = [
        {"p_valid2": 1.0, "p_valid4": 1.0, "p_ready": 1.0},   # full throughput
        {"p_valid2": 0.5, "p_valid4": 0.8, "p_ready": 0.6},
        {"p_valid2": 0.9, "p_valid4": 0.3, "p_ready": 0.9},
        {"p_valid2": 0.7, "p_valid4": 0.7, "p_ready": 0.25},  # heavy back-pressure
    ]
    return {"n": n, "seg2": beat2, "seg4": beat4, "codes": [cl[i * n:(i + 1) * n] for i in range(beats)],
            "phases": phases, "seed": seed}


@pytest.mark.parametrize("sim", SIMS)
def test_decoder_exhaustive(sim, sim_build_dir):
    dut = TermDecoder(list(T.HW_FORMATS), MAX_TERMS, SHIFT_BITS, CODE_BITS)
    res = run_cocotb(dut, "bitmix_term_decoder", "test_decoder", sim=sim, build_dir=sim_build_dir,
                     vectors=decoder_vectors(), expect_tests=1)
    assert res.passed_names == ["decoder_exhaustive"]


@pytest.mark.parametrize("sim", SIMS)
def test_fp6_unpack_random_stalls(sim, sim_build_dir):
    vec = fp6_vectors()
    # the vectors themselves are checked against the software unpacker first
    flat = [c for beat in vec["codes"] for c in beat]
    s2 = b"".join(b.to_bytes(vec["n"] // 4, "little") for b in vec["seg2"])
    s4 = b"".join(b.to_bytes(vec["n"] // 2, "little") for b in vec["seg4"])
    assert P.unpack_fp6_split(torch.tensor(list(s2), dtype=torch.uint8), torch.tensor(list(s4), dtype=torch.uint8),
                              len(flat)).tolist() == flat
    report = sim_build_dir / "report.json"
    res = run_cocotb(Fp6SplitUnpacker(vec["n"]), "bitmix_fp6_unpacker", "test_fp6_unpack", sim=sim,
                     build_dir=sim_build_dir, vectors=vec, expect_tests=1, extra_env={"BITMIX_REPORT": str(report)})
    assert res.passed_names == ["fp6_unpack_random_stalls"]
    # every beat of every phase went through the monitor, none broke the stream rules
    assert json.loads(report.read_text()) == [{"stream": "codes", "beats": len(vec["phases"]) * len(vec["codes"]),
                                               "violations": 0, "errors": 0}]
