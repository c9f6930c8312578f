"""TensorRT engines from ``lcefr convert X --to onnx-binary --domain trt`` graphs (issue 8).

``build_engine`` parses the ONNX file with TensorRT's ONNX parser, which maps every
``BinaryConv2d`` node to the plugin of the same name in ``libbinaryconv_plugin.so``
(jetson/trt, ``make trt``), and writes a serialized engine; ``run_engine`` times it. Both import
``tensorrt`` lazily and cover TensorRT 8.2 (JetPack 4.6, Jetson Nano) and 10.x (desktop, Orin):

- network creation: the EXPLICIT_BATCH flag on 8.x, the default on 10.x;
- workspace: ``set_memory_pool_limit`` (8.4+) or ``max_workspace_size`` (8.2);
- execution: ``execute_async_v3`` with tensor addresses (8.5+/10) or ``execute_v2`` with bindings.

Device buffers for ``run_engine`` come from cuda-python or PyCUDA, whichever is installed.
"""
from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from lcefr.fileio import write_atomic
from lcefr.runtime import fps, latency_stats, time_callable

__all__ = ["TensorRTMissing", "CudaBindingsMissing", "EngineBuildError", "DEFAULT_PLUGIN", "default_plugin",
           "load_plugin", "build_engine", "run_engine", "tensorrt_version"]

#: where ``make trt`` puts the plugin, relative to the repository root
DEFAULT_PLUGIN = Path("build") / "trt" / "libbinaryconv_plugin.so"
PLUGIN_ENV = "LCEFR_TRT_PLUGIN"


class TensorRTMissing(RuntimeError):
    """The ``tensorrt`` Python module is not importable."""


class CudaBindingsMissing(RuntimeError):
    """Neither cuda-python nor PyCUDA is importable (needed for device buffers)."""


class EngineBuildError(RuntimeError):
    """TensorRT could not parse the ONNX graph, build or load the engine."""


def _import_tensorrt():
    try:
        import tensorrt
    except ImportError as err:
        raise TensorRTMissing("TensorRT is not installed (no Python module 'tensorrt'); use JetPack's python3-libnvinfer "
                              "on a Jetson or NVIDIA's tensorrt wheels on a desktop") from err
    return tensorrt


def tensorrt_version(trt) -> tuple:
    """(major, minor) of an imported ``tensorrt`` module."""
    parts = []
    for piece in str(getattr(trt, "__version__", "0")).split(".")[:2]:
        parts.append(int(piece) if piece.isdigit() else 0)
    return tuple(parts + [0] * (2 - len(parts)))


def default_plugin() -> Optional[Path]:
    """``$LCEFR_TRT_PLUGIN``, else ``build/trt/libbinaryconv_plugin.so`` in the working directory or the
    repository this package lives in; None when none exists."""
    env = os.environ.get(PLUGIN_ENV)
    if env:
        return Path(env)
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = root / DEFAULT_PLUGIN
        if candidate.is_file():
            return candidate
    return None


_LOADED: Dict[str, ctypes.CDLL] = {}


def load_plugin(plugin=None) -> Optional[str]:
    """Load the plugin library (its static registrar registers ``BinaryConv2d`` with TensorRT).

    ``plugin=None`` loads :func:`default_plugin` when it exists; an explicit path must exist. Returns
    the path loaded, or None.
    """
    path = Path(plugin) if plugin is not None else default_plugin()
    if path is None:
        return None
    if not path.is_file():
        raise FileNotFoundError(f"TensorRT plugin {path} not found (build it with `make trt`)")
    key = str(path.resolve())
    if key not in _LOADED:
        try:
            _LOADED[key] = ctypes.CDLL(key, mode=getattr(ctypes, "RTLD_GLOBAL", 0))
        except OSError as err:
            raise EngineBuildError(f"cannot load TensorRT plugin {path}: {err}") from err
    return key


def _prepare(plugin):
    """Import TensorRT, load the plugin, make a logger and register NVIDIA's bundled plugins."""
    trt = _import_tensorrt()
    loaded = load_plugin(plugin)
    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")
    return trt, logger, loaded


def _tensor_info(tensor) -> dict:
    return {"name": tensor.name, "shape": [int(d) for d in tensor.shape], "dtype": str(tensor.dtype)}


def _set_workspace(trt, config, workspace_mb: int) -> None:
    limit = int(workspace_mb) << 20
    if hasattr(config, "set_memory_pool_limit") and hasattr(trt, "MemoryPoolType"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, limit)
    else:  # TensorRT 8.2
        config.max_workspace_size = limit


