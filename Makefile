# lcefr: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.lcefr-installed
EXTRAS ?= headless,onnx,plot,detect,dev
PYTEST_ARGS ?=
# Two workers: conversions are mostly single-threaded, the machines have two cores.
PYTEST_WORKERS ?= 2

.PHONY: help install install-gui test test-fast demo demo-zoo study-train lint clean

help:
	@echo "make install      create $(VENV) with the pinned stack and dev extras"
	@echo "make test         the whole test suite, slow tests included"
	@echo "make test-fast    the suite without slow tests (for iteration)"
	@echo "make demo         build, convert (LCE), verify and time the demo models"
	@echo "make demo-zoo     the same for every registry model"
	@echo "make study-train  held-out accuracy of ir18 and a binary model before/after short training"
	@echo "make install-gui  swap opencv-python-headless for opencv-python (the [gui] extra)"

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=23.2"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	$(BIN)/lcefr env
	touch $@

install-gui: install
	$(BIN)/python -m pip uninstall -y opencv-python-headless
	$(BIN)/python -m pip install -q -e ".[gui]"

test: install
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

demo: install
	$(BIN)/lcefr demo

demo-zoo: install
	mkdir -p build
	$(BIN)/lcefr demo --all --compare --out build/demo-zoo | tee build/demo-zoo.txt

study-train: install
	$(BIN)/python scripts/study_train.py $(STUDY_ARGS)

lint: install
	$(BIN)/python -m pyflakes lcefr tests converters

clean:
	rm -rf build .pytest_cache
