"""The ``bitmix`` command: the verbs, their help, their errors, and the Make targets that call it."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bitmix.cli import VERBS, main

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for verb in ("verilog", "sim", "lint", "area", "sweep", "eval", "bench", "formats"):
        assert re.search(rf"^  {re.escape(verb)} +\S", out, re.M), verb


@pytest.mark.parametrize("verb", list(VERBS))
def test_every_verb_has_its_own_help(verb, capsys):
    with pytest.raises(SystemExit) as e:
        main([verb, "--help"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: bitmix {verb}")


def test_unknown_verb_is_an_error_naming_the_verbs(capsys):
    with pytest.raises(SystemExit) as e:
        main(["synthesize"])
    assert e.value.code == 2
    assert "invalid choice: 'synthesize' (choose from 'verilog', 'sim', 'lint'," in capsys.readouterr().err


def test_formats_and_check(capsys):
    assert main(["formats", "--names"]) == 0
    names = capsys.readouterr().out.split()
    assert names[:2] == ["int3", "int4"] and names[-1] == "nvfp4" and "bitmod4" in names
    assert main(["check"]) == 0
    assert capsys.readouterr().out.startswith("default: ok; psum_bits=")


def test_bad_config_exits_2_naming_the_parameter(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[engine]\nrows = 0\n")
    assert main(["check", str(cfg)]) == 2
    assert "rows" in capsys.readouterr().err


def test_console_script_and_module_alias():
    r = subprocess.run([sys.executable, "-m", "bitmix", "formats", "--names"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0 and "fp6_e3m2" in r.stdout.split()


def test_make_targets_call_the_cli():
    mk = (ROOT / "Makefile").read_text()
    for verb in ("verilog", "sim", "lint", "area", "sweep", "bench", "eval"):
        assert re.search(rf"^\t\$\(BITMIX\) {verb}\b", mk, re.M), verb
