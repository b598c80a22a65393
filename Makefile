# The two commands of the README. Each one installs what it needs, idempotently:
#   make demo   builds the demo corpus, ingests and annotates it into ./demo-dataset
#   make test   checks the code (ruff) and runs the whole test suite (and installs the Label Studio server it starts)
#   make test-fast  the everyday lane: unit and small integration tests, no servers, no browser, no slow tests
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The Label Studio server pins dependencies that clash with ours (numpy, pyarrow): it gets its own virtualenv and
# runs as a subprocess (annotation/labelstudio/process.py), under Django's development server on loopback or gunicorn
# (pinned with it) as the production server. The stamp names the version, so changing it reinstalls.
LS_VENV    ?= .venv-ls
LS_VERSION := 1.23.2
LS_STAMP   := $(LS_VENV)/.installed-label-studio-$(LS_VERSION)

.PHONY: demo test test-fast setup ls-server system-deps lint clean bench-peers docs docs-serve docs-screenshots

demo: setup ls-server
	$(BIN)/emotions demo --out demo-dataset

# Three workers on two cores: a fifth of the suite's time is spent waiting on servers and subprocesses.
test: setup ls-server lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 3 --dist loadfile

# Needs no Label Studio: the tests that start a server (or a browser) are marked `server` and left out, with the
# long end-to-end ones (`slow`) and those that run the command line as processes (`cli`); see tests/conftest.py.
test-fast: setup lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile -m "not slow and not server and not cli"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The documentation site (mkdocs.yml), built in strict mode into ./site: a broken link, a missing page or a
# reference to a moved function fails it. The suite builds it too (tests/test_docs.py).
export NO_MKDOCS_2_WARNING := 1
docs: setup
	$(BIN)/mkdocs build --strict --site-dir site

docs-serve: setup
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

# The annotator's guide shows the real labelling screen: the browser test saves its screenshots into docs/images.
docs-screenshots: setup ls-server
	EMOTIONS_SCREENSHOT_DIR=$(CURDIR)/docs/images $(BIN)/python -m pytest -q -p no:cacheprovider \
	  tests/annotation/test_browser.py -k independently
	rm -f docs/images/BR2-labelling.png

setup: system-deps $(STAMP)

# ffmpeg/ffprobe from Debian; strace for the crash tests (they kill commands at each commit point from outside);
# Debian's chromium (with fonts-liberation, so text has metrics) for the browser test, which drives this system
# browser through Playwright: `playwright install` would download browsers, which CI's network does not allow.
# openssl also makes the loopback proxy's throwaway TLS certificate (platform fixtures served over HTTPS).
# postgresql (initdb, pg_ctl, and the pg_dump/pg_restore/psql that backups use) for the PostgreSQL tests, which make
# their own cluster; nginx and openssl for the TLS reverse-proxy test; the OpenSSH server and client for the SSH-tunnel
# test (its sshd runs on a loopback port of its own, never as a service). Skipped when already installed.
system-deps:
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null && command -v strace >/dev/null && \
	  [ -x /usr/bin/chromium ] && [ -d /usr/share/fonts/truetype/liberation ] && \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ -x /usr/sbin/nginx ] && command -v openssl >/dev/null && \
	  [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null || \
	  ( $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    ffmpeg strace chromium fonts-liberation postgresql nginx openssl openssh-server openssh-client )

$(STAMP): pyproject.toml constraints.txt
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,baseline,ray,s3,docs]'
	@touch $@

ls-server: $(LS_STAMP)

$(LS_STAMP): constraints-ls.txt
	@[ -x $(LS_VENV)/bin/python ] || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install -q --upgrade pip
	$(LS_VENV)/bin/python -m pip install -q -c constraints-ls.txt 'label-studio==$(LS_VERSION)' gunicorn
	@rm -f $(LS_VENV)/.installed-label-studio-*
	@touch $@

# Only for benchmarks/ingest_peers.py: video2dataset in a virtualenv of its own (it pins torch and NumPy 1), so it
# never touches the project's. Not needed by `make test` or `make demo`.
PEERS_VENV  ?= .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed-stamp

bench-peers: setup $(PEERS_STAMP)

$(PEERS_STAMP): constraints-peers.txt
	@[ -x $(PEERS_VENV)/bin/python ] || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q -c constraints-peers.txt video2dataset
	@touch $@

clean:
	rm -rf $(VENV) $(LS_VENV) $(PEERS_VENV) demo-dataset .pytest_cache site
