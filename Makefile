# bearsite: `make run` sets up everything and runs the site on the embedded default;
# `make test` sets up everything and runs the suite.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test test-fast lint bench lock clean demo

$(STAMP): requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $(STAMP)

setup: $(STAMP)

# The main job: migrate, an admin account, the demo survey, a first model, then the web server,
# a cpu worker, a gpu worker and beat in this terminal (Ctrl-C stops them all).
run: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py ensure_admin
	$(PY) manage.py make_demo_survey --if-missing
	$(PY) manage.py demo_model --if-missing
	$(PY) -m bearsite.launcher

# The suite on the embedded default (SQLite, filesystem broker), or on PostgreSQL and Redis when
# DATABASE_URL and REDIS_URL are set. Each run starts from an empty data folder.
test: setup
	rm -rf var/test && mkdir -p var/test
	BEARSITE_DATA_DIR=$(CURDIR)/var/test $(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup
	$(PY) bench/ingest.py --quick
	$(PY) bench/inference.py --quick
	$(PY) bench/training.py --quick

# Re-pin requirements.txt from requirements.in.
lock:
	rm -rf /tmp/bearsite-lock && $(PYTHON) -m venv /tmp/bearsite-lock
	/tmp/bearsite-lock/bin/pip install -q -r requirements.in
	{ echo "# Pinned from requirements.in with \`pip freeze\` (Python 3.11). Regenerate: make lock"; \
	  /tmp/bearsite-lock/bin/pip freeze; } > requirements.txt

clean:
	rm -rf var
