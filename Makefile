# FreezeDesk — two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
export FREEZEDESK_DATABASE_URL ?= sqlite:///var/freezedesk.db

.PHONY: run test venv migrate demo serve lint bench clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

## make run: install, migrate the SQLite database, load demo data, serve on http://$(HOST):$(PORT)
# The demo keeps its webhook secret key in var/secret.key (created by `freezedesk demo`) and lets
# webhooks reach receivers on this machine (a local demo; the default allows public hosts only).
run: export FREEZEDESK_SECRET_KEY_FILE ?= var/secret.key
run: export FREEZEDESK_WEBHOOK_ALLOW_HOSTS ?= localhost,127.0.0.1,::1
run: $(STAMP)
	$(VENV)/bin/freezedesk migrate
	@echo "== demo API keys (also in var/demo-keys.json) =="
	@$(VENV)/bin/freezedesk demo
	@echo "== try: curl -H \"Authorization: Bearer <partner key>\" 'http://$(HOST):$(PORT)/v1/accounts/acct-1003/permissions?action=withdraw'"
	$(VENV)/bin/freezedesk serve --host $(HOST) --port $(PORT)

## make test: the whole suite, on SQLite and on PostgreSQL
test: $(STAMP)
	@scripts/ensure-services.sh
	$(PY) -m pytest -n 2 --dist loadgroup -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

# nomenklatura (the logic-v2 baseline the screening eval compares against) builds PyICU from source
$(VENV)/.bench-installed: $(STAMP) bench/requirements.txt
	@dpkg -s libicu-dev pkg-config >/dev/null 2>&1 || { apt-get update && apt-get install -y libicu-dev pkg-config g++; }
	$(PY) -m pip install --quiet -r bench/requirements.txt
	touch $@

## make bench: print every benchmark's figures (never asserted in tests)
bench: $(VENV)/.bench-installed
	$(PY) bench/bench_permissions.py
	$(PY) bench/bench_http.py
	$(PY) bench/bench_lists.py
	$(PY) bench/screening_eval.py
	$(PY) bench/bench_synth.py
	$(PY) bench/bench_monitoring.py
	$(PY) bench/bench_enforcement.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
