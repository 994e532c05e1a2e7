# One venv for everything; `make test` and `make demo` create and update it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test demo lint typecheck bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check core tui tests $(wildcard benchmarks)
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q

demo: $(STAMP)
	$(BIN)/glasskey demo

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

soak: $(STAMP)
	GLASSKEY_SOAK=1 $(BIN)/pytest -q -m "slow or soak"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
