# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PLUGINS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
STAMP := $(VENV)/.installed
# A plugin whose pyproject.toml declares a `test` extra (du-decoding's brings the ldpc package) is
# installed with it, so that `make test` runs its independent checks.
PLUGIN_SPECS := $(foreach p,$(PLUGINS),$(if $(shell grep -s '^test *=' $(p)/pyproject.toml),'$(p)[test]',$(p)))

.PHONY: install demo test test-lowest bench bench-size bench-peers docs docs-serve clean tables check-tables

$(STAMP): pyproject.toml $(wildcard plugins/*/pyproject.toml) Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	PYTHONWARNINGS='ignore:Editable installation' $(BIN)/python -m pip install --quiet -e '.[test,docs,tune,tensorboard]' $(addprefix -e ,$(PLUGIN_SPECS))
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/unfold compare $(DEMO_ARGS)

# The suite runs in TEST_WORKERS processes (pytest-xdist; 2 on the 2-core CI machine, `TEST_WORKERS=0` for one
# process): each worker's JAX uses every core, so two of them overlap one's Python and compilation with the other's
# numerics (about 11.5 minutes instead of 13.5 on 2 cores).
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Speed and memory, side by side with hand-written baselines (about 5 minutes on 2 cores);
# writes benchmarks/results/*.json. BENCH_ARGS="--only reference,theory" or "--quick".
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# The engine at size against the GEMM roofline of the same shapes measured in the same run (sparse recovery
# n=500 and 2000, ridge n=1000, MIMO 64x64, LDPC; memory against depth to D=1000): about 5 minutes on 2 cores.
bench-size: $(STAMP)
	$(BIN)/python benchmarks/run.py --only size $(BENCH_ARGS)

# DU-ISTA at n=500 side by side with a hand-written PyTorch loop, torch.compile and DeepInverse, and pgd-net on
# the deblur experiment beside DeepInverse's unrolled PGD with a DnCNN of its size, in the peers'
# own environment .venv-peers (torch, torchvision, deepinv: never dependencies of du-framework; several GB on
# x86_64, where pip takes torch from this machine's disk), scored by one evaluator; about 5 minutes once installed.
PEERS := .venv-peers
$(PEERS)/.installed: benchmarks/peers/requirements.txt
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet -r benchmarks/peers/requirements.txt
	touch $@

bench-peers: $(STAMP) $(PEERS)/.installed
	$(BIN)/python benchmarks/peers.py --peers-python $(PEERS)/bin/python $(BENCH_ARGS)
	$(BIN)/python benchmarks/peers_deblur.py --peers-python $(PEERS)/bin/python

# The docs' result tables: docs/tables/NAME.toml is what produced table NAME, NAME.json its numbers and
# environment, and pages show it between <!-- table: NAME --> and <!-- /table -->. `make tables` reruns
# every table and rewrites them; `make check-tables` reruns and compares with the committed ones (exit 1
# naming each cell out of tolerance; docs/results.md). TABLES="reference linear-system" to choose.
tables: $(STAMP)
	$(BIN)/python tools/tables.py generate $(TABLES)

check-tables: $(STAMP)
	$(BIN)/python tools/tables.py check $(TABLES)

# The documentation site (mkdocs, Material, API reference from the docstrings), built with
# --strict into site/; docs-serve serves it on http://127.0.0.1:8000 and rebuilds on change.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict

# The lowest allowed version of every direct dependency (uv's lowest-direct resolution, from
# PyPI, into a fresh .venv-lowest) and a representative subset of the tests. Not part of `make test`.
LOWEST := .venv-lowest
LOWEST_TESTS := tests/test_engine.py tests/test_transforms.py tests/test_plugins.py tests/test_packaging.py plugins/du-gd-ridge
test-lowest:
	rm -rf $(LOWEST)
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet uv
	PYTHONWARNINGS='ignore:Editable installation' $(LOWEST)/bin/uv pip install --quiet --python $(LOWEST)/bin/python \
		--resolution lowest-direct -e '.[test]' $(addprefix -e ,$(PLUGINS))
	$(LOWEST)/bin/python -m pytest -q -p no:cacheprovider $(LOWEST_TESTS) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(LOWEST) runs site .pytest_cache
