# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
SHELL := /bin/bash
export XNORKIT_DATA ?= $(abspath ../shared/datasets)
PY := .venv/bin/python

.PHONY: setup demo test test-all lint clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(PY) -m xnorkit flow -o out/demo

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m ""

lint: setup
	.venv/bin/ruff check .

clean:
	rm -rf out build .pytest_cache
