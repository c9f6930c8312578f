#!/usr/bin/env python3
"""Device-side benchmark runner: copied to a board by ``lcefr bench --remote`` and run there.

Standalone on purpose: Python >= 3.6 (JetPack 4), standard library only, plus whichever runtime
the board has (``lce_benchmark_model``, ``tflite_runtime``, TensorFlow, or the LCE wheel on x86).
It never imports lcefr.

    python3 runner.py machine                      # JSON facts about this machine
    python3 runner.py run --model m.tflite [...]   # one result row, printed as "LCEFR_ROW {json}"

A row has the keys of ``lcefr bench --json``: model, runtime, kernel, threads, latency_ms
{mean, median, p90, min}, fps, size_bytes, peak_rss_mb, status ("ok"/"failed"), error.
"""
from __future__ import print_function

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

ROW_PREFIX = "LCEFR_ROW "
LCE_OP_MARKERS = (b"LceBconv2d", b"LceQuantize", b"LceDequantize", b"LceBMaxPool2d")
BENCHMARK_NAMES = ("lce_benchmark_model", "lce_benchmark_model_aarch64", "lce_benchmark_model_aarch32")

# ---------------------------------------------------------------- lce_benchmark_model output

_TIMINGS = re.compile(
    r"Inference timings in us:\s*Init:\s*([\d.]+),\s*First inference:\s*([\d.]+),\s*"
    r"Warmup \(avg\):\s*([\d.eE+-]+),\s*Inference \(avg\):\s*([\d.eE+-]+)"
)
_STATS = re.compile(r"count=(\d+)\s+first=(\d+)\s+curr=(\d+)\s+min=(\d+)\s+max=(\d+)\s+avg=([\d.eE+-]+)\s+std=(\d+)")
_PEAK = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring:\s*([\d.eE+-]+)")
_DELTA = re.compile(r"Memory footprint delta from the start of the tool \(MB\):\s*init=([\d.eE+-]+)\s+overall=([\d.eE+-]+)")


def parse_benchmark_output(text):
    """Numbers from ``lce_benchmark_model`` / TFLite ``benchmark_model`` output (with or without
    the ``INFO: `` prefix of newer TFLite logging).

    Returns a dict: ``inference_avg_us``, ``init_us``, ``first_us``, ``warmup_avg_us``, ``runs``,
    ``min_us``, ``max_us``, ``std_us`` (the last ``count=`` line, i.e. the timed phase),
    ``peak_mb`` and ``overall_delta_mb`` (None when absent). Raises ValueError without a timings line.
    """
    timings = _TIMINGS.search(text)
    if not timings:
        raise ValueError("no 'Inference timings in us:' line in the benchmark output")
    init, first, warmup, avg = (float(v) for v in timings.groups())
    out = {"init_us": init, "first_us": first, "warmup_avg_us": warmup, "inference_avg_us": avg,
           "runs": None, "min_us": None, "max_us": None, "std_us": None, "peak_mb": None, "overall_delta_mb": None}
    stats = _STATS.findall(text)
    if stats:
        count, _first, _curr, lo, hi, _avg, std = stats[-1]
        out.update(runs=int(count), min_us=float(lo), max_us=float(hi), std_us=float(std))
    peak = _PEAK.search(text)
    if peak:
        out["peak_mb"] = float(peak.group(1))
    delta = _DELTA.search(text)
    if delta:
        out["overall_delta_mb"] = float(delta.group(2))
    return out


# ---------------------------------------------------------------- machine facts


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except (IOError, OSError):
        return None


def _glibc():
    name, version = platform.libc_ver()
    if name == "glibc" and version:
        return version
    try:
        out = subprocess.check_output(["ldd", "--version"], stderr=subprocess.STDOUT).decode("utf-8", "replace")
    except Exception:
        return None
    match = re.search(r"(\d+\.\d+)\s*$", out.splitlines()[0]) if out else None
    return match.group(1) if match else None


def _cpu_name(cpuinfo):
    if not cpuinfo:
        return platform.processor() or None
    for key in ("model name", "Model", "Hardware"):
        match = re.search(r"^%s\s*:\s*(.+)$" % key, cpuinfo, re.M)
        if match:
            return match.group(1).strip()
    parts = sorted(set(re.findall(r"^CPU part\s*:\s*(\S+)", cpuinfo, re.M)))
    return "ARM CPU part " + ",".join(parts) if parts else None


