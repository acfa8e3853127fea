"""The ``bitmix`` command: one verb per job, each with its own ``--help``.

A verb is ``module:function`` with the signature ``main(argv, prog) -> exit status`` (0 ok, 1 a check
or a job failed, 2 bad arguments); its module is imported only when the verb runs, so ``bitmix
--help`` is quick. The ``python -m gen VERB``, ``python -m verif.sim``, ``python -m sw.eval``,
``python -m sw.bench`` and ``python -m sw.catalog`` forms are aliases of the same functions.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: verb -> (module, function, one line of help), in the order ``bitmix --help`` lists them.
VERBS: dict[str, tuple[str, str, str]] = {
    "verilog": ("gen.commands", "verilog_main",
                "elaborate the engine (embedded default config or --config) to Verilog, manifest and summary"),
    "sim": ("verif.sim", "main", "cocotb testbenches of the engine on Icarus and Verilator, throughput report"),
    "lint": ("gen.commands", "lint_main", "yosys synth + check -assert + latch scan, verilator -Wall, every component"),
    "area": ("gen.report", "main", "area and timing of the engine and the baselines (yosys GE, ECP5 Fmax)"),
    "sweep": ("gen.sweep", "main", "lanes x rows x format sets: throughput per area against flexibility"),
    "softfloat": ("verif.softfloat_oracle", "main",
                  "the RTL fp32 adder and converter and the fp16 multiplier against Berkeley SoftFloat (>10^6 vectors each)"),
    "formal": ("verif.formal", "main", "SymbiYosys proofs: stream handshakes, decoder table, widths, reset, liveness"),
    "eval": ("sw.eval.__main__", "main", "accuracy of every format and algorithm on SmolLM2-135M and MiniLM"),
    "bench": ("sw.bench", "main", "quantizer throughput on a 4096x4096 fp16 matrix"),
    "formats": ("sw.catalog", "main", "the format catalogue: every element and group format"),
    "check": ("gen.commands", "check_main", "validate a config and print its derived parameters"),
    "default-config": ("gen.commands", "default_config_main", "print the embedded default config (TOML)"),
}


def _parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {v:15s} {h}" for v, (_, _, h) in VERBS.items())
    ap = argparse.ArgumentParser(
        prog="bitmix", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="bitmix: generated, verified bit-serial mixed-datatype GEMV engines for LLM inference, "
                    "and the quantization library behind them.",
        epilog=f"verbs:\n{lines}\n\n`bitmix VERB --help` describes a verb's options.")
    ap.add_argument("verb", choices=list(VERBS), metavar="VERB", help="one of the verbs below")
    return ap


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in VERBS:
        _parser().parse_args(argv[:1])      # --help, or a clear error naming the known verbs (exit 2)
        return 2
    module, function, _ = VERBS[argv[0]]
    run = getattr(importlib.import_module(module), function)
    return int(run(argv[1:], prog=f"bitmix {argv[0]}") or 0)
