"""gen.config: the default config, derived widths, and errors that name the parameter."""
import pytest

from gen import config as C
from gen.__main__ import main


def test_default_config_derived_widths():
    cfg = C.load()
    assert (cfg.rows, cfg.lanes, cfg.group_size) == (4, 8, 128)
    # fp6_e3m2 worst case: 128 * 448 * 2^15 < 2^31 -> 31 magnitude bits + sign
    assert cfg.min_psum_bits == 32 and cfg.psum_width == 32
    assert (cfg.code_bits, cfg.max_terms, cfg.shift_bits) == (8, 4, 4)
    assert cfg.warnings() == []
    assert cfg.ideal_cycles("int4", 12, 4096) == 3 * 512 * 2


@pytest.mark.parametrize("text,match", [
    ("[engine]\nlanes = 8\ngroup_size = 100\n", "engine.group_size = 100 is not a multiple of engine.lanes"),
    ("[engine]\nformats = ['fp8_e4m3']\n", "engine.formats: 'fp8_e4m3' has no hardware decoder"),
    ("[engine]\nformats = ['int4']\npsum_bits = 20\n", "engine.psum_bits = 20 is too narrow"),
    ("[engine]\nact_bits = 10\n", "engine.act_bits = 10 is too narrow"),
    ("[engine]\nlane = 8\n", "unknown key\\(s\\) engine.lane"),
    ("[engin]\n", "unknown table"),
    ("[engine]\nrows = 0\n", "engine.rows = 0"),
    ("[engine]\nscale_formats = ['e4m3']\n", "engine.scale_formats: 'e4m3'"),
    ("[engine]\nact_mode = 'fp8'\n", "engine.act_mode"),
    ("[engine\n", "not valid TOML"),
])
def test_bad_configs_name_the_parameter(text, match):
    with pytest.raises(C.ConfigError, match=match):
        C.from_toml_text(text)


def test_psum_bits_exact_boundary():
    need = C.from_toml_text("[engine]\nformats = ['int4']\n").min_psum_bits
    assert need == 27   # |w| <= 8 (Booth decodes code 8 as -8), |A| <= 2^15, G = 2^7: 2^25 needs 26 bits + sign
    C.from_toml_text(f"[engine]\nformats = ['int4']\npsum_bits = {need}\n")
    with pytest.raises(C.ConfigError):
        C.from_toml_text(f"[engine]\nformats = ['int4']\npsum_bits = {need - 1}\n")


def test_cli_reports_config_errors(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[engine]\ngroup_size = 12\n")
    assert main(["verilog", "--config", str(bad), "--out", str(tmp_path / "v")]) == 2
    assert "engine.group_size = 12" in capsys.readouterr().err
    assert main(["check", str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
