"""Value-table formats from BitMoD and ANT.

BitMoD (HPCA'25) repurposes the redundant negative-zero code of a sign-magnitude FP3/FP4
as one *special value*, chosen per group by a 2-bit selector:

=========  ==================  ==========================
selector   FP4 (E2M1 units)    FP3 ({0,±1,±2,±4} units)
=========  ==================  ==========================
0 ER+      +5                  +3
1 ER-      -5                  -3
2 EA+      +8                  +6
3 EA-      -8                  -6
=========  ==================  ==========================

(ER = extra resolution, EA = extra asymmetry; the BitMoD paper, Chen et al., HPCA 2025, §III.)
Every other code keeps its base meaning, so a variant is the base table with code
``1 0..0`` replaced.

ANT's ``flint4`` (MICRO'22) is 1 sign bit and a 3-bit magnitude code with the
"first-one" exponent encoding: magnitudes ``0, .25, .5, .75, 1, 1.5, 2, 4`` for codes
``000 .. 111`` (×4 this is BitMoD's FLINT4 grid ``0,1,2,3,4,6,8,16``).
"""
from __future__ import annotations

from .element import UNUSED, ElementFormat
from .minifloat import MiniFloat

#: Selector order, shared by the quantizer, the packer and the hardware.
VARIANT_ORDER = ("er_pos", "er_neg", "ea_pos", "ea_neg")

SPECIAL_VALUES = {
    "fp4": {"er_pos": 5.0, "er_neg": -5.0, "ea_pos": 8.0, "ea_neg": -8.0},
    "fp3": {"er_pos": 3.0, "er_neg": -3.0, "ea_pos": 6.0, "ea_neg": -6.0},
}


class BitmodVariant(ElementFormat):
    """A BitMoD variant: ``base`` (fp3 or fp4_e2m1) with its -0 code set to ``special``."""

    def __init__(self, base: MiniFloat, family: str, variant: str):
        special = SPECIAL_VALUES[family][variant]
        table = list(base.table)
        table[base.neg_zero_code] = special
        super().__init__(name=f"{family}_{variant}", bits=base.bits, table=table, kind="lut",
                         description=f"{base.name} with the -0 code as {special:+g} (BitMoD {variant.upper()})")
        self.base = base
        self.family = family
        self.variant = variant
        self.selector = VARIANT_ORDER.index(variant)
        self.special = special
        self.special_code = base.neg_zero_code


FLINT4_MAGNITUDES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0)


def flint4() -> ElementFormat:
    table = [(-1.0 if c & 8 else 1.0) * FLINT4_MAGNITUDES[c & 7] for c in range(16)]
    table[8] = UNUSED  # -0 is not produced: 15 levels, as ANT
    return ElementFormat(name="flint4", bits=4, table=table, kind="lut",
                         description="ANT flint4: sign + first-one-encoded 3-bit magnitude")
