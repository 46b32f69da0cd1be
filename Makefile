# One venv, created on first use; every target works from a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all venv test test-fast lint typecheck demo bench clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check reconciler tests $(wildcard bench)
	$(BIN)/ruff format --check reconciler tests $(wildcard bench)

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q

# The inner loop (about a minute on 2 cores): unit tests and the quick emulator
# tests. Left out: crash/soak rounds (marked slow) and the files below, which
# run the whole tool through faults, crashes, a browser, a terminal, the
# pre-commit tool, the benchmarks, or end to end through the CLI with key
# stores, rotation and accounts; `make test` runs everything.
FAST_LEAVES_OUT := test_bench_smoke test_crash test_endpoint_kill test_precommit \
	test_s3_faults test_storage_faults test_keystore_faults test_rotation_crash \
	test_report test_terminal test_emulator_protocol test_rate_limit_apply test_emulator_cli \
	test_keystore test_keystore_generations test_keystore_pacing test_rotation_e2e \
	test_accounts_live
test-fast: $(STAMP)
	$(BIN)/pytest -q -x -m 'not slow' $(foreach f,$(FAST_LEAVES_OUT),--ignore=tests/$(f).py)

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
