# One command sets up and runs the demo; one sets up and runs the tests; `make docs` builds the site.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# stamps: torch + eventseq with LightGBM/CatBoost (what the demo needs); + the test tools (the dev
# extra: Spark, TensorBoard, notebooks, ...); + MkDocs
BASE := $(VENV)/.base
STAMP := $(VENV)/.installed
DOCS := $(VENV)/.docs

.PHONY: setup demo rec-demo test docs bench clean

$(BASE): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	# torch first, pinned: this spelling takes the CPU build on local disk.
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[downstream]'
	touch $(BASE)

$(STAMP): $(BASE)
	$(PIP) install -e '.[dev]'
	# the UEA archive's JapaneseVowels (eventseq.datasets.uea) is a file of this wheel; its pins (pandas < 3.1)
	# are not ours, and it is never imported
	$(PIP) install --no-deps sktime==1.2.0
	touch $(STAMP)

$(DOCS): $(BASE)
	$(PIP) install -e '.[docs]'
	touch $(DOCS)

setup: $(STAMP)

demo: $(BASE)
	$(VENV)/bin/eventseq demo

rec-demo: $(BASE)
	$(VENV)/bin/eventseq rec demo

test: $(STAMP)
	$(PY) -m pytest

docs: $(DOCS)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: $(STAMP)
	$(PY) benchmarks/prepare_speed.py

clean:
	rm -rf $(VENV) runs demo_output rec_demo_output site
