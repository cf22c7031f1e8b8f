# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SOURCES := pyproject.toml $(shell find src cards -type f -not -name '*.pyc' 2>/dev/null)

.PHONY: run test test-fast browser bench bench-bulk fuzz load lock valuesets examples example-fhir clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The project is installed as a wheel (not editable), so what runs is what ships: the service and its
# dependencies only. The test tools come on top, for the targets that need them.
$(VENV)/.installed: $(BIN)/python $(SOURCES) requirements.lock
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --force-reinstall --no-deps .
	touch $@

$(VENV)/.test-tools: $(VENV)/.installed
	$(BIN)/pip install --quiet '.[test]'
	touch $@

# Binds CDS_SPINE_HOST:CDS_SPINE_PORT (default 127.0.0.1:8080), like every other setting from the environment.
run: $(VENV)/.installed
	$(BIN)/cds-spine serve

# pytest keeps its assertion-rewritten modules in __pycache__ (git ignores it) even where the environment says
# PYTHONDONTWRITEBYTECODE: without them every run, and every xdist worker, compiles the suite and the plugins
# again (about 6 s a process on 2 cores).
PYTEST = env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest

# The house first (imports point down, the style, the types), then the suite.
test: $(VENV)/.test-tools browser
	$(BIN)/lint-imports
	$(BIN)/ruff check src tests tools bench
	$(BIN)/mypy
	$(PYTEST)

# The inner loop: everything but the suites that start servers, browsers, Spark or the command line in processes.
test-fast: $(VENV)/.test-tools
	$(PYTEST) -m "not slow"

# The dashboard test drives Debian's chromium (Playwright cannot download its own browser here).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }

# Benchmark the service against its floor over HTTP; writes bench/results.md and bench/latency.png.
bench: $(VENV)/.installed
	$(BIN)/pip install --quiet '.[bench]'
	$(BIN)/python -m bench.run

# Benchmark `cds-spine audit-bulk` (local and Spark engines, each against its floor) at 10,000 and 100,000
# generated patients; writes the "Bulk audit" section of bench/results.md.
BULK_SIZES ?= 10000 100000
bench-bulk: $(VENV)/.test-tools
	$(BIN)/python -m bench.bulk --sizes $(BULK_SIZES)

# Contract fuzzing, long form: random examples, FUZZ_EXAMPLES per operation (`make test` runs 200, derandomized).
FUZZ_EXAMPLES ?= 3000
fuzz: $(VENV)/.test-tools
	CDS_SPINE_FUZZ_RANDOM=1 CDS_SPINE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q tests/test_fuzz.py

# Load, long form: LOAD_CLIENTS clients for LOAD_SECONDS against `cds-spine serve --workers LOAD_WORKERS`, on
# SQLite and on PostgreSQL, then again with a kill -9 halfway; each run checks the audit call by call.
LOAD_CLIENTS ?= 16
LOAD_SECONDS ?= 30
LOAD_WORKERS ?= 2
POSTGRES ?= postgresql://postgres@127.0.0.1:5432/test
LOAD = $(BIN)/python -m bench.load --clients $(LOAD_CLIENTS) --seconds $(LOAD_SECONDS) --workers $(LOAD_WORKERS)
load: $(VENV)/.test-tools
	$(LOAD) --database sqlite
	$(LOAD) --database $(POSTGRES)
	$(LOAD) --database sqlite --crash
	$(LOAD) --database $(POSTGRES) --crash

# Re-resolve the service's dependencies into requirements.lock (exact versions and hashes; the Dockerfile,
# `make run` and `make test` install from it).
lock: $(BIN)/python
	$(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file requirements.lock pyproject.toml

# Regenerate cards/valuesets/*.json from knowledge/ (the raw code lists), the ICD-10-CM code list and the CMS GEMs.
valuesets: $(BIN)/python
	$(BIN)/pip install --quiet '.[valuesets]'
	$(BIN)/python tools/build_valuesets.py

# The examples dated today, in examples/today/ (not tracked: the committed copies, written as of examples/index.json's
# asOf, change only when a story does: tools/build_examples.py --out examples --as-of YYYY-MM-DD).
examples: $(VENV)/.installed
	$(BIN)/python tools/build_examples.py --out examples/today

# A small local FHIR server (http://localhost:8081/fhir) holding the examples, with CORS: for trying the
# service with the CDS Hooks sandbox without Docker (docs/deploy.md). EXAMPLE_FHIR_PORT to move it.
EXAMPLE_FHIR_PORT ?= 8081
example-fhir: $(VENV)/.installed
	$(BIN)/python tools/example_fhir.py --port $(EXAMPLE_FHIR_PORT)

clean:
	rm -rf $(VENV) build dist
