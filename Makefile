# lcefr: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.lcefr-installed
EXTRAS ?= headless,onnx,plot,detect,dev
PYTEST_ARGS ?=
# Two workers: conversions are mostly single-threaded, the machines have two cores.
PYTEST_WORKERS ?= 2

.PHONY: help install install-gui test test-fast demo demo-zoo study-train study-teacher study-hbb study-distill study-personal study-personal-hbb study-quantize models jetson-bench jetson-setup board-emu board-emu-down lint clean

help:
	@echo "make install      create $(VENV) with the pinned stack and dev extras"
	@echo "make test         the whole test suite, slow tests included"
	@echo "make test-fast    the suite without slow tests (for iteration)"
	@echo "make demo         build, convert (LCE), verify and time the demo models"
	@echo "make demo-zoo     the same for every registry model"
	@echo "make study-train  held-out accuracy of ir18 and a binary model before/after short training"
	@echo "make study-teacher  train the ir18 teacher / h_bb of the distillation and personal studies (~40 min)"
	@echo "make study-distill  train an ir18 teacher (~40 min), then quicknet_small with/without EKD from it (3 seeds)"
	@echo "make study-hbb  fine-tune that ir18 on 300 look-alike identities: a stronger h_bb (~35 min)"
	@echo "make study-personal-hbb  the personal study with the study-hbb backbone as h_bb"
	@echo "make study-personal  hypernetwork personal verifiers vs f trained directly (3 seeds, held-out identities)"
	@echo "make study-quantize  Ef-QuantFace QAT of ir18: w8a8/w6a6/w4a4 x 25/50/75/100% of the data"
	@echo "make models       LCE, float and int8 .tflite files of the demo set in build/models/"
	@echo "make jetson-bench JETSON=\"user@host ...\" [JETSON_PORT=22] [JETSON_KEY=path] [JETSON_PYTHON=python3]"
	@echo "                  [MODELS=\"a.tflite ...\"] [CORE=3] [LCE_BENCHMARK=path]: FPS reports per board in reports/"
	@echo "make jetson-setup JETSON=...   check a board and install lce_benchmark_model on it [LCE_BENCHMARK=local binary]"
	@echo "make board-emu    start an emulated Cortex-A57 board (root; built on first use); JETSON=emulated targets it"
	@echo "make board-emu-down  stop it"
	@echo "make gpu-check    on an NVIDIA GPU: build the CUDA kernels, compare with the CPU reference, time vs cuDNN"
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

test: install cuda-ref cuda
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test-fast: install cuda-ref
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

demo: install
	$(BIN)/lcefr demo

demo-zoo: install
	mkdir -p build
	$(BIN)/lcefr demo --all --compare --out build/demo-zoo | tee build/demo-zoo.txt

study-train: install
	$(BIN)/python scripts/study_train.py $(STUDY_ARGS)

# The teacher run is skipped once complete (lcefr train does not retrain a finished run).
TEACHER_DIR ?= build/study-train/ir18-teacher-seed0
study-teacher: install
	$(BIN)/lcefr train --model ir18 --data synthetic --head cosface --epochs 6 --batch-size 32 \
		--steps-per-epoch 50 --seed 0 --out $(TEACHER_DIR)

study-distill: study-teacher
	$(BIN)/python scripts/study_train.py --skip-float --steps 200 --distill --teacher $(TEACHER_DIR)/backbone.keras $(STUDY_ARGS)

# A stronger h_bb for the personal study: the teacher fine-tuned on look-alike pairs of people it never saw
# (identities 200..499; the personal study trains on 0..199 and holds out identities from 1,000,000 on).
HBB_DIR  ?= build/study-train/ir18-lookalike
HBB_DATA ?= build/hbb-lookalike-faces
study-hbb: study-teacher
	test -f $(HBB_DATA).complete || ($(BIN)/lcefr data synth --identities 300 --first-identity 200 --per-identity 10 \
		--lookalikes --seed 0 --out $(HBB_DATA) && touch $(HBB_DATA).complete)
	$(BIN)/lcefr train --model ir18 --data $(HBB_DATA) --head cosface --epochs 8 --batch-size 32 --steps-per-epoch 50 \
		--lr 3e-4 --seed 0 --init-from $(TEACHER_DIR)/backbone.keras --out $(HBB_DIR) scale=32

study-personal: study-teacher
	$(BIN)/python scripts/study_personal.py --backbone $(TEACHER_DIR)/backbone.keras $(STUDY_ARGS)

