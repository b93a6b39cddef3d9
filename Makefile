# Two set-up commands: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= ../shared/data
STAMP  := $(VENV)/.installed
PEERS  := $(VENV)/.peers

.PHONY: demo test test-all bench docs install clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[cpu,test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tfp-anomaly demo --data-dir $(DATA) --out runs/demo

# the slowest tests listed (CI's budget is 15 minutes); with pytest-xdist installed, two workers, each
# test module on one (its module-scoped trained runs are made once)
test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=20 $$($(BIN)/python -c "import xdist" 2>/dev/null && printf -- "-n 2 --dist loadfile")

test-all: test

# the PyTorch peer of the speed benchmarks (the extra `peers`): 2.13.0 is a version the CPU wheel exists for
# (https://download.pytorch.org/whl/cpu); without it the benchmarks say the peer was not run
$(PEERS): $(STAMP)
	$(BIN)/python -m pip install --quiet "torch==2.13.0" || echo "PyTorch not installed: the speed benchmarks run without their peer"
	touch $(PEERS)

bench: $(STAMP) $(PEERS)
	$(BIN)/python benchmarks/parse_rate.py --events 500000 --markdown docs/benchmarks.md
	$(BIN)/python benchmarks/flows.py --xla --markdown docs/benchmarks.md
	$(BIN)/python benchmarks/train_speed.py --markdown docs/benchmarks.md
	$(BIN)/python benchmarks/latency.py --markdown docs/benchmarks.md
	$(BIN)/python benchmarks/profile_step.py --markdown docs/benchmarks.md
	$(BIN)/python benchmarks/speedups.py --markdown docs/benchmarks.md
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
