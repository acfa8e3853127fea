"""The format catalogue: one Markdown table of every format, generated from the registry.

``python -m sw.catalog`` prints it; the README embeds its output and a test keeps the
two identical, so the README cannot drift from the code.
"""
from __future__ import annotations

from . import formats as F
from .quantize import variants_for

GROUP_ROWS = [
    ("bitmod4", "BitMoD FP4 mixture: per group the best of fp4_er_pos/er_neg/ea_pos/ea_neg, 2-bit selector",
     128, "fp16", 2),
    ("bitmod3", "BitMoD FP3 mixture: per group the best of fp3_er_pos/er_neg/ea_pos/ea_neg, 2-bit selector",
     128, "fp16", 2),
    ("mxfp4", "OCP MX: E2M1 elements, block 32, E8M0 scale (floor rule; rceil option)", 32, "e8m0", 0),
    ("mxfp6_e2m3", "OCP MX: E2M3 elements, block 32, E8M0 scale", 32, "e8m0", 0),
    ("mxfp6_e3m2", "OCP MX: E3M2 elements, block 32, E8M0 scale", 32, "e8m0", 0),
    ("mxfp8_e4m3", "OCP MX: E4M3 elements, block 32, E8M0 scale", 32, "e8m0", 0),
    ("mxfp8_e5m2", "OCP MX: E5M2 elements, block 32, E8M0 scale", 32, "e8m0", 0),
    ("mxint8", "OCP MX: INT8 elements k/64, k in -127..127, block 32, E8M0 scale", 32, "e8m0", 0),
    ("nvfp4", "E2M1 elements, block 16, E4M3 block scale + fp32 tensor scale", 16, "e4m3", 0),
]


def _fmt(v: float) -> str:
    return f"{v:g}"


def _values(f: F.ElementFormat) -> str:
    vals = f.values.tolist()
    if len(vals) <= 16:
        return "{" + ", ".join(_fmt(v) for v in vals) + "}"
    return f"{len(vals)} values, ±{_fmt(f.qmax)} max, {_fmt(f.min_positive)} min > 0"


def element_table() -> str:
    rows = ["| format | bits | values | rounding | bits/weight (g128, fp16 scale) |",
            "|---|---|---|---|---|"]
    for name in F.names():
        f = F.get(name)
        meta = 16 + (f.bits if f.kind == "int" and not f.signed else 0)
        rows.append(f"| `{name}` | {f.bits} | {_values(f)} | RNE, saturating | {f.bits + meta / 128:.4f} |")
    return "\n".join(rows)


def group_table() -> str:
    rows = ["| format | elements | block | scale | bits/weight |", "|---|---|---|---|---|"]
    for name, desc, block, scale, sel in GROUP_ROWS:
        bits = variants_for(name)[0].bits
        bpw = bits + (F.get_scale_format(scale).bits + sel) / block
        extra = " + 32/numel" if name == "nvfp4" else ""
        rows.append(f"| `{name}` | {desc} | {block} | {scale} | {bpw:.4f}{extra} |")
    return "\n".join(rows)


def markdown() -> str:
    return ("Element formats (a per-group absmax scale; `*_asym` adds a per-group zero point of the "
            "element's width):\n\n" + element_table() + "\n\nGroup formats:\n\n" + group_table() + "\n")


if __name__ == "__main__":
    print(markdown(), end="")
