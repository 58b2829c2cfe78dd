# The few commands a newcomer needs. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint unit integration system-deps recording emoji clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# The pipeline on the bundled recording under supervisord; open the URL it prints. Ctrl-C stops it.
run: setup
	scripts/run_pipeline.sh

# What CI runs (.ci/run): system packages, lint, types, then every test.
test: setup system-deps lint
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The quick loop: unit tests without the ones marked slow (fuzzing, TensorFlow detectors).
unit: setup
	$(BIN)/pytest -q -m 'not slow' tests/unit

integration: setup system-deps
	$(BIN)/pytest -q tests/integration

# Headless Chromium for the browser test, and the libraries OpenCV's wheel loads.
system-deps:
	@scripts/install_system_deps.sh

recording: setup
	$(BIN)/pip install -q -e '.[assets]'
	$(BIN)/python scripts/make_recording.py

emoji: setup
	$(BIN)/python scripts/make_emoji_assets.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
