# The two commands of the README. Each one installs what it needs, idempotently:
#   make demo   builds the demo corpus and ingests it into ./demo-dataset
#   make test   runs the test suite
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test setup system-deps lint clean

demo: setup
	$(BIN)/emotions demo --out demo-dataset

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

setup: system-deps $(STAMP)

# ffmpeg/ffprobe from Debian; skipped when already on PATH.
system-deps:
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || \
	  ( $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq ffmpeg )

$(STAMP): pyproject.toml constraints.txt
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

clean:
	rm -rf $(VENV) demo-dataset .pytest_cache
