# `make demo`  : set up .venv if missing, install, run the solver comparison on a real layer.
# `make test`  : set up .venv if missing, install, build the docs (strict), run the whole test suite.
# `make docs`  : build the documentation site into build/site (mkdocs --strict: broken links fail).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check -c .ci/constraints.txt

.PHONY: install demo docs test bench report asv clean

$(STAMP): pyproject.toml .ci/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip setuptools wheel
	$(PIP) torch==2.13.0
	$(PIP) -e '.[test,docs]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m permsolve.demo

docs: install
	$(PY) docs/_hooks.py
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

test: install docs
	$(PY) -m pytest

bench: install
	$(VENV)/bin/permsolve bench --suite standard
	$(VENV)/bin/permsolve report

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
