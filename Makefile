# One venv for everything; `make test` and `make demo` create and update it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test demo lint typecheck bench soak clean sysdeps links

# The Debian packages the tests and the demo start for real: PostgreSQL and
# slapd (connector tests), ldap-utils, tmux (the terminal test) and a headless
# Chromium (the report's PNG check). Installed only when missing, as root or
# through sudo; slapd's packaged system instance is stopped because the tests
# run their own. SKIP_SYSDEPS=1 skips the step (a machine set up by hand).
sysdeps:
	@[ -n "$(SKIP_SYSDEPS)" ] || sh .ci/sysdeps

# core/ and tui/ install as glasskey.core and glasskey.tui. A strict editable install
# links each file into build/__editable__*, which mypy can follow (the default mode's
# import hook it cannot); a module added later needs a relink, which `links` does.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' --config-settings editable_mode=strict
	touch $(STAMP)

links: $(STAMP)
	@$(BIN)/python .ci/links || $(BIN)/pip install -q --no-deps -e . --config-settings editable_mode=strict

lint: links
	$(BIN)/ruff check core tui tests $(wildcard benchmarks)
	$(BIN)/lint-imports

typecheck: links
	$(BIN)/mypy
	$(BIN)/mypy tests

test: sysdeps lint typecheck
	$(BIN)/pytest -q

demo: sysdeps links
	$(BIN)/glasskey demo

bench: links
	$(BIN)/python -m benchmarks.run

# The reliability catalogue at full size (1,000 SIGKILL points in rotation,
# 500 TOTP races, every-index tamper, ...): the same tests CI runs, scaled up.
SOAK_TESTS = tests/test_store.py tests/test_audit.py tests/test_auth.py tests/test_parsing.py \
	tests/test_checkout_processes.py tests/test_checkout_statemachine.py \
	tests/test_rotation_targets.py
soak: links
	GLASSKEY_SOAK=1 $(BIN)/pytest -q $(SOAK_TESTS)

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
