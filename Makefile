# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
SHELL := /bin/bash
export XNORKIT_DATA ?= $(abspath ../shared/datasets)
PY := .venv/bin/python

.PHONY: setup demo test test-all lint bench docs clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(PY) -m xnorkit flow -o out/demo

# two workers (pytest-xdist; a module's tests stay on one worker, so its fixtures are built once): most tests
# wait on one single-threaded simulator, compiler or trainer, and the machine has two cores
test: setup
	$(PY) -m pytest -q -n 2 --dist loadscope --durations=25

test-all: setup
	XNORKIT_FUZZ_EXAMPLES=300 $(PY) -m pytest -q -n 2 --dist loadscope -m ""

# every benchmark (or `make bench BENCH="rtl_mnist golden_lfc"`) into bench/results.json, then the docs' tables
# (also when a bench missed its goal: the docs show it; the exit status is the benches')
bench: setup
	$(PY) bench/all.py $(BENCH); status=$$?; $(PY) scripts/bench_docs.py && exit $$status

# the tables of measured figures in README.md and docs/, rewritten from bench/results.json
docs: setup
	$(PY) scripts/bench_docs.py

lint: setup
	.venv/bin/ruff check .

clean:
	rm -rf out build .pytest_cache