def _add_profile(builder, config, inputs: Sequence, batch: int) -> None:
    """One optimization profile fixing every dynamic batch dimension to ``batch``."""
    dynamic = [t for t in inputs if any(int(d) < 0 for d in t.shape)]
    if not dynamic:
        return
    profile = builder.create_optimization_profile()
    for tensor in dynamic:
        shape = [int(d) for d in tensor.shape]
        if any(d < 0 for d in shape[1:]):
            raise ValueError(f"input {tensor.name} has dynamic dimensions besides the batch: {shape}")
        fixed = (batch, *shape[1:])
        profile.set_shape(tensor.name, fixed, fixed, fixed)
    config.add_optimization_profile(profile)


def build_engine(onnx_path, engine_path, *, fp16: bool = False, plugin=None, workspace_mb: int = 1024,
                 batch: int = 1) -> dict:
    """Build a serialized TensorRT engine from an ONNX file and write it atomically.

    Args:
        onnx_path: ONNX graph, e.g. from ``lcefr convert X --to onnx-binary --domain trt``.
        engine_path: where to write the engine (temporary file + rename).
        fp16: allow FP16 kernels (``BuilderFlag.FP16``).
        plugin: plugin library to load; default :func:`default_plugin`.
        workspace_mb: builder workspace limit in MiB.
        batch: batch size of a dynamic batch dimension.

    Returns:
        dict with the engine path and size, TensorRT version, inputs/outputs and build time.

    Raises:
        TensorRTMissing: ``tensorrt`` is not importable.
        EngineBuildError: parser errors (all of them, in the message) or a failed build.
    """
    if workspace_mb < 1:
        raise ValueError(f"workspace_mb must be >= 1, got {workspace_mb}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    trt, logger, loaded = _prepare(plugin)
    data = Path(onnx_path).read_bytes()
    start = time.perf_counter()

    builder = trt.Builder(logger)
    flags = 0
    if tensorrt_version(trt) < (10, 0):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(data):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)] or ["unknown parser error"]
        hint = ""
        if loaded is None and any("BinaryConv2d" in e or "plugin" in e.lower() for e in errors):
            hint = f" (no plugin loaded: build it with `make trt` or pass plugin=/--plugin, or set {PLUGIN_ENV})"
        raise EngineBuildError(f"TensorRT could not parse {onnx_path}{hint}: " + "; ".join(errors))

    config = builder.create_builder_config()
    _set_workspace(trt, config, workspace_mb)
    if fp16:
        flag = getattr(trt.BuilderFlag, "FP16", None)
        if flag is None:
            raise EngineBuildError(f"TensorRT {trt.__version__} has no BuilderFlag.FP16 (strongly typed networks); "
                                   "export an FP16 graph instead")
        config.set_flag(flag)
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    outputs = [network.get_output(i) for i in range(network.num_outputs)]
    _add_profile(builder, config, inputs, batch)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT could not build an engine from {onnx_path} (see the TensorRT log above)")
    blob = memoryview(serialized)
    write_atomic(str(engine_path), blob)
    return {
        "engine": str(engine_path),
        "bytes": blob.nbytes,
        "onnx": str(onnx_path),
        "tensorrt": str(getattr(trt, "__version__", "?")),
        "fp16": bool(fp16),
        "fast_fp16": bool(getattr(builder, "platform_has_fast_fp16", False)),
        "plugin": loaded,
        "workspace_mb": int(workspace_mb),
        "inputs": [_tensor_info(t) for t in inputs],
        "outputs": [_tensor_info(t) for t in outputs],
        "build_s": round(time.perf_counter() - start, 3),
    }


# ---- timing -----------------------------------------------------------------------------------------


class _CudaPython:
    name = "cuda-python"

    def __init__(self):
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        self.rt = cudart
        self.stream = self._ok(cudart.cudaStreamCreate())

    def _ok(self, result):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise EngineBuildError(f"CUDA error {err}")
        return rest[0] if rest else None

    def malloc(self, nbytes: int) -> int:
        return int(self._ok(self.rt.cudaMalloc(max(nbytes, 1))))

    def upload(self, ptr: int, array: np.ndarray) -> None:
        self._ok(self.rt.cudaMemcpy(ptr, array.ctypes.data, array.nbytes,
                                    self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice))

    def stream_handle(self) -> int:
        return int(self.stream)

    def synchronize(self) -> None:
        self._ok(self.rt.cudaStreamSynchronize(self.stream))

    def free(self, ptr: int) -> None:
        self.rt.cudaFree(ptr)

    def close(self) -> None:
        self.rt.cudaStreamDestroy(self.stream)


class _PyCuda:
    name = "pycuda"

    def __init__(self):
        import importlib

        importlib.import_module("pycuda.autoinit")  # creates the CUDA context TensorRT runs in
        import pycuda.driver as driver

        self.driver = driver
        self.stream = driver.Stream()
        self._allocations: Dict[int, object] = {}

    def malloc(self, nbytes: int) -> int:
        allocation = self.driver.mem_alloc(max(nbytes, 1))
        self._allocations[int(allocation)] = allocation
        return int(allocation)

    def upload(self, ptr: int, array: np.ndarray) -> None:
        self.driver.memcpy_htod(ptr, array)

    def stream_handle(self) -> int:
        return int(self.stream.handle)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def free(self, ptr: int) -> None:
        allocation = self._allocations.pop(ptr, None)
        if allocation is not None:
            allocation.free()

    def close(self) -> None:
        pass