# The stronger-h_bb run of the personal study in docs/studies.md: same data and seeds, h_bb from study-hbb.
study-personal-hbb: study-hbb
	$(BIN)/python scripts/study_personal.py --backbone $(HBB_DIR)/backbone.keras --work build/study-personal-hbb \
		--results build/study-personal-hbb.jsonl $(STUDY_ARGS)

study-quantize: install
	$(BIN)/python scripts/study_quantize.py $(STUDY_ARGS)

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
	$(if $(filter trt,$(RUNTIME)),@test -n "$(TRT_ONNX)" || $(MAKE) --no-print-directory $(TRT_ONNX_FILES))
	$(BIN)/lcefr bench --remote "$(JETSON)" --port $(JETSON_PORT) --python "$(JETSON_PYTHON)" --core $(CORE) \
		--reports $(REPORTS) $(if $(JETSON_KEY),--key "$(JETSON_KEY)") $(if $(LCE_BENCHMARK),--lce-benchmark "$(LCE_BENCHMARK)") \
		$(if $(filter trt,$(RUNTIME)),$(foreach f,$(or $(TRT_ONNX),$(TRT_ONNX_FILES)),--trt-onnx "$(f)")) \
		$(BENCH_ARGS) $(if $(MODELS),$(MODELS),$(MODEL_FILES))

jetson-setup: install
	@test -n "$(JETSON)" || { echo 'usage: make jetson-setup JETSON="user@host ..." [JETSON_PORT=22] [JETSON_KEY=path]' >&2; exit 2; }
	@test -f build/models/quicknet_small.tflite || $(MAKE) --no-print-directory build/models/quicknet_small.tflite
	$(BIN)/lcefr jetson-setup $(JETSON) --port $(JETSON_PORT) --python "$(JETSON_PYTHON)" $(if $(JETSON_KEY),--key "$(JETSON_KEY)") \
		$(if $(LCE_BENCHMARK),--lce-benchmark "$(LCE_BENCHMARK)") $(SETUP_ARGS)

# The emulated Cortex-A57 board (qemu user-mode, Debian bookworm arm64, sshd on 127.0.0.1): root, built
# once into build/board/ (debootstrap from the host's own apt mirror), then JETSON=emulated targets it.
board-emu: install
	$(BIN)/lcefr board emulate up

board-emu-down: install
	$(BIN)/lcefr board emulate down

lint: install
	$(BIN)/python -m pyflakes lcefr tests converters

clean:
	rm -rf build .pytest_cache

# --- CUDA kernels (issue 7) -------------------------------------------------------------------
# cuda-ref:  CPU reference library of the kernels (g++ only, what lcefr.cuda_ref loads)
# cuda:      compile-check jetson/cuda/*.cu for CUDA_ARCHS (no GPU needed) with NVCC, else the nvcc
#            on PATH, else /usr/local/cuda/bin/nvcc, else the pinned CUDA 13.0 nvcc wheels from PyPI,
#            installed once into CUDA_PYPI (~250 MB)
# cuda-sm53: opt-in, not in CI: unpack Debian's CUDA 11.8 into CUDA_TOOLKIT (~860 MB download,
#            3.7 GB) and compile for the Jetson Nano's sm_53 (nvcc 13 cannot target it)
.PHONY: cuda cuda-ref cuda-sm53
CUDA_DIR     := jetson/cuda
CUDA_BUILD   := build/cuda
CUDA_HEADERS := $(CUDA_DIR)/bconv_api.h $(CUDA_DIR)/bconv_common.h
# nvcc 13 needs its companions of the same release: crt and runtime headers, cccl (<nv/target>), nvvm (cicc)
CUDA_PYPI      := build/cuda-nvcc
CUDA_PYPI_PINS := nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-cuda-runtime==13.0.96 \
                  nvidia-cuda-cccl==13.0.85 nvidia-nvvm==13.0.88
CUDA_PYPI_STAMP := $(CUDA_PYPI)/.installed-13.0.88
CUDA_PYPI_NVCC := $(CUDA_PYPI)/nvidia/cu13/bin/nvcc
NVCC         ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc),$(CUDA_PYPI_NVCC))
CUDA_ARCHS   ?= 75 87 90
NVCC_FLAGS   ?= -std=c++14 -O3 -Xcompiler -fPIC,-Wall
CUDA_TOOLKIT ?= build/cuda-toolkit
# absolute path: the toolkit's bin/ has a Debian g++ wrapper that wants g++-11 or older
CUDA_CCBIN   ?= $(shell command -v $(firstword $(CXX)))

