# Set-up and entry points. `make demo` and `make test` work on a fresh clone: they build .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CORES  ?= all

.PHONY: install demo test lint dryrun report clean-results

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -r requirements.txt
	touch $@

## the whole DAG on built-in synthetic faces
demo: install
	$(BIN)/snakemake --cores $(CORES) --configfile config/demo.yaml

## the test suite (.ci/run calls this)
test: install
	$(BIN)/python -m pytest -q tests

lint: install
	$(BIN)/snakemake --lint --configfile config/demo.yaml

dryrun: install
	$(BIN)/snakemake -n --configfile config/demo.yaml

clean-results:
	rm -rf results/* weights/*.pt .snakemake/incomplete
	touch results/.gitkeep weights/.gitkeep
