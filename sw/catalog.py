"""The format catalogue: one Markdown table of every format, generated from the registry.

``bitmix formats`` (alias ``python -m sw.catalog``) prints it; the README embeds its output and a test keeps the
two identical, so the README cannot drift from the code.
"""
from __future__ import annotations

from . import formats as F
from . import group_formats as GF
from .quantize import format_spec


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
        bpw = format_spec(name).bits_per_weight(128, "fp16")
        rows.append(f"| `{name}` | {f.bits} | {_values(f)} | RNE, saturating | {bpw:.4f} |")
    return "\n".join(rows)


def group_table() -> str:
    rows = ["| format | elements | block | scale | bits/weight |", "|---|---|---|---|---|"]
    for name in GF.names():
        gf, spec = GF.get(name), format_spec(name)
        block, scale = gf.block or 128, gf.scale_format or "fp16"
        extra = f" + {gf.tensor_scale_bits}/numel" if gf.tensor_scale_bits else ""
        rows.append(f"| `{name}` | {gf.description} | {block} | {scale} | {spec.bits_per_weight(block, scale):.4f}{extra} |")
    return "\n".join(rows)


def markdown() -> str:
    return ("Element formats (a per-group absmax scale; `*_asym` adds a per-group zero point of the "
            "element's width):\n\n" + element_table() + "\n\nGroup formats:\n\n" + group_table() + "\n")


def main(argv=None, prog: str = "bitmix formats") -> int:
    import argparse
    ap = argparse.ArgumentParser(prog=prog, description="The format catalogue: every element and group format "
                                 "with its bits, values and bits per weight (Markdown, as in the README).")
    ap.add_argument("--names", action="store_true", help="only the format names, one per line")
    args = ap.parse_args(argv)
    if args.names:
        from . import group_formats as GF
        print("\n".join(F.names() + GF.names()))
    else:
        print(markdown(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
