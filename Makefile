# Two commands for a new user: `make run` (install, build the default bundle if missing, serve)
# and `make test` (install, run every test). Both install into ./.venv exactly the versions and
# files (sha256) of requirements/dev.txt, then the project itself without resolving anything.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

# The locks (requirements/*.txt) are written by uv from pyproject.toml; `make lock` refreshes them
# keeping every pin that still satisfies pyproject.toml, `make lock UPGRADE=1` moves to the newest.
UV_VERSION ?= 0.13.8
LOCK_VENV ?= .venv-lock
LOCK := $(LOCK_VENV)/bin/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 \
	--quiet --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)

.PHONY: install run test bench chromium wrk lock

$(VENV)/.installed: pyproject.toml requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet --require-hashes -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
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

# requirements/serve.txt: the base install (serve, predict, score from an existing bundle);
# train.txt adds the `train` extra; dev.txt adds `test` too (make install, make test, CI).
lock:
	test -x $(LOCK_VENV)/bin/uv || { $(PYTHON) -m venv $(LOCK_VENV) && \
	  $(LOCK_VENV)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"; }
	$(LOCK) -o requirements/serve.txt
	$(LOCK) --extra train -o requirements/train.txt
	$(LOCK) --extra train --extra test -o requirements/dev.txt
