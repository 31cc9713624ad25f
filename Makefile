# ocibake: build reproducible OCI images of Go services without a container daemon.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup quickstart lint test coverage bench dist clean

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

## lint: ruff (rules and format), mypy --strict, the import contracts, the code shape (about 10 seconds); every
## check runs even when an earlier one fails, and lint fails if any did
lint: $(BIN)/ocibake
	@failed=""; \
	for check in "ruff check src tests bench scripts" "ruff format --check src tests bench scripts" "mypy" \
	             "lint-imports --no-logo" "python scripts/check_shape.py src"; do \
	  echo "== $$check"; $(BIN)/$$check || failed="$$failed; $$check"; \
	done; \
	if [ -n "$$failed" ]; then echo "lint failed:$${failed#;}" >&2; exit 1; fi

## test: lint, then the whole test suite under branch coverage (real go, upx, registry, skopeo, umoci, bubblewrap),
## one worker per core, each test module on one worker (its fixtures built once); every `ocibake` a test starts is
## measured too. Fails below the coverage floor.
test: lint
	rm -f .coverage .coverage.*
	COVERAGE_FILE=$(CURDIR)/.coverage $(BIN)/coverage run -m pytest -q -n auto --dist loadscope
	COVERAGE_FILE=$(CURDIR)/.coverage $(BIN)/coverage combine -q
	$(MAKE) --no-print-directory coverage

## coverage: the last `make test`'s branch coverage per package, the modules below the floor, and the floor check
coverage:
	COVERAGE_FILE=$(CURDIR)/.coverage $(BIN)/python scripts/coverage_by_package.py

## bench: timings, sizes and peak memory, printed as tables, with ratios against ko, crane and skopeo (many minutes);
## Python's bytecode is written and used, as users have it (PYTHONDONTWRITEBYTECODE emptied)
bench: export PYTHONDONTWRITEBYTECODE :=
bench: $(BIN)/ocibake
	$(BIN)/python -m compileall -q src
	$(BIN)/python bench/bench_cli.py
	$(BIN)/python bench/bench_build.py
	$(BIN)/python bench/bench_upx.py
	$(BIN)/python bench/bench_toolchain.py
	$(BIN)/python bench/bench_push.py
	$(BIN)/python bench/bench_archive.py
	$(BIN)/python bench/bench_run.py
	$(BIN)/python bench/bench_platforms.py
	$(BIN)/python bench/bench_audit.py
	$(BIN)/python bench/bench_scan.py
	$(BIN)/python bench/bench_layout.py
	$(BIN)/python bench/bench_speed.py

## dist: the release, a wheel and an sdist in $(DIST) (PEP 517 via `python -m build`, with the build tools of the
## venv, so it needs no network), checked by `twine check --strict`; install one with `pip install $(DIST)/ocibake-*.whl`
DIST ?= dist
dist: $(BIN)/ocibake
	rm -f $(DIST)/ocibake-*.whl $(DIST)/ocibake-*.tar.gz
	$(BIN)/python -m build --no-isolation --sdist --wheel --outdir $(DIST) .
	$(BIN)/twine check --strict $(DIST)/ocibake-*.whl $(DIST)/ocibake-*.tar.gz

clean:
	rm -rf dist build .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .coverage .coverage.*
