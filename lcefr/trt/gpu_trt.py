"""TensorRT rows of the GPU check: each IResNet-18 convolution as a one-layer TensorRT engine in
FP16 and INT8, timed as the binary kernels are (CUDA events around each run, warm-up, median).

The network is defined with TensorRT's builder API (no ONNX), so only ``tensorrt`` (8.5 or newer:
named I/O tensors and ``execute_async_v3``) and PyTorch (device buffers, stream, events) are
needed. INT8 uses fixed dynamic ranges instead of calibration: the numbers are timings only.

:func:`plugin_engine_check` builds the BinaryConv2d plugin (``make trt``) and an engine of a whole
``onnx-binary --domain trt`` export made on the host (quicknet_small), and compares its output with
onnxruntime's, whose BinaryConv2d is the C reference (onnxruntime and onnxruntime-extensions).
"""
from __future__ import annotations

import statistics
import subprocess
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from lcefr.convert.ort import onnx_binary_runner
from lcefr.eval.parity import cosine_rows
from lcefr.trt.engine import build_engine, default_plugin, tensorrt_version

__all__ = ["PRECISIONS", "PLUGIN_COSINE_MIN", "unsupported", "conv_engine", "engine_ms", "event_ms", "build_plugin",
           "compare_outputs", "plugin_engine_check"]

REPO = Path(__file__).resolve().parents[2]

PRECISIONS = ("fp16", "int8")


def unsupported(trt) -> Optional[str]:
    """Why this TensorRT cannot give the rows, or None."""
    if tensorrt_version(trt) < (8, 5):
        return f"TensorRT {trt.__version__} is older than 8.5 (no execute_async_v3): no TensorRT rows"
    return None


def _out_size(layer) -> int:
    return (layer.size + 2 * layer.pad - layer.kernel) // layer.stride + 1


def conv_engine(trt, layer, batch: int, precision: str, *, seed: int = 0):
    """A deserialized engine of one ``layer`` convolution (input "x" NCHW float, output "y")."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    flags = 0 if tensorrt_version(trt) >= (10, 0) else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    x = network.add_input("x", trt.float32, (batch, layer.cin, layer.size, layer.size))
    rng = np.random.default_rng(seed)
    kernel = (0.05 * rng.standard_normal((layer.cout, layer.cin, layer.kernel, layer.kernel))).astype(np.float32)
    bias = np.zeros(layer.cout, np.float32)
    conv = network.add_convolution_nd(x, layer.cout, (layer.kernel, layer.kernel), trt.Weights(kernel), trt.Weights(bias))
    conv.stride_nd = (layer.stride, layer.stride)
    conv.padding_nd = (layer.pad, layer.pad)
    y = conv.get_output(0)
    y.name = "y"
    network.mark_output(y)
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        x.set_dynamic_range(-1.0, 1.0)
        y.set_dynamic_range(-8.0, 8.0)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT could not build the {precision} engine of conv {layer.index} at batch {batch}")
    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
    if engine is None:
        raise RuntimeError(f"TensorRT could not load the {precision} engine of conv {layer.index}")
    return engine


def engine_ms(torch, engine, layer, batch: int, *, warmup: int, iters: int) -> float:
    """Median device ms of one ``execute_async_v3`` on a dedicated stream."""
    out = _out_size(layer)
    x = torch.randn(batch, layer.cin, layer.size, layer.size, device="cuda")
    y = torch.empty(batch, layer.cout, out, out, device="cuda")
    context = engine.create_execution_context()
    context.set_tensor_address("x", x.data_ptr())
    context.set_tensor_address("y", y.data_ptr())
    stream = torch.cuda.Stream()

    def once():
        if not context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"TensorRT execution of conv {layer.index} failed")
    return event_ms(torch, once, warmup=warmup, iters=iters, stream=stream)


def event_ms(torch, run, *, warmup: int, iters: int, stream=None) -> float:
    """Median device ms of ``run()`` between CUDA events on ``stream`` (the current one when None),
    after ``warmup`` untimed runs."""
    stream = stream or torch.cuda.current_stream()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    stops = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    for _ in range(warmup):
        run()
    stream.synchronize()
    for a, b in zip(starts, stops):
        a.record(stream)
        run()
        b.record(stream)
    stream.synchronize()
    return float(statistics.median(a.elapsed_time(b) for a, b in zip(starts, stops)))


# ---- the BinaryConv2d plugin in an engine of a whole model -------------------------------------

#: The plugin engine passes when every output row has at least this cosine with onnxruntime's.
PLUGIN_COSINE_MIN = 0.999


def build_plugin(build_dir) -> Path:
    """``make trt`` into ``build_dir`` (CMake, nvcc and TensorRT's headers and libraries)."""
    build_dir = Path(build_dir)
    proc = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "trt", f"TRT_BUILD={build_dir}"],
                          capture_output=True, text=True)
    library = build_dir / "libbinaryconv_plugin.so"
    if proc.returncode or not library.is_file():
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise RuntimeError(f"make trt failed: {last}")
    return library