def _clocks():
    clocks = {}
    base = "/sys/devices/system/cpu"
    for entry in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        if re.match(r"cpu\d+$", entry):
            value = _read(os.path.join(base, entry, "cpufreq", "scaling_cur_freq"))
            if value and value.strip().isdigit():
                clocks[entry] = int(value.strip())  # kHz
    return clocks


def find_benchmark_binary(explicit=None):
    """``explicit`` if given, else one of BENCHMARK_NAMES next to this script or on PATH."""
    if explicit:
        return explicit if os.path.isfile(explicit) and os.access(explicit, os.X_OK) else None
    here = os.path.dirname(os.path.abspath(__file__))
    for name in BENCHMARK_NAMES:
        local = os.path.join(here, name)
        if os.path.isfile(local) and os.access(local, os.X_OK):
            return local
        found = shutil.which(name)
        if found:
            return found
    return None


def _python_runtimes():
    found = []
    for module in ("tflite_runtime", "tensorflow", "larq_compute_engine"):
        try:
            __import__(module)
            found.append(module)
        except Exception:
            pass
    return found


def machine_facts(benchmark=None):
    cpuinfo = _read("/proc/cpuinfo")
    model = _read("/proc/device-tree/model")
    return {
        "arch": platform.machine(),
        "cpu": _cpu_name(cpuinfo),
        "cores": os.cpu_count(),
        "board": model.strip("\x00\n ") if model else None,
        "glibc": _glibc(),
        "python": platform.python_version(),
        "clocks": _clocks(),
        "taskset": shutil.which("taskset") is not None,
        "timeout": shutil.which("timeout") is not None,
        "tegrastats": shutil.which("tegrastats") is not None,
        "lce_benchmark_model": find_benchmark_binary(benchmark),
        "python_runtimes": _python_runtimes(),
    }


# ---------------------------------------------------------------- timing


def _row(model, path, runtime, kernel, threads):
    return {"model": model, "runtime": runtime, "kernel": kernel, "threads": threads,
            "latency_ms": {"mean": None, "median": None, "p90": None, "min": None}, "fps": 0.0,
            "size_bytes": os.path.getsize(path) if os.path.exists(path) else 0, "peak_rss_mb": 0.0,
            "status": "ok", "error": None}


def _stats_ms(samples):
    ms = sorted(s * 1e3 for s in samples)
    n = len(ms)
    mid = ms[n // 2] if n % 2 else 0.5 * (ms[n // 2 - 1] + ms[n // 2])
    # p90 with linear interpolation between order statistics (numpy's default)
    pos = 0.9 * (n - 1)
    lo = int(pos)
    p90 = ms[lo] + (ms[min(lo + 1, n - 1)] - ms[lo]) * (pos - lo)
    return {"mean": round(sum(ms) / n, 4), "median": round(mid, 4), "p90": round(p90, 4), "min": round(ms[0], 4)}


def _peak_rss_mb():
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0, 1)


def is_lce_model(path):
    with open(path, "rb") as f:
        data = f.read()
    return any(marker in data for marker in LCE_OP_MARKERS)


def _python_interpreter(path, threads, lce, kernel):
    if lce:
        import larq_compute_engine as lce_mod

        if platform.machine() not in ("x86_64", "AMD64"):
            raise RuntimeError("the LCE Python interpreter runs on x86-64 only; install lce_benchmark_model on this board")
        with open(path, "rb") as f:
            interp = lce_mod.testing.Interpreter(f.read(), num_threads=threads, use_indirect_bgemm=kernel == "indirect")
        shape = [1 if (d is None or d < 1) else int(d) for d in interp.input_shapes[0]]
        dtype = interp.input_types[0]
        return (lambda x: interp.predict(x)), shape, dtype
    try:
        from tflite_runtime.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    interp = Interpreter(model_path=path, num_threads=threads)
    interp.allocate_tensors()
    detail = interp.get_input_details()[0]

    def run(x):
        interp.set_tensor(detail["index"], x)
        interp.invoke()

    return run, list(detail["shape"]), detail["dtype"]


def time_python(path, name, threads, runs, warmup, kernel):
    import numpy as np

    lce = is_lce_model(path)
    row = _row(name, path, "lce" if lce else "tflite", kernel if lce else "xnnpack", threads)
    try:
        run, shape, dtype = _python_interpreter(path, threads, lce, kernel)
        rng = np.random.RandomState(0)
        if np.issubdtype(np.dtype(dtype), np.integer):
            x = rng.randint(-128, 127, size=shape).astype(dtype)
        else:
            x = rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
        for _ in range(warmup):
            run(x)
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            run(x)
            samples.append(time.perf_counter() - start)
    except Exception as err:
        row["status"], row["error"] = "failed", "%s: %s" % (type(err).__name__, err)
        return row
    row["latency_ms"] = _stats_ms(samples)
    row["fps"] = round(1000.0 / row["latency_ms"]["mean"], 3)
    row["peak_rss_mb"] = _peak_rss_mb()
    return row


