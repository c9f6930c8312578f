"""TensorRT rows of the GPU check: each IResNet-18 convolution as a one-layer TensorRT engine in
FP16 and INT8, timed as the binary kernels are (CUDA events around each run, warm-up, median).

The network is defined with TensorRT's builder API (no ONNX), so only ``tensorrt`` (8.5 or newer:
named I/O tensors and ``execute_async_v3``) and PyTorch (device buffers, stream, events) are
needed. INT8 uses fixed dynamic ranges instead of calibration: the numbers are timings only.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

__all__ = ["PRECISIONS", "unsupported", "conv_engine", "engine_ms"]

PRECISIONS = ("fp16", "int8")


def _version(trt) -> Tuple[int, int]:
    parts = [int(p) if p.isdigit() else 0 for p in str(getattr(trt, "__version__", "0")).split(".")[:2]]
    return tuple(parts + [0] * (2 - len(parts)))


def unsupported(trt) -> Optional[str]:
    """Why this TensorRT cannot give the rows, or None."""
    if _version(trt) < (8, 5):
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
    flags = 0 if _version(trt) >= (10, 0) else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
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
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    stops = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    for _ in range(warmup):
        context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    for a, b in zip(starts, stops):
        a.record(stream)
        if not context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"TensorRT execution of conv {layer.index} failed")
        b.record(stream)
    stream.synchronize()
    times = sorted(a.elapsed_time(b) for a, b in zip(starts, stops))
    mid = len(times) // 2
    return float(times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2)
