# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv with uv (installed from PyPI into the user site if missing) on the system Python,
# bytecode compiled at install (start-up would otherwise recompile every module where PYTHONDONTWRITEBYTECODE is set).
PYTHON ?= python3
VENV := .venv
UV := $(PYTHON) -m uv
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean browser

DEMO_STAMP := $(VENV)/.installed-demo
TEST_EXTRAS := dev,spark,notebook

# The demo needs neither Spark (pyspark builds from source: minutes) nor the test tools.
define venv
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv || $(PYTHON) -m pip install --user --quiet uv
	$(UV) venv --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip install --compile-bytecode --python $(VENV)/bin/python -e ".[$(1)]"
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

# The dashboard's browser test drives JupyterLab in headless Chromium (Debian's chromium + chromium-driver).
CHROMEDRIVER ?= /usr/bin/chromedriver
browser:
	@if [ -x "$(CHROMEDRIVER)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium + chromium-driver for the browser test (apt-get)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else \
		echo "note: $(CHROMEDRIVER) missing and not root: install Debian's chromium + chromium-driver" \
		     "(sudo apt-get install chromium chromium-driver) or the browser test fails"; \
	fi

test: $(STAMP) browser
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

clean:
	rm -rf $(VENV) data/alerts.sqlite data/*.csv
