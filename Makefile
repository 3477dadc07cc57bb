# Mallard: two entry points, `make demo` and `make test`; everything else is what they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: demo test data install bench clean docs notebooks

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

data/.fetched: scripts/fetch_data.sh
	PIP="$(PIP)" bash scripts/fetch_data.sh
	touch $@

data: data/.fetched

demo: install data
	$(VENV)/bin/mallard demo

# lint and types first (seconds), then the suite
test: install data
	$(VENV)/bin/ruff check engine udfs tests
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

# the generated pages of docs/ (SQL reference, settings) from the code, then the site in site/ (warnings are errors)
docs: install
	$(PY) scripts/docs_reference.py
	$(VENV)/bin/mkdocs build --strict

# execute every notebook and store its outputs (plots included); tests/test_notebooks.py checks they are current
notebooks: install data
	$(PY) -m tests.notebook_outputs notebooks/*.ipynb

bench: install data
	$(PIP) install --quiet -r bench/requirements.txt
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) build dist site *.egg-info
