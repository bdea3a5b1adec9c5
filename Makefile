# Everything runs inside .venv, created here from a plain python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HTML := _build/html
PORT ?= 8000

.PHONY: install book test serve lab bench clean chromium site-check vendor-widgets assignments

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[book,test,energy,course]"
	touch $(STAMP)

install: $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . --warningiserror --keep-going
	@echo "Book built: open $(CURDIR)/$(HTML)/index.html (or run 'make serve')"

test: $(STAMP) chromium
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# Course assignments (Otter-Grader): student notebooks and autograder zips in _build/assignments.
assignments: $(STAMP)
	$(BIN)/python book/assignments/make_assignments.py --output _build/assignments

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
lab: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[lab]"
	$(BIN)/jupyter lab --notebook-dir=book

bench: $(STAMP)
	cd benchmarks && ../$(BIN)/python bench_peaks.py && ../$(BIN)/python bench_gradients.py && ../$(BIN)/python bench_batch.py

clean:
	rm -rf _build .pytest_cache