def time_binary(binary, path, name, threads, runs, warmup, kernel, timeout):
    lce = is_lce_model(path)
    row = _row(name, path, "lce_benchmark_model", kernel if lce else "xnnpack", threads)
    cmd = [binary, "--graph=" + path, "--num_threads=%d" % threads, "--num_runs=%d" % runs, "--min_secs=0",
           "--warmup_runs=%d" % max(warmup, 1), "--warmup_min_secs=0", "--report_peak_memory_footprint=true"]
    if lce:
        cmd.append("--use_indirect_bgemm=%s" % ("true" if kernel == "indirect" else "false"))
    else:
        cmd.append("--use_xnnpack=true")
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        text = proc.stdout.decode("utf-8", "replace")
        if proc.returncode != 0:
            raise RuntimeError("exit %d: %s" % (proc.returncode, text.strip().splitlines()[-1] if text.strip() else ""))
        parsed = parse_benchmark_output(text)
    except Exception as err:
        row["status"], row["error"] = "failed", "%s: %s" % (type(err).__name__, err)
        return row
    mean = parsed["inference_avg_us"] / 1e3
    low = parsed["min_us"] / 1e3 if parsed["min_us"] is not None else None
    # benchmark_model prints mean/min/max/std of the timed runs, not the median or p90
    row["latency_ms"] = {"mean": round(mean, 4), "median": None, "p90": None, "min": None if low is None else round(low, 4)}
    row["fps"] = round(1000.0 / mean, 3) if mean > 0 else 0.0
    row["peak_rss_mb"] = parsed["peak_mb"] or parsed["overall_delta_mb"] or 0.0
    return row


def run_model(args):
    path, name = args.model, args.name or os.path.basename(args.model)
    kernels = ["default", "indirect"] if args.kernel == "auto" else [args.kernel]
    binary = find_benchmark_binary(args.lce_benchmark) if args.runtime in ("auto", "lce_benchmark_model") else None
    if args.runtime == "lce_benchmark_model" and not binary:
        row = _row(name, path, "lce_benchmark_model", kernels[0], args.threads)
        row["status"], row["error"] = "failed", "lce_benchmark_model not found (%s)" % (args.lce_benchmark or "PATH")
        return row
    if not os.path.isfile(path):
        row = _row(name, path, "none", kernels[0], args.threads)
        row["status"], row["error"] = "failed", "model file not found: %s" % path
        return row
    if not is_lce_model(path):
        kernels = kernels[:1]
    rows = []
    for kernel in kernels:
        if binary:
            rows.append(time_binary(binary, path, name, args.threads, args.runs, args.warmup, kernel, args.timeout))
        else:
            rows.append(time_python(path, name, args.threads, args.runs, args.warmup, kernel))
    return fastest(rows)


def fastest(rows):
    """The fastest ok row of one model timed with several kernels; the others (or their errors)
    under ``alternatives``. When every kernel failed: the first row with all errors joined."""
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


def main(argv=None):
    ap = argparse.ArgumentParser(description="lcefr device-side benchmark runner")
    sub = ap.add_subparsers(dest="command")
    m = sub.add_parser("machine", help="print facts about this machine as JSON")
    m.add_argument("--lce-benchmark", default=None)
    r = sub.add_parser("run", help="time one .tflite model and print one result row")
    r.add_argument("--model", required=True)
    r.add_argument("--name", default=None)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--runs", type=int, default=20)
    r.add_argument("--warmup", type=int, default=3)
    r.add_argument("--kernel", choices=("auto", "default", "indirect"), default="auto")
    r.add_argument("--runtime", choices=("auto", "lce_benchmark_model", "python"), default="auto")
    r.add_argument("--lce-benchmark", default=None, help="path of lce_benchmark_model (default: next to this script or on PATH)")
    r.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args(argv)
    if args.command == "machine":
        print(json.dumps(machine_facts(args.lce_benchmark)))
        return 0
    if args.command == "run":
        print(ROW_PREFIX + json.dumps(run_model(args)))
        sys.stdout.flush()
        return 0
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
