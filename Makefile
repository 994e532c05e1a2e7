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

# The reliability catalogue at full size (1,000 SIGKILL points in rotation,
# 500 TOTP races, every-index tamper, ...): the same tests CI runs, scaled up.
SOAK_TESTS = tests/test_store.py tests/test_audit.py tests/test_auth.py tests/test_parsing.py \
	tests/test_checkout_processes.py tests/test_checkout_statemachine.py \
	tests/test_rotation_targets.py
soak: $(STAMP)
	GLASSKEY_SOAK=1 $(BIN)/pytest -q $(SOAK_TESTS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