def compare_outputs(got: np.ndarray, want: np.ndarray) -> Dict:
    """Row-wise cosine and max abs difference of two (N, ...) outputs; ``pass`` at PLUGIN_COSINE_MIN."""
    a = np.asarray(got, np.float64).reshape(len(got), -1)
    b = np.asarray(want, np.float64).reshape(len(want), -1)
    if a.shape != b.shape:
        return {"cosine_min": 0.0, "max_abs_diff": float("inf"), "pass": False,
                "error": f"output shape {np.shape(got)} != onnxruntime's {np.shape(want)}"}
    cosine_min = float(np.nan_to_num(cosine_rows(a, b), nan=0.0).min())
    return {"cosine_min": cosine_min, "max_abs_diff": float(np.nan_to_num(np.abs(a - b), nan=np.inf).max()),
            "pass": cosine_min >= PLUGIN_COSINE_MIN}


def plugin_engine_check(trt, torch, onnx_path, *, plugin=None, build_dir, batch: int = 2, seed: int = 0) -> Dict:
    """Build a TensorRT engine of an ``onnx-binary --domain trt`` export (every BinaryConv2d on the
    plugin), run it on random inputs and compare with onnxruntime (BinaryConv2d by the C reference)."""
    build_dir = Path(build_dir)
    library = Path(plugin) if plugin else (default_plugin() or build_plugin(build_dir / "trt"))
    info = build_engine(onnx_path, build_dir / "plugin-check.engine", plugin=library, batch=batch)
    logger = trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(Path(info["engine"]).read_bytes())
    if engine is None:
        raise RuntimeError("TensorRT could not load the plugin engine it built")
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if n not in inputs]
    if len(inputs) != 1 or len(outputs) != 1:
        raise RuntimeError(f"expected one input and one output, the engine has {inputs} and {outputs}")
    context = engine.create_execution_context()
    shape = [int(d) for d in engine.get_tensor_shape(inputs[0])]
    shape = [batch if d < 0 else d for d in shape]
    context.set_input_shape(inputs[0], shape)
    x = np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)
    x_dev = torch.from_numpy(x).cuda()
    y_dev = torch.empty(tuple(int(d) for d in context.get_tensor_shape(outputs[0])), device="cuda")
    context.set_tensor_address(inputs[0], x_dev.data_ptr())
    context.set_tensor_address(outputs[0], y_dev.data_ptr())
    stream = torch.cuda.Stream()
    if not context.execute_async_v3(stream.cuda_stream):
        raise RuntimeError("TensorRT execution of the plugin engine failed")
    stream.synchronize()
    reference = onnx_binary_runner(Path(onnx_path).read_bytes())(x)
    result = compare_outputs(y_dev.cpu().numpy(), reference)
    result.update({"onnx": str(onnx_path), "plugin": str(library), "engine_bytes": info["bytes"],
                   "batch": batch, "tensorrt": info["tensorrt"]})
    return result
