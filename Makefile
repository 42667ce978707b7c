# Two commands for a new user: `make run` (install, build the default bundle if missing, serve)
# and `make test` (install, run every test). Both install into ./.venv with pinned versions.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test bench chromium wrk

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/cart-risk serve --host $(HOST) --port $(PORT)

# The browser tests need Debian's chromium; install it where we can (root), else they skip and say why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } \
	  || echo "chromium not installed: the browser tests will be skipped"

test: install chromium
	$(PY) -m pytest

# bench/bench_api.py measures throughput with Debian's wrk; install it where we can (root).
wrk:
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null) ; } \
	  || echo "wrk not installed: bench/bench_api.py needs it (or --client python)"

bench: install wrk
	$(PY) bench/run_all.py