cuda-ref: $(CUDA_BUILD)/liblcefr_bconv_ref.so

$(CUDA_BUILD)/liblcefr_bconv_ref.so: $(CUDA_DIR)/bconv_ref.cpp $(CUDA_HEADERS)
	@mkdir -p $(@D)
	$(CXX) -std=c++14 -O2 -Wall -Wextra -fPIC -shared -o $@ $<

cuda: $(CUDA_BUILD)/bconv_kernels.o

$(CUDA_BUILD)/bconv_kernels.o: $(CUDA_DIR)/bconv_kernels.cu $(CUDA_HEADERS) | $(if $(filter $(CUDA_PYPI_NVCC),$(NVCC)),$(CUDA_PYPI_STAMP))
	@mkdir -p $(@D)
	@test -x "$(NVCC)" || { echo "make cuda: nvcc not found (set NVCC=/path/to/nvcc)" >&2; exit 2; }
	$(NVCC) $(NVCC_FLAGS) $(foreach a,$(CUDA_ARCHS),-gencode arch=compute_$(a),code=sm_$(a)) -c $< -o $@

# pip --target skips a top-level folder (nvidia/) that already exists, hence one pip call into an empty folder.
# pip: $(PYTHON)'s, else the venv's (Debian's python3 may come without pip).
$(CUDA_PYPI_STAMP):
	@echo "make cuda: no nvcc on PATH or in /usr/local/cuda: installing CUDA 13.0 nvcc from PyPI into $(CUDA_PYPI)"
	@rm -rf $(CUDA_PYPI)
	@if $(PYTHON) -m pip --version >/dev/null 2>&1; then pip="$(PYTHON) -m pip"; \
	elif $(BIN)/python -m pip --version >/dev/null 2>&1; then pip="$(BIN)/python -m pip"; \
	else echo "make cuda: no nvcc, and no pip to fetch one ($(PYTHON) -m pip): install python3-pip or set NVCC=/path/to/nvcc" >&2; exit 2; fi; \
	PIP_ROOT_USER_ACTION=ignore $$pip install -q --disable-pip-version-check --no-deps --only-binary=:all: \
		--target $(CUDA_PYPI) $(CUDA_PYPI_PINS)
	@test -x $(CUDA_PYPI_NVCC) || { echo "make cuda: $(CUDA_PYPI_NVCC) missing after the pip install" >&2; exit 2; }
	@touch $@

cuda-sm53: $(CUDA_BUILD)/bconv_kernels_sm53.o

$(CUDA_BUILD)/bconv_kernels_sm53.o: $(CUDA_DIR)/bconv_kernels.cu $(CUDA_HEADERS) $(CUDA_TOOLKIT)/bin/nvcc
	@mkdir -p $(@D)
	$(CUDA_TOOLKIT)/bin/nvcc -ccbin $(CUDA_CCBIN) -allow-unsupported-compiler -Wno-deprecated-gpu-targets \
		$(NVCC_FLAGS) -gencode arch=compute_53,code=sm_53 -c $< -o $@

$(CUDA_TOOLKIT)/bin/nvcc:
	sh $(CUDA_DIR)/fetch_cuda118.sh $(CUDA_TOOLKIT)

# --- TensorRT plugin (issue 8) ---
# make trt                              build build/trt/libbinaryconv_plugin.so (needs TensorRT + nvcc)
#   [TENSORRT_ROOT=/opt/TensorRT] [TRT_CMAKE_ARGS="-DLCEFR_CUDA_ARCHS=53"]
# TRT_HEADERS=/path/include make trt-check   compile the plugin against TensorRT headers (no linking)
# make jetson-bench JETSON=... RUNTIME=trt   also export build/models/<m>.onnx (onnx-binary) of MODEL_SET
#   [TRT_ONNX="a.onnx ..."], build the plugin on the board and time them there with trtexec (GPU rows)
# make jetson-microbench JETSON=... [MICROBENCH_ARGS="--figures 4,5"]   plugin vs TensorRT FP16/INT8
#   Conv on seed 000's Fig. 4-7 layer shapes: reports/jetson-microbench-<host>-<UTC>.{json,md}
.PHONY: trt trt-check jetson-microbench
TENSORRT_ROOT  ?=
TRT_HEADERS    ?=
TRT_BUILD      ?= build/trt
TRT_CMAKE_ARGS ?=
CUDA_HOME      ?= /usr/local/cuda
CMAKE          ?= cmake

