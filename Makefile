# One venv, created on first use; every target works from a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all venv test test-fast lint typecheck demo bench clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# pip's and setuptools' chatter (the editable-install banner among it) goes to a log,
	@# shown only when the install fails.
	$(BIN)/pip install --quiet --upgrade pip > $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	$(BIN)/pip install --quiet -e '.[test]' >> $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check reconciler tests $(wildcard bench)
	$(BIN)/ruff format --check reconciler tests $(wildcard bench)

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q

# The inner loop (a few minutes on 2 cores): everything but the tests marked slow
# (crash and soak rounds) or e2e (the whole tool through faults, crashes, a
# browser, a terminal, pre-commit, the benchmarks, key stores, rotation and
# accounts end to end); `make test` runs everything. A test file says which it is.
test-fast: $(STAMP)
	$(BIN)/pytest -q -x -m 'not slow and not e2e'

# The main job end to end on an embedded Lightsail emulator (data in .demo/).
DEMO := RECONCILER_LOCAL_DIR=.demo $(BIN)/reconciler
demo: $(STAMP)
	rm -rf .demo
	$(DEMO) validate examples/manifests
	$(DEMO) plan examples/manifests --local
	$(DEMO) apply examples/manifests --local --auto-approve
	$(DEMO) plan examples/manifests --local --detailed-exitcode
	$(DEMO) state list --local
	$(DEMO) apply examples/manifests --local --auto-approve --quiet --rotate us-east-1/bastion
	$(DEMO) key get us-east-1/bastion --generation 1 --public --local

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
