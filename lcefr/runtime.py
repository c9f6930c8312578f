"""Running ``.tflite`` flatbuffers: the TFL3 check, the LCE / TFLite interpreters, latency statistics, FPS.

One definition each, used by convert, embed, bench, the board runner and TensorRT timing:
FPS is ``1000 / mean latency`` everywhere (boards report only the mean and the minimum).

This file is also copied to boards next to :mod:`lcefr.board.runner` (as ``lcefr/runtime.py`` in the
work directory), so it stays importable with the standard library of Python 3.6 (JetPack 4):
no ``from __future__ import annotations``, no dataclasses, numpy / LCE / TensorFlow imported only
inside the functions that need them.
"""
import os
import platform
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

__all__ = ["TFLITE_IDENTIFIER", "LCE_OP_MARKERS", "KERNELS", "KERNEL_CHOICES", "ARM_PARTS", "BOARD_RUNTIMES", "kernels_for",
           "check_tflite", "is_lce_model", "model_name", "lce_interpreter", "tflite_interpreter", "interpreter_module",
           "random_input", "probe_input", "output_vector", "probe_output", "time_callable", "peak_rss_mb", "latency_stats", "fps", "fastest"]

#: file identifier of a TFLite flatbuffer, at bytes 4..8
TFLITE_IDENTIFIER = b"TFL3"
#: custom-op names whose presence makes a flatbuffer an LCE model
LCE_OP_MARKERS = (b"LceBconv2d", b"LceQuantize", b"LceDequantize", b"LceBMaxPool2d")
#: LCE's binary-convolution kernels: "default" (BGEMM) and "indirect" (indirect BGEMM,
#: use_indirect_bgemm); "auto" tries both and keeps the faster.
KERNELS = ("default", "indirect")
KERNEL_CHOICES = ("auto",) + KERNELS
#: the board wheels :func:`tflite_interpreter` tries, in order
BOARD_RUNTIMES = ("ai_edge_litert", "tflite_runtime")
#: ARM Ltd. (implementer 0x41) CPU part numbers of common boards (``CPU part`` in /proc/cpuinfo)
ARM_PARTS = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
             "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
             "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xd4b": "Cortex-A78C", "0xc07": "Cortex-A7",
             "0xc09": "Cortex-A9", "0xc0f": "Cortex-A15"}


def check_tflite(buffer: bytes, *, name: Optional[str] = None) -> None:
    """Raise ValueError unless ``buffer`` carries the TFLite identifier; ``name`` (a path) goes in the message."""
    if len(buffer) < 8 or bytes(buffer[4:8]) != TFLITE_IDENTIFIER:
        raise ValueError(f"{name + ' is ' if name else ''}not a TFLite flatbuffer (no TFL3 identifier)")


def is_lce_model(buffer: bytes) -> bool:
    """True when the flatbuffer uses an LCE custom op (then LCE's interpreter or binary must run it)."""
    return any(marker in buffer for marker in LCE_OP_MARKERS)


def model_name(path: str) -> str:
    """The row name of a model file: its base name without ``.tflite``."""
    base = os.path.basename(path)
    return base[: -len(".tflite")] if base.endswith(".tflite") else base


