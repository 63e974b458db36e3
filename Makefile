# The two commands: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test install clean readme tools

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first, pinned to the CPU wheel, so the project's looser range resolves to it.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet 'torch==2.13.*'
	$(BIN)/pip install --quiet -e '.[text,test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/streamrec demo $(DEMO_ARGS)

# tests/unit/test_deploy.py validates docker-compose.yml with `docker-compose config` (Debian's
# package; no Docker engine needed). Installed only when missing and we may (root, apt-get);
# otherwise that test skips with a loud reason.
tools:
	@command -v docker-compose >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq docker-compose >/dev/null 2>&1 \
	      || { apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null; } \
	      || echo "WARNING: could not install docker-compose: test_deploy will skip the compose checks"; \
	  else \
	    echo "WARNING: docker-compose missing and not installable here (needs root and apt-get): test_deploy will skip the compose checks"; \
	  fi; }

test: $(STAMP) tools
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var results .pytest_cache

# Regenerate the settings and metrics tables of docs/operations.md from the code.
readme: $(STAMP)
	$(BIN)/python -m harness.readme_tables
