# Two commands do all set-up on a fresh machine:
#   make demo   create .venv, install, run the example study and print its results
#   make test   create .venv if needed, install dev dependencies, run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv browser lint lowest bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# Headless Chromium for the browser tests (Debian package; Playwright cannot download browsers here).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium"; \
	  else echo "warning: /usr/bin/chromium missing; run as root: apt-get install -y chromium"; fi; \
	fi

demo: $(STAMP)
	$(BIN)/ablab run examples/digits/study.toml
	$(BIN)/ablab report examples/digits/study.toml

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -ra

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

# The declared dependency floors: a fresh venv with the lowest numpy/scipy/pandas/statsmodels/
# patsy that pyproject.toml allows runs the analysis tests (needs the package index).
lowest:
	bash tests/packaging/lowest.sh

bench: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[bench]"
	for b in overhead report hessian probe batched adaptive throughput; do $(BIN)/python benchmarks/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build dist src/*.egg-info
