# ocibake: build reproducible OCI images of Go services without a container daemon.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup quickstart test bench clean

$(BIN)/ocibake: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## setup: Debian packages (registry, skopeo, umoci, bubblewrap, upx...) and the Python environment
setup:
	bash scripts/install-debian-deps.sh
	$(MAKE) $(BIN)/ocibake

## quickstart: set up, then build the sample service into dist/oci/emergency-service and print its report
quickstart: setup
	$(BIN)/ocibake build services/emergency-service --version v1.0.0

## test: the whole test suite (real go, upx, registry, skopeo, umoci, bubblewrap), one worker per core
test: $(BIN)/ocibake
	$(BIN)/pytest -q -n auto

## bench: timings, sizes and peak memory, printed as tables, with ratios against ko, crane and skopeo (many minutes)
bench: $(BIN)/ocibake
	$(BIN)/python bench/bench_cli.py
	$(BIN)/python bench/bench_build.py
	$(BIN)/python bench/bench_upx.py
	$(BIN)/python bench/bench_toolchain.py
	$(BIN)/python bench/bench_push.py
	$(BIN)/python bench/bench_archive.py
	$(BIN)/python bench/bench_platforms.py
	$(BIN)/python bench/bench_audit.py
	$(BIN)/python bench/bench_layout.py
	$(BIN)/python bench/bench_speed.py

clean:
	rm -rf dist build .pytest_cache