def lce_interpreter(buffer: bytes, *, threads: int = 1, kernel: str = "indirect"):
    """LCE's Python interpreter; ``kernel`` is "indirect" (indirect BGEMM) or "default" (BGEMM)."""
    import larq_compute_engine as lce  # heavy, and absent on boards: only where an LCE model runs here

    if platform.machine() not in ("x86_64", "AMD64"):
        raise RuntimeError(f"LCE's Python interpreter runs on x86-64 only, this is {platform.machine()}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    return lce.testing.Interpreter(buffer, num_threads=threads, use_indirect_bgemm=kernel == "indirect")


def tflite_interpreter(buffer: bytes, *, threads: int = 1, prefer_tflite_runtime: bool = False):
    """A TFLite interpreter with its tensors allocated (XNNPACK delegate applied by default).

    TensorFlow's ``tf.lite.Interpreter``; with ``prefer_tflite_runtime`` (boards) a board wheel when
    one is installed: ``ai_edge_litert`` first (its XNNPACK also runs int8 ops), then
    ``tflite_runtime`` (2.14 on aarch64: int8 ops on builtin kernels), TensorFlow otherwise.
    """
    interpreter_class = None
    if prefer_tflite_runtime:
        for module in BOARD_RUNTIMES:
            try:
                interpreter_class = __import__(module + ".interpreter", fromlist=["Interpreter"]).Interpreter
                break
            except ImportError:
                pass
    if interpreter_class is None:
        import tensorflow as tf  # heavy: only where a float / int8 model runs here

        interpreter_class = tf.lite.Interpreter
    interpreter = interpreter_class(model_content=bytes(buffer), num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def interpreter_module(interpreter) -> str:
    """``ai_edge_litert``, ``tflite_runtime`` or ``tensorflow``: the package an interpreter comes from."""
    return type(interpreter).__module__.split(".")[0]


def random_input(shape: Sequence, dtype, *, seed: int = 0):
    """One random input of ``shape`` (unknown dimensions as 1): int8-range integers or floats in [-1, 1]."""
    import numpy as np  # absent on boards that time with lce_benchmark_model only

    shape = [1 if (d is None or d < 1) else int(d) for d in shape]
    rng = np.random.RandomState(seed)  # not default_rng: JetPack 4 ships numpy 1.13
    if np.issubdtype(np.dtype(dtype), np.integer):
        return rng.randint(-128, 127, size=shape).astype(dtype)
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)


def _first(value, default):
    """A per-tensor quantization number: the first of a per-channel list, ``default`` when absent."""
    if value is None:
        return default
    try:
        return _first(value[0], default) if len(value) else default
    except TypeError:  # a number (or a 0-d array)
        return value


def _quantization(quantization):
    """``(scale, zero_point)`` from a ``(scale, zero_point)`` pair, a TFLite tensor detail (its
    ``quantization``) or None; scale 0.0 means not quantized."""
    if isinstance(quantization, dict):
        quantization = quantization.get("quantization")
    if not quantization:
        return 0.0, 0
    scale, zero_point = quantization
    return float(_first(scale, 0.0) or 0.0), int(_first(zero_point, 0) or 0)


def probe_input(shape: Sequence, dtype, quantization=None):
    """The parity probe: one input of ``shape`` (unknown dimensions as 1) that is the same array on
    every machine and numpy version, so a board's output can be compared with the host's.

    Element ``i`` (flat index) is ``h / 2**30 - 1`` with ``h = ((i*i mod M) * 1103515245 + 12345 * i
    + 6789) mod M``, ``M = 2**31``: a float in [-1, 1) computed exactly (integers below 2**63, then a
    power-of-two division), scattered like noise over the input. Float inputs take it as is;
    integer inputs quantize it with ``quantization`` (``(scale, zero_point)`` or the input's TFLite
    detail: ``round(x / scale) + zero_point``, halves up), or without a scale map it to -128..127
    (0..255 unsigned); every integer input is clipped to its type's range.
    """
    import numpy as np  # absent on boards that time with lce_benchmark_model only

    shape = [1 if (d is None or d < 1) else int(d) for d in shape]
    count = 1
    for d in shape:
        count *= d
    index = np.arange(count, dtype=np.int64)
    modulus = 2 ** 31
    h = ((index * index % modulus) * 1103515245 + index * 12345 + 6789) % modulus
    x = h.astype(np.float64) / float(2 ** 30) - 1.0
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return (x > 0).reshape(shape)
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype).reshape(shape)
    scale, zero_point = _quantization(quantization)
    if scale > 0:
        q = np.floor(x / scale + 0.5) + zero_point
    elif np.issubdtype(dtype, np.unsignedinteger):
        q = np.floor((x + 1.0) * 128.0)
    else:
        q = np.floor(x * 128.0)
    info = np.iinfo(dtype)
    return np.clip(q, max(info.min, -2 ** 31), min(info.max, 2 ** 31 - 1)).astype(dtype).reshape(shape)


