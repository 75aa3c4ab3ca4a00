# The project's commands. `make test` and `make run` work from a fresh clone: they install what
# they need (a venv from the hash-pinned requirements, the npm stand-ins).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
ORDERS ?=
OUT ?=

.PHONY: test run bench lint install lock clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements.txt -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed node_modules/.installed

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict shared

test: install lint
	$(PY) -m pytest

run: install
	$(PY) -m local.run $(if $(ORDERS),--orders $(ORDERS)) $(if $(OUT),--out $(OUT))

bench: install
	$(PY) -m local.bench

# Re-pin requirements.txt / requirements-dev.txt (with hashes) from the .in files.
lock: $(VENV)/.installed
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras -o requirements.txt requirements.in
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras -o requirements-dev.txt requirements-dev.in

clean:
	rm -rf $(VENV) node_modules .run .mypy_cache .ruff_cache .pytest_cache
