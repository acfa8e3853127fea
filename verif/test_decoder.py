"""cocotb test of the term decoder: every format x selector x term x code, exhaustively.

Vectors (JSON file named by ``BITMIX_VECTORS``, computed in the pytest process from
``sw.terms.decompose``)::

    {"formats": [name, ...], "code_bits": 8, "sels": 4, "terms": 4,
     "expected": [[[[packed for code] for term] for sel] for fmt]}

``packed = zero << 8 | sign << 7 | shift`` (shift < 128). The simulator never imports torch.
"""
from __future__ import annotations

import cocotb
from cocotb.triggers import Timer

from verif.runner import load_vectors


@cocotb.test()
async def decoder_exhaustive(dut):
    """Drive every (fmt, sel, term, code); compare sign/shift/zero after each settle."""
    vec = load_vectors()
    formats, expected = vec["formats"], vec["expected"]
    ncodes = 1 << vec["code_bits"]
    code_h, fmt_h, sel_h, term_h = dut.code, dut.fmt, dut.sel, dut.term
    sign_h, shift_h, zero_h = dut.sign, dut.shift, dut.zero
    errors: list[str] = []
    checked = 0
    for f, name in enumerate(formats):
        fmt_h.value = f
        for s in range(vec["sels"]):
            sel_h.value = s
            for t in range(vec["terms"]):
                term_h.value = t
                exp_row = expected[f][s][t]
                for c in range(ncodes):
                    code_h.value = c
                    await Timer(1, unit="ns")
                    got = (int(zero_h.value) << 8) | (int(sign_h.value) << 7) | int(shift_h.value)
                    want = exp_row[c]
                    checked += 1
                    if got != want:
                        errors.append(f"{name} sel={s} term={t} code=0x{c:02x}: got (sign={got >> 7 & 1}, "
                                      f"shift={got & 0x7f}, zero={got >> 8}) expected (sign={want >> 7 & 1}, "
                                      f"shift={want & 0x7f}, zero={want >> 8})")
    dut._log.info(f"checked {checked} (fmt, sel, term, code) combinations, {len(errors)} mismatches")
    assert checked == len(formats) * vec["sels"] * vec["terms"] * ncodes
    assert not errors, f"{len(errors)} mismatches; first: " + "; ".join(errors[:8])
