"""rtl.rescale.RescaleUnit: constructor checks and the two result storage options.

The arithmetic is checked bit-exactly under cocotb (tests/test_cocotb_row.py with result registers,
tests/test_cocotb_engine.py through the engine, which uses the accumulators as results).
"""
from __future__ import annotations

import re

import pytest
from amaranth.back import rtlil

from rtl.rescale import RescaleUnit


def test_bad_parameters():
    with pytest.raises(ValueError, match=re.escape("rows=0 must be a positive integer")):
        RescaleUnit(["fp16"], 0, 20, 10, 4)
    with pytest.raises(ValueError, match=re.escape("scale_formats=['fp8']: choose from ")):
        RescaleUnit(["fp8"], 2, 20, 10, 4)
    with pytest.raises(ValueError, match=re.escape("result_registers=1 must be True or False")):
        RescaleUnit(["fp16"], 2, 20, 10, 4, result_registers=1)


@pytest.mark.parametrize("result_registers", [True, False])
def test_result_storage(result_registers):
    """With ``result_registers=False`` there are no ``result{r}`` flip-flops: the ring is the result."""
    ru = RescaleUnit(["fp16", "e8m0"], 3, 20, 10, 4, result_registers=result_registers)
    assert ru.result_registers is result_registers
    text = rtlil.convert(ru)
    names = {n for r in range(3) for n in (f"result{r}",) if re.search(rf"wire .*\\{n}\b", text)}
    assert names == ({"result0", "result1", "result2"} if result_registers else set())
