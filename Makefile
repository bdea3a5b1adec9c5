# Everything runs inside .venv, created here from a plain python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HTML := _build/html
PORT ?= 8000

.PHONY: install book test serve bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[book,test]"
	touch $(STAMP)

install: $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . --warningiserror --keep-going
	@echo "Book built: open $(CURDIR)/$(HTML)/index.html (or run 'make serve')"

test: $(STAMP)
	$(BIN)/python -m pytest -n 2

serve:
	@test -f $(HTML)/index.html || { echo "no built book in $(HTML): run 'make book' first"; exit 1; }
	@echo "Serving the book on http://localhost:$(PORT)/ (Ctrl-C to stop)"
	$(BIN)/python -m http.server --bind 127.0.0.1 --directory $(HTML) $(PORT)

bench: $(STAMP)
	cd benchmarks && ../$(BIN)/python bench_peaks.py && ../$(BIN)/python bench_gradients.py && ../$(BIN)/python bench_batch.py

clean:
	rm -rf _build .pytest_cache
