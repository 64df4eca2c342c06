# The two commands of the README: `make demo` runs the node, `make test` runs the tests.
.PHONY: setup serve demo test lint
VENV := .venv/bin

.setup-stamp: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

setup: .setup-stamp

serve: .setup-stamp
	$(VENV)/dicomnode serve

test: .setup-stamp
	$(VENV)/python -m pytest -q

lint: .setup-stamp
	$(VENV)/ruff check dicomnode pipelines tests bench
	$(VENV)/ruff format --check dicomnode pipelines tests bench
	$(VENV)/mypy dicomnode pipelines
