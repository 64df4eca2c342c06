# The two commands of the README: `make demo` runs the node on a generated study and shows
# what comes back, `make test` runs the tests (`make serve` runs a node on the defaults).
# Both set the machine up first (scripts/setup.sh: apt tools, .venv, torch, the project).
.PHONY: setup serve demo test lint
VENV := .venv/bin

.setup-stamp: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

setup: .setup-stamp

serve: .setup-stamp
	$(VENV)/dicomnode serve

demo: .setup-stamp
	$(VENV)/dicomnode demo

test: .setup-stamp
	$(VENV)/python -m pytest -q

PY_DIRS := $(wildcard dicomnode pipelines tests testkit bench models setup.py)

lint: .setup-stamp
	$(VENV)/ruff check $(PY_DIRS)
	$(VENV)/ruff format --check $(PY_DIRS)
	$(VENV)/mypy dicomnode pipelines
