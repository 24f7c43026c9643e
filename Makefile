# Set-up and entry points. `make demo` and `make test` work on a fresh clone: they build .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CORES  ?= all

.PHONY: install demo test lint dryrun clean-results

install: $(VENV)/.installed

# the pinned packages, then the library itself (scripts/fer, editable: no sys.path tricks anywhere)
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-build-isolation --no-deps -e .
	touch $@

## the whole DAG on built-in synthetic faces
demo: install
	$(BIN)/snakemake --cores $(CORES) --configfile config/demo.yaml

## linters and the test suite (.ci/run calls this)
test: install lint
	$(BIN)/python -m pytest -q tests

## ruff (Python) and snakefmt (Snakefile and rules/)
lint: install
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check Snakefile rules

dryrun: install
	$(BIN)/snakemake -n --configfile config/demo.yaml

clean-results:
	rm -rf results/* weights/*.pt .snakemake/incomplete
	touch results/.gitkeep weights/.gitkeep
