"""``python -m gen``: the bitmix command line."""
from __future__ import annotations

import argparse
import sys

from .config import DEFAULT_TOML, ConfigError, load


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gen", description="bitmix: generate and check bit-serial "
                                 "mixed-datatype GEMV engines")
    sub = ap.add_subparsers(dest="verb", required=True)
    v = sub.add_parser("verilog", help="elaborate a config to Verilog + manifest + summary")
    v.add_argument("--config", "-c", help="TOML config (default: the embedded default)")
    v.add_argument("--out", "-o", default="build/verilog", help="output directory (default: build/verilog)")
    d = sub.add_parser("default-config", help="print the embedded default config")
    del d
    c = sub.add_parser("check", help="validate a config and print its derived parameters")
    c.add_argument("config", nargs="?")
    h = sub.add_parser("hygiene", help="elaborate, then yosys synth + check -assert + latch scan and "
                       "verilator --lint-only -Wall (waivers: gen/lint_waivers.vlt) on every component")
    h.add_argument("--config", "-c")
    h.add_argument("--out", "-o", default="build/verilog")
    from . import report, sweep
    report.parser(sub.add_parser("area", help="area/timing report of every design and baseline "
                                 "(build/reports/area.{json,md,png})"))
    sweep.parser(sub.add_parser("sweep", help="sweep lanes, rows and format sets: a Pareto plot of "
                                "throughput per area against flexibility"))
    args = ap.parse_args(argv)
    try:
        if args.verb == "area":
            return report.run_args(args)
        if args.verb == "sweep":
            return sweep.run_args(args)
        if args.verb == "default-config":
            print(DEFAULT_TOML, end="")
            return 0
        cfg = load(getattr(args, "config", None))
        if args.verb == "check":
            print(f"{cfg.name}: ok; psum_bits={cfg.psum_width} code_bits={cfg.code_bits} "
                  f"max_terms={cfg.max_terms} shift_bits={cfg.shift_bits}")
            for w in cfg.warnings():
                print("warning:", w)
            return 0
        from .elaborate import emit
        man = emit(cfg, args.out)
        print(man["summary"])
        if args.verb == "hygiene":
            from .hygiene import check_dir
            results = check_dir(args.out, list(man["files"]))
            bad = 0
            for name, checks in results.items():
                for check, (ok, log) in checks.items():
                    print(f"{'ok  ' if ok else 'FAIL'} {check:15s} {name}")
                    if not ok:
                        bad += 1
                        print("     " + log.strip().replace("\n", "\n     ")[-2000:])
            return 1 if bad else 0
        return 0
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