def _cuda_backend():
    for backend in (_CudaPython, _PyCuda):
        try:
            return backend()
        except ImportError:
            continue
    raise CudaBindingsMissing("run_engine needs cuda-python (pip install cuda-python) or PyCUDA "
                              "(python3-pycuda / pip install pycuda) for device buffers")


def _io_tensors(trt, engine) -> List[dict]:
    """Name, input flag, shape (profile 0 opt for dynamic dims) and numpy dtype of every I/O tensor."""
    tensors = []
    if hasattr(engine, "num_io_tensors"):  # TensorRT 8.5+ / 10
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = [int(d) for d in engine.get_tensor_shape(name)]
            if is_input and any(d < 0 for d in shape):
                shape = [int(d) for d in engine.get_tensor_profile_shape(name, 0)[1]]
            tensors.append({"name": name, "index": i, "input": is_input, "shape": shape,
                            "dtype": np.dtype(trt.nptype(engine.get_tensor_dtype(name)))})
    else:  # TensorRT 8.2: bindings
        for i in range(engine.num_bindings):
            is_input = engine.binding_is_input(i)
            shape = [int(d) for d in engine.get_binding_shape(i)]
            if is_input and any(d < 0 for d in shape):
                shape = [int(d) for d in engine.get_profile_shape(0, i)[1]]
            tensors.append({"name": engine.get_binding_name(i), "index": i, "input": is_input, "shape": shape,
                            "dtype": np.dtype(trt.nptype(engine.get_binding_dtype(i)))})
    return tensors


def run_engine(engine_path, *, runs: int = 50, warmup: int = 5, plugin=None) -> dict:
    """Time ``runs`` inferences of a serialized engine on random inputs after ``warmup`` runs.

    Each run is timed on the host around one ``execute_async_v3`` + stream synchronize (TensorRT
    8.5+/10) or one synchronous ``execute_v2`` (8.2).

    Returns:
        dict with ``latency_ms`` {mean, median, p90, min}, ``fps`` (1000 / mean latency,
        :func:`lcefr.runtime.fps`), the API and CUDA binding used and the I/O shapes.

    Raises:
        TensorRTMissing, CudaBindingsMissing, EngineBuildError (engine does not deserialize).
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    trt, logger, loaded = _prepare(plugin)
    data = Path(engine_path).read_bytes()
    cuda = _cuda_backend()
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        raise EngineBuildError(f"TensorRT could not deserialize {engine_path} (built by another TensorRT version, "
                               "or the plugin is not loaded)")
    context = engine.create_execution_context()
    tensors = _io_tensors(trt, engine)
    rng = np.random.default_rng(0)
    pointers: List[int] = []
    try:
        for t in tensors:
            ptr = cuda.malloc(int(np.prod(t["shape"])) * t["dtype"].itemsize)
            pointers.append(ptr)
            if t["input"]:
                host = rng.uniform(-1, 1, size=t["shape"]).astype(t["dtype"])
                cuda.upload(ptr, np.ascontiguousarray(host))
        v3 = hasattr(context, "execute_async_v3") and hasattr(context, "set_tensor_address")
        for t, ptr in zip(tensors, pointers):
            if v3:
                if t["input"]:
                    context.set_input_shape(t["name"], t["shape"])
                context.set_tensor_address(t["name"], ptr)
            elif t["input"]:
                context.set_binding_shape(t["index"], t["shape"])
        stream = cuda.stream_handle()

        def once():
            if v3:
                ok = context.execute_async_v3(stream)
                cuda.synchronize()
            else:
                ok = context.execute_v2(pointers)
            if not ok:
                raise EngineBuildError(f"TensorRT execution of {engine_path} failed")

        times = time_callable(once, runs=runs, warmup=warmup)
    finally:
        for ptr in pointers:
            cuda.free(ptr)
        cuda.close()
    stats = latency_stats(times)
    result = {"latency_ms": stats, "fps": fps(stats["mean"])}
    result.update({"engine": str(engine_path), "runs": runs, "warmup": warmup,
                   "tensorrt": str(getattr(trt, "__version__", "?")), "plugin": loaded,
                   "api": "execute_async_v3" if v3 else "execute_v2", "cuda": cuda.name,
                   "inputs": [{"name": t["name"], "shape": t["shape"], "dtype": str(t["dtype"])}
                              for t in tensors if t["input"]],
                   "outputs": [{"name": t["name"], "shape": t["shape"], "dtype": str(t["dtype"])}
                               for t in tensors if not t["input"]]})
    return result
