# The front door: `make repro` and `make test` work on a fresh machine with Python 3.11.
PYTHON ?= python3.11
VENV := .venv
# .venv/bin first, so that the `python` in dvc.yaml's commands is the venv's.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Fail rather than fetch: no analytics, no update check (also set in .dvc/config).
export DVC_NO_ANALYTICS := 1

INSTALLED := $(VENV)/.installed

.PHONY: repro test repro-check report bench

repro: $(INSTALLED)
	dvc repro

test: $(INSTALLED)
	python -m pytest -n auto

# Does a fresh clone of HEAD reproduce the committed dvc.lock? OMP_NUM_THREADS, ATEN_CPU_CAPABILITY and
# any other variable pass through to the `dvc repro` it runs.
repro-check: $(INSTALLED)
	python -m tools.repro_check

# report.md for a pull request: params and metrics against BASE, and the plots.
BASE ?= main
report: $(INSTALLED)
	python -m tools.report $(BASE)

# Figures, not tests: full dvc repro against one process, a no-op repro, and 10 million points.
bench: $(INSTALLED)
	python -m bench.repro_overhead
	python -m bench.large_dataset

# The stamp is newer than requirements.txt once it is installed, so a second run installs nothing. Then
# tools/plots_page.py inlines the installed Vega JavaScript into the page `dvc plots` fills (offline charts).
$(INSTALLED): requirements.txt tools/plots_page.py
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/python -m tools.plots_page
	touch $@
