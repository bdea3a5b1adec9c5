# Everything runs inside .venv, created here from a plain python3, installed from the
# committed lock (requirements.lock: every package pinned, for Linux x86_64 and the Python
# 3.11 the Makefile finds as python3). `make lock` refreshes it from pyproject.toml's ranges.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
EXTRAS := book,test,energy,course,bench
# pip itself and the lock tool are pinned too (pip is not a dependency, so not in the lock).
PIP_VERSION := 26.3
PIP_TOOLS_VERSION := 7.6.2
HTML := _build/html
PORT ?= 8000

.PHONY: install book test lint test-portable test-latest lock serve lab bench clean chromium site-check vendor-widgets assignments grade pdf

# setuptools comes from the lock and builds xrdcore without an isolated (unpinned) build env.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "pip==$(PIP_VERSION)"
	$(BIN)/python -m pip install --quiet -c $(LOCK) setuptools
	$(BIN)/python -m pip install --quiet --no-build-isolation -c $(LOCK) -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

book: $(STAMP)
	@$(BIN)/jupyter-book build . --warningiserror --keep-going || { \
	  echo "make book FAILED: see the 'did not execute' / warning lines above; the other pages are in $(HTML)" >&2; exit 1; }
	@echo "Book built: open $(CURDIR)/$(HTML)/index.html (or run 'make serve')"

test: $(STAMP) chromium lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup
	$(MAKE) --no-print-directory test-portable

# The package's shape (README: Architecture): layers (import-linter), style (ruff: line length
# 100, absolute imports), types (mypy on xrdcore). Settings in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

# Portability: the symmetry tests and every chapter's verdict cells again with numba
# compiling for a generic x86-64 CPU (no AVX/FMA) and OpenBLAS forced to its oldest kernels.
test-portable: $(STAMP)
	NUMBA_CPU_NAME=generic OPENBLAS_CORETYPE=Prescott NUMBA_CACHE_DIR=$(CURDIR)/_build/numba-generic \
	  $(BIN)/python -m pytest -n 2 -q tests/test_symmetry.py tests/test_portability.py

# Drift watch (not in CI): the newest releases pyproject.toml allows, without the lock, in .venv-latest.
test-latest: chromium
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install --quiet --upgrade pip
	.venv-latest/bin/python -m pip install --quiet -e ".[$(EXTRAS)]"
	XRDCORE_UNLOCKED=1 .venv-latest/bin/python -m pytest -n 2 --dist loadgroup

# Regenerate the lock from pyproject.toml (newest allowed releases), with pinned pip-tools.
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet "pip==$(PIP_VERSION)" "pip-tools==$(PIP_TOOLS_VERSION)"
	.venv-lock/bin/pip-compile --quiet --upgrade --strip-extras --allow-unsafe --no-emit-find-links \
	  --no-emit-index-url --extra book --extra test --extra energy --extra course --extra lab --extra cluster --extra bench \
	  -o $(LOCK) pyproject.toml

# Course assignments (Otter-Grader): student notebooks and autograder zips in _build/assignments.
assignments: $(STAMP)
	$(BIN)/python book/assignments/make_assignments.py --output _build/assignments

# Grade a folder of submissions into a CSV gradebook, with per-question feedback, e.g.
# make grade ASSIGNMENT=a1_diffraction SUBMISSIONS=~/a1_submissions (after make assignments).
ASSIGNMENT ?= a1_diffraction
SUBMISSIONS ?= submissions
GRADEBOOK ?= $(SUBMISSIONS)/gradebook.csv
grade: $(STAMP)
	@zip=$$(ls _build/assignments/$(ASSIGNMENT)/autograder/*-autograder_*.zip 2>/dev/null | head -1); \
	test -n "$$zip" || { echo "no autograder for $(ASSIGNMENT): run 'make assignments' first" >&2; exit 1; }; \
	$(BIN)/python book/assignments/make_assignments.py --grade-folder "$$zip" $(SUBMISSIONS) --gradebook $(GRADEBOOK)

# The whole book as one PDF (_build/book.pdf): the single-page HTML build printed offline by
# headless Chromium; executed outputs come from the same cache as the site.
pdf: $(STAMP) chromium
	$(BIN)/jupyter-book build . --builder singlehtml --warningiserror --keep-going
	$(BIN)/python book/_ext/print_pdf.py --html _build/singlehtml --output _build/book.pdf

# Load every page of the built book in headless Chromium, offline (tests/site_check.py).
site-check: book chromium
	$(BIN)/python tests/site_check.py --html $(HTML)

# Headless Chromium for the site check: Debian's package, installed when absent and running
# as root (CI); otherwise the site check fails and says how to get it. CHROMIUM=... overrides.
chromium:
	@if [ -n "$$CHROMIUM" ] || command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian's chromium (headless browser for the site check)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	    || echo "warning: could not install chromium; the site check will fail" >&2; \
	else echo "warning: chromium not found; the site check will fail (apt-get install chromium, or set CHROMIUM=/path)" >&2; fi

# Refresh book/_static/widgets/ from the npm registry (needs npm; only to change versions).
vendor-widgets: $(STAMP)
	$(BIN)/python book/_ext/vendor_widgets.py

serve:
	@test -f $(HTML)/index.html || { echo "no built book in $(HTML): run 'make book' first"; exit 1; }
	@echo "Serving the book on http://localhost:$(PORT)/ (Ctrl-C to stop)"
	$(BIN)/python -m http.server --bind 127.0.0.1 --directory $(HTML) $(PORT)

# Run the chapters with a live kernel: the .md chapters open as notebooks (jupytext).
# LAB_ARGS passes options to JupyterLab (e.g. LAB_ARGS=--no-browser); as root (a container)
# --allow-root is added, since JupyterLab refuses root otherwise.
LAB_ARGS ?=
lab: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-build-isolation -c $(LOCK) -e ".[lab]"
	$(BIN)/jupyter lab --notebook-dir=book $(LAB_ARGS) $(if $(filter 0,$(shell id -u)),--allow-root)

bench: $(STAMP)
	cd benchmarks && ../$(BIN)/python bench_peaks.py && ../$(BIN)/python bench_gradients.py && ../$(BIN)/python bench_jax.py \
	  && ../$(BIN)/python bench_roofline.py && ../$(BIN)/python bench_batch.py && ../$(BIN)/python bench_study.py \
	  && ../$(BIN)/python bench_fastmath.py

clean:
	rm -rf _build .pytest_cache
