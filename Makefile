# Two commands on a fresh machine (Python 3.11+ and make): `make drill` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_LOGGING_EXTRA_LOGGERS := firebreak

.PHONY: setup drill test test-all test-postgres test-fast bench lock clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

drill: $(STAMP)
	$(BIN)/firebreak drill --report .firebreak/drill-report.json

# The whole suite; the chaos, crash and benchmark tests (marked slow) with small counts.
test: $(STAMP)
	$(BIN)/python -m pytest

# The whole suite with the slow tests at their full counts (200 fault schedules, 51 publish
# crashes, 32 crashes per freeze stage, bigger benchmarks). CI runs it after `make test`.
test-all: $(STAMP)
	FIREBREAK_TEST_FULL=1 $(BIN)/python -m pytest

# The same suite with every database on PostgreSQL (a fresh database per test that builds one;
# server: FIREBREAK_TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/postgres).
test-postgres: $(STAMP)
	FIREBREAK_TEST_DATABASE=postgresql $(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not integration and not slow"

bench: $(STAMP)
	$(BIN)/firebreak bench all --runs 3

# Re-resolve the lock from pyproject.toml in a scratch venv (run by a developer, not by CI).
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet --disable-pip-version-check -e '.[test,train]'
	.lockenv/bin/pip freeze --exclude-editable | grep -v '^firebreak' > requirements.lock
	rm -rf .lockenv

clean:
	rm -rf $(VENV) .firebreak .pytest_cache
