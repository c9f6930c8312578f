"""Time ``.tflite`` models on this machine: LCE's interpreter for LCE ops, TFLite otherwise.

LCE's Python interpreter exists for x86 only and runs portable C++ kernels there: x86 numbers
compare models with each other on this machine, they are not ARM numbers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Iterable, List, Optional

from lcefr.runtime import (fastest, fps, is_lce_model, kernels_for, latency_stats, lce_interpreter, model_name,
                           peak_rss_mb, random_input, time_callable, tflite_interpreter)

__all__ = ["BenchResult", "time_lce", "time_tflite", "bench_files"]


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


def _timed(result: BenchResult, make_run: Callable[[], Callable[[], object]], *, runs: int, warmup: int) -> BenchResult:
    try:
        samples = time_callable(make_run(), runs=runs, warmup=warmup)
    except Exception as err:  # a kernel that cannot run this model is a result, not a crash
        result.status, result.error = "failed", f"{type(err).__name__}: {err}"
        return result
    result.latency_ms = latency_stats(samples)
    result.fps = fps(result.latency_ms["mean"])
    result.peak_rss_mb = peak_rss_mb()
    return result


def time_lce(
    buffer: bytes, *, name: str = "model", threads: int = 1, runs: int = 20, warmup: int = 3, kernel: str = "indirect"
) -> BenchResult:
    """Time a flatbuffer with LCE's interpreter on one random face."""
    result = BenchResult(model=name, runtime="lce", kernel=kernel, threads=threads, size_bytes=len(buffer))

    def make_run():
        interpreter = lce_interpreter(buffer, threads=threads, kernel=kernel)
        x = random_input(interpreter.input_shapes[0], interpreter.input_types[0])
        return lambda: interpreter.predict(x)

    return _timed(result, make_run, runs=runs, warmup=warmup)


def time_tflite(
    buffer: bytes, *, name: str = "model", threads: int = 1, runs: int = 20, warmup: int = 3
) -> BenchResult:
    """Time a float or int8 flatbuffer with TensorFlow Lite (XNNPACK delegate applied by default)."""
    result = BenchResult(model=name, runtime="tflite", kernel="xnnpack", threads=threads, size_bytes=len(buffer))

    def make_run():
        interpreter = tflite_interpreter(buffer, threads=threads)
        detail = interpreter.get_input_details()[0]
        x = random_input(detail["shape"], detail["dtype"])

        def run():
            interpreter.set_tensor(detail["index"], x)
            interpreter.invoke()

        return run

    return _timed(result, make_run, runs=runs, warmup=warmup)


def bench_files(files: Iterable[str], *, threads: int = 1, runs: int = 20, warmup: int = 3,
                kernel: str = "auto") -> List[Dict]:
    """One ``lcefr bench --json`` row per file: LCE models with ``kernel`` ("auto": both, the faster
    reported with the other under ``alternatives``), float and int8 ones with TFLite."""
    rows = []
    for path in files:
        name = model_name(path)
        with open(path, "rb") as f:
            buffer = f.read()
        if not is_lce_model(buffer):
            rows.append(time_tflite(buffer, name=name, threads=threads, runs=runs, warmup=warmup).to_dict())
            continue
        kernels = kernels_for(kernel)
        rows.append(fastest([time_lce(buffer, name=name, threads=threads, runs=runs, warmup=warmup, kernel=k).to_dict()
                             for k in kernels]))
    return rows
