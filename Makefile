# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv with uv (installed from PyPI into the user site if missing) on the system Python.
PYTHON ?= python3
VENV := .venv
UV := $(PYTHON) -m uv
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

DEMO_STAMP := $(VENV)/.installed-demo
TEST_EXTRAS := dev,spark,notebook

# The demo needs neither Spark (pyspark builds from source: minutes) nor the test tools.
define venv
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv || $(PYTHON) -m pip install --user --quiet uv
	$(UV) venv --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip install --python $(VENV)/bin/python -e ".[$(1)]"
endef

$(DEMO_STAMP): pyproject.toml
	$(call venv,notebook)
	@touch $(DEMO_STAMP)

$(STAMP): pyproject.toml
	$(call venv,$(TEST_EXTRAS))
	@touch $(STAMP) $(DEMO_STAMP)

setup: $(STAMP)

demo: $(DEMO_STAMP)
	$(VENV)/bin/python -m market_surveillance.main

test: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

clean:
	rm -rf $(VENV) data/alerts.sqlite data/*.csv
