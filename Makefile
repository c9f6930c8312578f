# lcefr: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.lcefr-installed
EXTRAS ?= headless,onnx,plot,detect,dev
PYTEST_ARGS ?=
# Two workers: conversions are mostly single-threaded, the machines have two cores.
PYTEST_WORKERS ?= 2

.PHONY: help install install-gui test test-fast demo demo-zoo study-train models jetson-bench jetson-setup lint clean

help:
	@echo "make install      create $(VENV) with the pinned stack and dev extras"
	@echo "make test         the whole test suite, slow tests included"
	@echo "make test-fast    the suite without slow tests (for iteration)"
	@echo "make demo         build, convert (LCE), verify and time the demo models"
	@echo "make demo-zoo     the same for every registry model"
	@echo "make study-train  held-out accuracy of ir18 and a binary model before/after short training"
	@echo "make models       LCE, float and int8 .tflite files of the demo set in build/models/"
	@echo "make jetson-bench JETSON=\"user@host ...\" [JETSON_PORT=22] [JETSON_KEY=path] [JETSON_PYTHON=python3]"
	@echo "                  [MODELS=\"a.tflite ...\"] [CORE=3] [LCE_BENCHMARK=path]: FPS reports per board in reports/"
	@echo "make jetson-setup JETSON=...   check a board and install lce_benchmark_model on it"
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

# --- on-device benchmarking -------------------------------------------------------------------
MODEL_SET     ?= quicknet_small quicknet binary_densenet28 binaryfacenet binaryfacenet_lce
MODEL_FILES    = $(foreach m,$(MODEL_SET),build/models/$(m).tflite build/models/$(m).float.tflite build/models/$(m).int8.tflite)
JETSON        ?=
JETSON_PORT   ?= 22
JETSON_KEY    ?=
JETSON_PYTHON ?= python3
CORE          ?= 3
REPORTS       ?= reports
LCE_BENCHMARK ?=
BENCH_ARGS    ?=

models: install $(MODEL_FILES)

build/models/%.float.tflite:
	@mkdir -p build/models
	$(BIN)/lcefr convert $* --to tflite-float -o $@
build/models/%.int8.tflite:
	@mkdir -p build/models
	$(BIN)/lcefr convert $* --to tflite-int8 -o $@
build/models/%.tflite:
	@mkdir -p build/models
	$(BIN)/lcefr convert $* --to tflite -o $@

jetson-bench: install
	@test -n "$(JETSON)" || { echo 'usage: make jetson-bench JETSON="user@host [user@host2 ...]" [JETSON_PORT=22] [JETSON_KEY=path] [MODELS="a.tflite ..."]' >&2; exit 2; }
	@test -n "$(MODELS)" || $(MAKE) --no-print-directory models
	$(BIN)/lcefr bench --remote "$(JETSON)" --port $(JETSON_PORT) --python "$(JETSON_PYTHON)" --core $(CORE) \
		--reports $(REPORTS) $(if $(JETSON_KEY),--key "$(JETSON_KEY)") $(if $(LCE_BENCHMARK),--lce-benchmark "$(LCE_BENCHMARK)") \
		$(BENCH_ARGS) $(if $(MODELS),$(MODELS),$(MODEL_FILES))

jetson-setup: install
	@test -n "$(JETSON)" || { echo 'usage: make jetson-setup JETSON="user@host ..." [JETSON_PORT=22] [JETSON_KEY=path]' >&2; exit 2; }
	$(BIN)/lcefr jetson-setup $(JETSON) --port $(JETSON_PORT) --python "$(JETSON_PYTHON)" $(if $(JETSON_KEY),--key "$(JETSON_KEY)") $(SETUP_ARGS)

lint: install
	$(BIN)/python -m pyflakes lcefr tests converters

clean:
	rm -rf build .pytest_cache