def output_vector(values, quantization=None, *, digits: int = 7) -> List[float]:
    """An output tensor as a flat list of floats rounded to ``digits`` significant digits; an integer
    (int8 / uint8) output with a ``quantization`` scale is dequantized: ``(q - zero_point) * scale``."""
    import numpy as np  # absent on boards that time with lce_benchmark_model only

    array = np.asarray(values)
    scale, zero_point = _quantization(quantization)
    if np.issubdtype(array.dtype, np.integer) and scale > 0:
        array = (array.astype(np.float64) - zero_point) * scale
    return [float("%.*g" % (digits, v)) for v in array.astype(np.float64).ravel().tolist()]


def probe_output(interpreter) -> Optional[List[float]]:
    """Run :func:`probe_input` once through a TFLite interpreter (allocated) or LCE's Python
    interpreter; its first output tensor as :func:`output_vector`, None when it has no output."""
    if hasattr(interpreter, "get_input_details"):
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], probe_input(detail["shape"], detail["dtype"], detail))
        interpreter.invoke()
        outputs = interpreter.get_output_details()
        if not outputs:
            return None
        return output_vector(interpreter.get_tensor(outputs[0]["index"]), outputs[0])
    scales = getattr(interpreter, "input_scales", None) or [None]
    zero_points = getattr(interpreter, "input_zero_points", None) or [None]
    x = probe_input(interpreter.input_shapes[0], interpreter.input_types[0], (scales[0], zero_points[0]))
    result = interpreter.predict(x)
    if isinstance(result, (list, tuple)):
        if not result:
            return None
        result = result[0]
    if result is None:
        return None
    out_scales = getattr(interpreter, "output_scales", None) or [None]
    out_zero_points = getattr(interpreter, "output_zero_points", None) or [None]
    return output_vector(result, (out_scales[0], out_zero_points[0]))


def time_callable(fn: Callable[[], object], *, runs: int, warmup: int) -> List[float]:
    """Wall time of each of ``runs`` calls of ``fn`` after ``warmup`` untimed ones, in milliseconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(1e3 * (time.perf_counter() - start))
    return samples


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    import resource  # POSIX only

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB on Linux
    return round(rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0, 1)


def latency_stats(samples_ms: Sequence[float]) -> Dict[str, float]:
    """``{mean, median, p90, min}`` of per-run latencies in milliseconds, rounded to 0.1 us.

    p90 interpolates linearly between order statistics (numpy's default percentile).
    """
    ms = sorted(float(s) for s in samples_ms)
    n = len(ms)
    if n == 0:
        raise ValueError("no timing samples")
    median = ms[n // 2] if n % 2 else 0.5 * (ms[n // 2 - 1] + ms[n // 2])
    pos = 0.9 * (n - 1)
    lo = int(pos)
    p90 = ms[lo] + (ms[min(lo + 1, n - 1)] - ms[lo]) * (pos - lo)
    return {"mean": round(sum(ms) / n, 4), "median": round(median, 4), "p90": round(p90, 4), "min": round(ms[0], 4)}


def kernels_for(choice: str) -> List[str]:
    """The kernels to time for a ``--kernel`` choice ("auto": both)."""
    if choice not in KERNEL_CHOICES:
        raise ValueError("kernel must be one of %s, got %r" % (", ".join(KERNEL_CHOICES), choice))
    return list(KERNELS) if choice == "auto" else [choice]


def fps(mean_ms: Optional[float], *, batch: int = 1) -> float:
    """Frames per second: ``1000 * batch / mean latency in ms``; 0.0 without a positive mean."""
    return round(1000.0 * batch / mean_ms, 3) if mean_ms and mean_ms > 0 else 0.0


def fastest(rows: List[Dict]) -> Dict:
    """The fastest ok row (lowest mean) of one model timed with several kernels; the others (or their
    errors) under ``alternatives``. When every kernel failed: the first row with all errors joined."""
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        best = rows[0]
        best["error"] = "; ".join("%s: %s" % (r["kernel"], r["error"]) for r in rows)
        return best
    best = min(ok, key=lambda r: r["latency_ms"]["mean"])
    others = [r for r in rows if r is not best]
    if others:
        best["alternatives"] = [{"kernel": r["kernel"], "status": r["status"], "error": r["error"],
                                 "mean_ms": (r["latency_ms"] or {}).get("mean")} for r in others]
    return best
