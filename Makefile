# The front door. `make` lists the verbs; `make repro` and `make test` set up a fresh machine themselves.
# Any python3 from 3.11 up will do (tested with 3.11); `make repro PYTHON=python3.12` picks another.
PYTHON ?= python3
VENV := .venv
# .venv/bin first, so that the `python` in dvc.yaml's commands is the venv's.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Fail rather than fetch: no analytics, no update check (also set in .dvc/config).
export DVC_NO_ANALYTICS := 1

INSTALLED := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help repro test test-fast repro-check report bench bytecode

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/  make \1\t\2/' | expand -t 22

repro: $(INSTALLED) bytecode  ## set up .venv if needed, then dvc repro: the pipeline, running only what changed
	dvc repro

test: $(INSTALLED) bytecode  ## set up .venv if needed, then the whole test suite (8 to 15 minutes on 2 cores)
	python -m pytest -n auto

test-fast: $(INSTALLED)  ## the in-memory unit tests only (tests/unit, well under a minute)
	python -m pytest -n auto tests/unit

# OMP_NUM_THREADS, ATEN_CPU_CAPABILITY and any other variable pass through to the `dvc repro` it runs.
repro-check: $(INSTALLED)  ## does a fresh clone of HEAD reproduce the committed dvc.lock, byte for byte?
	python -m tools.repro_check

BASE ?= main
report: $(INSTALLED)  ## report.md: params and metrics against BASE (a branch, commit or experiment), and the plots
	python -m tools.report $(BASE)

# bench.alternatives runs statsmodels and scikit-learn on their own interpreter: ALTERNATIVE_PYTHON=/a/venv/bin/python
# make bench, that venv made from bench/requirements.txt (never .venv: the project does not depend on them).
bench: $(INSTALLED)  ## figures, not tests: the everyday run against a plain script, stage overhead, throughput, 10^7 to 10^8 points, a 50-level factor, statsmodels and scikit-learn at 10^7, processes, a user's CSV, a wide table; then docs/performance.md
	python -m bench.everyday
	python -m bench.repro_overhead
	python -m bench.large_dataset
	python -m bench.large_dataset --points 50000000 --epochs 1
	python -m bench.large_dataset --points 100000000 --epochs 3
	python -m bench.alternatives
	python -m bench.large_dataset --factor-levels 50 --epochs 3
	python -m bench.training_throughput
	python -m bench.training_scaling
	python -m bench.user_csv
	python -m bench.wide_table
	python -m tools.performance_page

# The stages' bytecode (tools/bytecode.py): where PYTHONDONTWRITEBYTECODE is set, Python keeps none of its own.
bytecode: $(INSTALLED)
	python -m tools.bytecode

# The stamp is newer than requirements.txt once it is installed, so a second run installs nothing. Then
# tools/plots_page.py inlines the installed Vega JavaScript into the page `dvc plots` fills (offline charts).
$(INSTALLED): requirements.txt tools/plots_page.py
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
		{ echo "error: $(PYTHON): not found or older than 3.11: expected Python 3.11 or newer (make PYTHON=python3.12 …)"; exit 1; }
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/python -m tools.plots_page
	touch $@
