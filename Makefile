# groundtruth: every target is idempotent and works as root on a fresh Debian 12 machine.
VENV      := .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
# Debian's python3: bcc's bindings live in its dist-packages.
SYS_PY    := /usr/bin/python3

.PHONY: setup run test lint bench artifacts clean

setup: $(STAMP)
	@bash scripts/setup-host.sh

$(STAMP): pyproject.toml scripts/setup-host.sh
	bash scripts/setup-host.sh
	[ -x $(PY) ] || $(SYS_PY) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[embedded,test]'
	touch $(STAMP)

# The main job: exporter and graph API on the embedded store.
run: setup
	$(VENV)/bin/groundtruth up

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) scripts/mypy_baseline.py

test: setup lint
	$(PY) -m pytest -ra $(PYTEST_ARGS)

bench: setup
	$(PY) -m bench

# Regenerate the committed dashboards and alert rules (make test fails when they are stale).
artifacts: setup
	$(VENV)/bin/groundtruth dashboards build
	$(VENV)/bin/groundtruth alerts build

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
