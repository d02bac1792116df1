# `make demo`  : set up .venv if missing, install, run the solver comparison on a real layer.
# `make test`  : set up .venv if missing, install, run the whole test suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check -c .ci/constraints.txt

.PHONY: install demo test bench report asv clean

$(STAMP): pyproject.toml .ci/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip setuptools wheel
	$(PIP) torch==2.13.0
	$(PIP) -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m permsolve.demo

test: install
	$(PY) -m pytest

bench: install
	$(VENV)/bin/permsolve bench --suite standard
	$(VENV)/bin/permsolve report

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