trt:
	@command -v $(CMAKE) >/dev/null 2>&1 || { echo "error: cmake not found: install it (apt-get install cmake) or set CMAKE=/path/to/cmake" >&2; exit 2; }
	@mkdir -p $(TRT_BUILD)
	@cd $(TRT_BUILD) && $(CMAKE) $(CURDIR)/jetson/trt $(if $(TENSORRT_ROOT),-DTENSORRT_ROOT=$(abspath $(TENSORRT_ROOT))) $(TRT_CMAKE_ARGS) >configure.log 2>&1 \
		|| { if [ -f TENSORRT_MISSING ]; then cat TENSORRT_MISSING >&2; exit 2; fi; tail -n 30 configure.log >&2; echo "error: cmake configure failed (log: $(TRT_BUILD)/configure.log)" >&2; exit 1; }
	@grep -E "TensorRT|CUDA" $(TRT_BUILD)/configure.log | sed 's/^-- //'
	$(CMAKE) --build $(TRT_BUILD) -- -j2
	@echo "plugin: $(TRT_BUILD)/libbinaryconv_plugin.so"

trt-check:
	@test -n "$(TRT_HEADERS)" || { echo "usage: TRT_HEADERS=/path/to/TensorRT/include make trt-check [CUDA_HOME=/usr/local/cuda]" >&2; exit 2; }
	@test -f "$(TRT_HEADERS)/NvInferVersion.h" || { echo "error: $(TRT_HEADERS)/NvInferVersion.h not found (TRT_HEADERS must be TensorRT's include folder)" >&2; exit 2; }
	@test -f "$(CUDA_HOME)/include/cuda_runtime_api.h" || { echo "error: $(CUDA_HOME)/include/cuda_runtime_api.h not found: set CUDA_HOME to a CUDA toolkit" >&2; exit 2; }
	@mkdir -p $(TRT_BUILD)/check
	@version=$$(printf '#include "NvInferVersion.h"\nNV_TENSORRT_MAJOR.NV_TENSORRT_MINOR.NV_TENSORRT_PATCH\n' | $(CXX) -E -P -I"$(TRT_HEADERS)" -x c++ - | tail -n 1 | tr -d ' '); \
		echo "TensorRT headers $$version ($(TRT_HEADERS)), CUDA headers $(CUDA_HOME)/include, $$($(CXX) --version | head -n 1)"; \
		$(CXX) -std=c++14 -Wall -Wextra -Werror -fPIC -isystem "$(TRT_HEADERS)" -isystem "$(CUDA_HOME)/include" \
			-c jetson/trt/BinaryConv2dPlugin.cpp -o $(TRT_BUILD)/check/BinaryConv2dPlugin-trt$$version.o \
		&& echo "trt-check: BinaryConv2dPlugin.cpp compiles against TensorRT $$version -> $(TRT_BUILD)/check/BinaryConv2dPlugin-trt$$version.o"

RUNTIME         ?=
TRT_ONNX        ?=
TRT_ONNX_FILES   = $(foreach m,$(MODEL_SET),build/models/$(m).onnx)
MICROBENCH_ARGS ?=

build/models/%.onnx:
	@mkdir -p build/models
	$(BIN)/lcefr convert $* --to onnx-binary --domain trt -o $@

jetson-microbench: install
	@test -n "$(JETSON)" || { echo 'usage: make jetson-microbench JETSON="user@host ..." [JETSON_PORT=22] [JETSON_KEY=path] [MICROBENCH_ARGS="--figures 4 --modes plugin-fp32,conv-fp16,conv-int8"]' >&2; exit 2; }
	$(BIN)/python -m lcefr.trt.microbench --remote "$(JETSON)" --port $(JETSON_PORT) --reports $(REPORTS) \
		$(if $(JETSON_KEY),--key "$(JETSON_KEY)") $(MICROBENCH_ARGS)

# --- GPU check (issue 27) -------------------------------------------------------------------
# make gpu-check [GPU_CHECK_ARGS="--quick"]   on a machine with an NVIDIA GPU, from the source tree
#   (no make install: numpy, PyTorch, nvcc, g++): builds the kernels for the local GPU, compares
#   every launcher path bit-exactly with the CPU reference, times them against cuDNN, writes
#   reports/gpu-check-<gpu>-<UTC>.{json,md,png}. Exit 2 names what is missing (GPU, driver, nvcc, PyTorch).
.PHONY: gpu-check
GPU_CHECK_ARGS ?=
gpu-check:
	@$(PYTHON) -m lcefr.trt.gpu_check --out $(REPORTS) $(GPU_CHECK_ARGS)
