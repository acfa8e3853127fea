"""``python -m gen VERB``: an alias of the generator's ``bitmix`` verbs (``bitmix --help``)."""
from __future__ import annotations

import sys

from . import commands, report, sweep

VERBS = {"verilog": commands.verilog_main, "lint": commands.lint_main, "hygiene": commands.lint_main,
         "check": commands.check_main, "default-config": commands.default_config_main,
         "area": report.main, "sweep": sweep.main}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in VERBS:
        print(f"usage: python -m gen {{{','.join(VERBS)}}} ... (see `bitmix --help`)", file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    return VERBS[argv[0]](argv[1:], prog=f"python -m gen {argv[0]}")


if __name__ == "__main__":
    sys.exit(main())
