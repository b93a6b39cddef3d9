# Two set-up commands: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= ../shared/data
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all bench docs install clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[cpu,test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tfp-anomaly demo --data-dir $(DATA) --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ""

bench: $(STAMP)
	$(BIN)/python benchmarks/parse_rate.py --events 500000 --markdown docs/benchmarks.md
	$(BIN)/python benchmarks/flows.py --xla --markdown docs/benchmarks.md
	$(BIN)/python benchmarks/train_speed.py --markdown docs/benchmarks.md
	$(BIN)/python benchmarks/latency.py --markdown docs/benchmarks.md
	$(BIN)/python benchmarks/scale.py --markdown docs/benchmarks.md
	$(BIN)/python benchmarks/main_job.py --markdown docs/benchmarks.md
	$(BIN)/python benchmarks/searches.py --markdown docs/benchmarks.md
	$(BIN)/python benchmarks/lhco_quality.py --markdown docs/benchmarks.md
	$(BIN)/python benchmarks/flow_posteriors.py --markdown docs/benchmarks.md
	$(BIN)/python benchmarks/architectures.py --markdown docs/benchmarks.md
	$(BIN)/python benchmarks/trigger_export.py --markdown docs/benchmarks.md

docs: $(STAMP)
	$(BIN)/python docs/build_api.py

clean:
	rm -rf $(VENV) runs build *.egg-info .pytest_cache
