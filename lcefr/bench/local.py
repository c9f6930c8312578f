"""Time ``.tflite`` models on this machine: LCE's interpreter for LCE ops, TFLite otherwise.

LCE's Python interpreter exists for x86 only and runs portable C++ kernels there: x86 numbers
compare models with each other on this machine, they are not ARM numbers.
"""
from __future__ import annotations

import platform
import resource
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

__all__ = ["BenchResult", "latency_stats", "time_callable", "time_lce", "time_tflite", "lce_interpreter"]


@dataclass
class BenchResult:
    """One model timed on one runtime; ``status`` is "ok" or "failed" (then ``error`` says why)."""

    model: str
    runtime: str
    kernel: str
    threads: int
    latency_ms: Dict[str, float] = field(default_factory=dict)
    fps: float = 0.0
    size_bytes: int = 0
    peak_rss_mb: float = 0.0
    status: str = "ok"
    error: Optional[str] = None

    def to_dict(self) -> Dict:
        return asdict(self)


def latency_stats(samples_s: List[float]) -> Dict[str, float]:
    """mean / median / p90 / min in milliseconds of per-run wall times in seconds."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    if ms.size == 0:
        raise ValueError("no timing samples")
    return {
        "mean": round(float(ms.mean()), 4),
        "median": round(float(np.median(ms)), 4),
        "p90": round(float(np.percentile(ms, 90)), 4),
        "min": round(float(ms.min()), 4),
    }


def time_callable(fn: Callable[[], object], *, runs: int, warmup: int) -> List[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def lce_interpreter(buffer: bytes, *, threads: int = 1, kernel: str = "indirect"):
    """LCE's Python interpreter; ``kernel`` is "indirect" (indirect BGEMM) or "default" (BGEMM)."""
    import larq_compute_engine as lce

    if platform.machine() not in ("x86_64", "AMD64"):
        raise RuntimeError(f"LCE's Python interpreter runs on x86-64 only, this is {platform.machine()}")
    if kernel not in ("indirect", "default"):
        raise ValueError(f"kernel must be 'indirect' or 'default', got {kernel!r}")
    return lce.testing.Interpreter(buffer, num_threads=threads, use_indirect_bgemm=kernel == "indirect")


def _random_input(shape, dtype) -> np.ndarray:
    shape = [1 if (d is None or d < 1) else int(d) for d in shape]
    rng = np.random.default_rng(0)
    if np.issubdtype(np.dtype(dtype), np.integer):
        return rng.integers(-128, 127, size=shape).astype(dtype)
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)


def time_lce(
    buffer: bytes, *, name: str = "model", threads: int = 1, runs: int = 20, warmup: int = 3, kernel: str = "indirect"
) -> BenchResult:
    """Time a flatbuffer with LCE's interpreter on one random face."""
    result = BenchResult(model=name, runtime="lce", kernel=kernel, threads=threads, size_bytes=len(buffer))
    try:
        interpreter = lce_interpreter(buffer, threads=threads, kernel=kernel)
        x = _random_input(interpreter.input_shapes[0], interpreter.input_types[0])
        samples = time_callable(lambda: interpreter.predict(x), runs=runs, warmup=warmup)
    except Exception as err:  # a kernel that cannot run this model is a result, not a crash
        result.status, result.error = "failed", f"{type(err).__name__}: {err}"
        return result
    result.latency_ms = latency_stats(samples)
    result.fps = round(1000.0 / result.latency_ms["mean"], 3)
    result.peak_rss_mb = round(_peak_rss_mb(), 1)
    return result


def time_tflite(
    buffer: bytes, *, name: str = "model", threads: int = 1, runs: int = 20, warmup: int = 3
) -> BenchResult:
    """Time a float or int8 flatbuffer with TensorFlow Lite (XNNPACK delegate applied by default)."""
    import tensorflow as tf

    result = BenchResult(model=name, runtime="tflite", kernel="xnnpack", threads=threads, size_bytes=len(buffer))
    try:
        interpreter = tf.lite.Interpreter(model_content=buffer, num_threads=threads)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        x = _random_input(detail["shape"], detail["dtype"])

        def run():
            interpreter.set_tensor(detail["index"], x)
            interpreter.invoke()

        samples = time_callable(run, runs=runs, warmup=warmup)
    except Exception as err:
        result.status, result.error = "failed", f"{type(err).__name__}: {err}"
        return result
    result.latency_ms = latency_stats(samples)
    result.fps = round(1000.0 / result.latency_ms["mean"], 3)
    result.peak_rss_mb = round(_peak_rss_mb(), 1)
    return result
