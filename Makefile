# The README's two commands:  make run  (set up, run the pipeline)  and  make test.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
SNAKEMAKE_ARGS ?=
# make push/pull: paths under results/ and --remote NAME (docs/sharing.md).
SHARE_ARGS ?=

.PHONY: run test test-fast lint format install report push pull unlock

# The stamp re-installs when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# A current pip resolves the pinned set in under a minute (Python 3.11's bundled pip
	# backtracks for minutes).
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# --rerun-incomplete: after an interrupted run, redo only the jobs that did not finish.
# Snakemake ends with this make (AMSGRAD_REPRO_SUPERVISOR_PID: make's pid), its jobs with
# it; a lock left by a killed Snakemake is removed at the next run (amsgrad_repro.supervision,
# amsgrad_repro.snakemake_lock).
run: install
	PATH="$(CURDIR)/$(BIN):$$PATH" AMSGRAD_REPRO_SUPERVISOR_PID=$$PPID $(BIN)/snakemake \
		--cores $(CORES) --rerun-incomplete $(SNAKEMAKE_ARGS)
	$(MAKE) report

# Remove the working directory's lock (snakemake --unlock); refused while a Snakemake of this
# folder runs on this host.
unlock: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores 1 --unlock $(SNAKEMAKE_ARGS)

# Self-contained HTML: figures with captions, the claims table, settings and provenance
# (snakemake --report; in a pulled clone its per-file "Missing metadata" warnings become one
# note, amsgrad_repro/report.py).
report: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/amsgrad-repro report -- $(SNAKEMAKE_ARGS)

# Share finished runs, aggregates, figures and tables through the DVC remote
# (docs/sharing.md). SNAKEMAKE_ARGS must be the run's, e.g. SNAKEMAKE_ARGS="--config scale=smoke".
push: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/amsgrad-repro share push $(SHARE_ARGS) \
		-- $(SNAKEMAKE_ARGS)

# Pull them, then make Snakemake see them as up to date (nothing reruns).
pull: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/amsgrad-repro share pull --cores $(CORES) \
		$(SHARE_ARGS) -- $(SNAKEMAKE_ARGS)

# The whole suite on parallel workers (pytest-xdist; docs/testing.md). The tests are
# CPU-bound and each Snakemake of a test uses 2 cores: 2 workers fit a 2-core machine.
TEST_WORKERS ?= 2

test: install lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -q -n $(TEST_WORKERS) --durations=25

# The edit-test loop: the tests that start no Snakemake (a few minutes).
test-fast: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -q -n $(TEST_WORKERS) -m "not slow"

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/snakefmt --check Snakefile workflow/rules
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --lint

format: install
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/snakefmt Snakefile workflow/rules
