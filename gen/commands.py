"""The generator's command-line verbs: ``verilog``, ``lint``, ``check``, ``default-config``.

Each is ``main(argv, prog) -> exit status`` (0 ok, 1 a check failed, 2 bad arguments or config), the
protocol every ``bitmix`` verb follows.
"""
from __future__ import annotations

import argparse
import sys

from .config import DEFAULT_TOML, ConfigError, load


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=description)
    ap.add_argument("--config", "-c", help="TOML config (default: the embedded default, `bitmix default-config`)")
    return ap


def _load(args):
    try:
        return load(args.config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return None


def verilog_main(argv=None, prog: str = "bitmix verilog") -> int:
    ap = _parser(prog, "Elaborate a config to Verilog: every component as its own .v, manifest.json, summary.txt.")
    ap.add_argument("--out", "-o", default="build/verilog", help="output directory (default: build/verilog)")
    args = ap.parse_args(argv)
    cfg = _load(args)
    if cfg is None:
        return 2
    from .elaborate import emit
    print(emit(cfg, args.out)["summary"])
    return 0


def lint_main(argv=None, prog: str = "bitmix lint") -> int:
    ap = _parser(prog, "Elaborate, then yosys synth + check -assert + a latch scan and verilator --lint-only -Wall "
                       "(waivers with reasons: gen/lint_waivers.vlt) on every component.")
    ap.add_argument("--out", "-o", default="build/verilog", help="output directory (default: build/verilog)")
    args = ap.parse_args(argv)
    cfg = _load(args)
    if cfg is None:
        return 2
    from .elaborate import emit
    from .hygiene import check_dir
    man = emit(cfg, args.out)
    print(man["summary"])
    bad = 0
    for name, checks in check_dir(args.out, list(man["files"])).items():
        for check, (ok, log) in checks.items():
            print(f"{'ok  ' if ok else 'FAIL'} {check:15s} {name}")
            if not ok:
                bad += 1
                print("     " + log.strip().replace("\n", "\n     ")[-2000:])
    return 1 if bad else 0


def check_main(argv=None, prog: str = "bitmix check") -> int:
    ap = argparse.ArgumentParser(prog=prog, description="Validate a config and print its derived parameters.")
    ap.add_argument("config", nargs="?", help="TOML config (default: the embedded default)")
    args = ap.parse_args(argv)
    cfg = _load(args)
    if cfg is None:
        return 2
    print(f"{cfg.name}: ok; psum_bits={cfg.psum_width} code_bits={cfg.code_bits} "
          f"max_terms={cfg.max_terms} shift_bits={cfg.shift_bits}")
    for w in cfg.warnings():
        print("warning:", w)
    return 0


def default_config_main(argv=None, prog: str = "bitmix default-config") -> int:
    argparse.ArgumentParser(prog=prog, description="Print the embedded default config (TOML).").parse_args(argv)
    print(DEFAULT_TOML, end="")
    return 0
