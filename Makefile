# Quick start: `make demo` (set-up + synthetic data + train + test + renders), `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.occnet-installed

.PHONY: demo test install clean-demo

install: $(STAMP)

$(STAMP): setup.py requirements/runtime.txt requirements/tests.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[tests]'
	@touch $@

demo: $(STAMP)
	$(PY) tools/demo.py

test: $(STAMP)
	$(PY) -m pytest -q tests

clean-demo:
	rm -rf work_dirs/demo data/openscene-synthetic
