#!/usr/bin/env python3
"""Device-side benchmark runner: copied to a board by ``lcefr bench --remote`` and run there.

Standalone on purpose: Python >= 3.6 (JetPack 4), standard library only, plus whichever runtime
the board has (``lce_benchmark_model``, ``tflite_runtime``, TensorFlow, or the LCE wheel on x86).
Of lcefr it imports only :mod:`lcefr.runtime` (statistics, FPS, interpreters; itself standard
library at import), which the bench copies to ``lcefr/runtime.py`` next to this file.

    python3 runner.py machine                      # JSON facts about this machine
    python3 runner.py run --model m.tflite [...]   # one result row, printed as "LCEFR_ROW {json}"

A row has the keys of ``lcefr bench --json``: model, runtime, kernel, threads, latency_ms
{mean, median, p90, min}, fps, size_bytes, peak_rss_mb, status ("ok"/"failed"), error; and
float_ops ("xnnpack" when the XNNPACK delegate ran the float/int8 ops, "builtin" when the binary
ignored ``--use_xnnpack``, None when unknown) and output (the first output tensor for the parity
probe, :func:`lcefr.runtime.probe_input`, as floats; None from ``lce_benchmark_model``, which
prints no outputs). The host compares ``output`` with its own and reports ``parity`` instead.
"""
from __future__ import print_function

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys

# on a board, lcefr/ next to this file holds only runtime.py (a namespace package)
from lcefr.runtime import (ARM_PARTS, BOARD_RUNTIMES, KERNEL_CHOICES, fastest, fps, interpreter_module, is_lce_model,
                           kernels_for, latency_stats, lce_interpreter, peak_rss_mb, probe_output, random_input,
                           time_callable, tflite_interpreter)

ROW_PREFIX = "LCEFR_ROW "
#: where ``lcefr jetson-setup`` (default --workdir) puts the binary
SETUP_BINARY = "~/lcefr/lce_benchmark_model"
BENCHMARK_NAMES = ("lce_benchmark_model", "lce_benchmark_model_aarch64", "lce_benchmark_model_aarch32")
#: written into emulated boards' root filesystems: JSON such as {"emulated": true, "cpu": "cortex-a57", ...}
EMULATED_MARKER = "/etc/lcefr-emulated-board"

# ---------------------------------------------------------------- lce_benchmark_model output

_TIMINGS = re.compile(
    r"Inference timings in us:\s*Init:\s*([\d.]+),\s*First inference:\s*([\d.]+),\s*"
    r"Warmup \(avg\):\s*([\d.eE+-]+),\s*Inference \(avg\):\s*([\d.eE+-]+)"
)
_STATS = re.compile(r"count=(\d+)\s+first=(\d+)\s+curr=(\d+)\s+min=(\d+)\s+max=(\d+)\s+avg=([\d.eE+-]+)\s+std=(\d+)")
_PEAK = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring:\s*([\d.eE+-]+)")
_DELTA = re.compile(r"Memory footprint delta from the start of the tool \(MB\):\s*init=([\d.eE+-]+)\s+overall=([\d.eE+-]+)")
_UNCONSUMED = re.compile(r"Unconsumed cmdline flags:[ \t]*([^\n]*)(?:\n([^\n]*))?")
_XNNPACK_FAILED = re.compile(r"Failed to (?:apply|create) (?:the )?XNNPACK delegate|XNNPACK delegate failed", re.I)


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


def float_ops_of(text):
    """"builtin" when the benchmark output says ``--use_xnnpack`` went unused (a binary built without
    XNNPACK lists it under "Unconsumed cmdline flags") or the delegate failed, else "xnnpack"."""
    for match in _UNCONSUMED.finditer(text):
        flags = match.group(1).strip() or (match.group(2) or "")
        if "--use_xnnpack" in flags:
            return "builtin"
    return "builtin" if _XNNPACK_FAILED.search(text) else "xnnpack"


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
    """The CPU of /proc/cpuinfo: ARM Ltd. cores by their part number (``CPU part : 0xd07`` is a
    Cortex-A57; ARM kernels print no "model name", or a generic "ARMv8 Processor"), else the model name."""
    if not cpuinfo:
        return platform.processor() or None
    parts = sorted(set(p.lower() for p in re.findall(r"^CPU part\s*:\s*(\S+)", cpuinfo, re.M)))
    implementers = set(i.lower() for i in re.findall(r"^CPU implementer\s*:\s*(\S+)", cpuinfo, re.M))
    if parts and implementers <= {"0x41"} and all(p in ARM_PARTS for p in parts):
        return ", ".join(sorted(set(ARM_PARTS[p] for p in parts)))
    for key in ("model name", "Model", "Hardware"):
        match = re.search(r"^%s\s*:\s*(.+)$" % key, cpuinfo, re.M)
        if match:
            return match.group(1).strip()
    return "ARM CPU part " + ",".join(parts) if parts else None


def _emulated(path=None):
    """The parsed JSON of :data:`EMULATED_MARKER` on an emulated board (``{"emulated": True}`` with the
    text under ``"marker"`` when it is not a JSON object), None on real hardware."""
    text = _read(path or EMULATED_MARKER)
    if text is None:
        return None
    try:
        facts = json.loads(text)
    except ValueError:
        facts = None
    if not isinstance(facts, dict):
        return {"emulated": True, "marker": text.strip()[:200]}
    return facts


def _clocks():
    clocks = {}
    base = "/sys/devices/system/cpu"
    for entry in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        if re.match(r"cpu\d+$", entry):
            value = _read(os.path.join(base, entry, "cpufreq", "scaling_cur_freq"))
            if value and value.strip().isdigit():
                clocks[entry] = int(value.strip())  # kHz
    return clocks


def _signal_name(number):
    try:
        return " (%s)" % signal.Signals(number).name
    except (ValueError, AttributeError):
        return ""


def find_benchmark_binary(explicit=None):
    """``explicit`` if given (``~`` is the board user's home), else one of BENCHMARK_NAMES next to
    this script or on PATH, else where ``lcefr jetson-setup`` installs it (SETUP_BINARY)."""
    if explicit:
        explicit = os.path.expanduser(explicit)
        return explicit if os.path.isfile(explicit) and os.access(explicit, os.X_OK) else None
    here = os.path.dirname(os.path.abspath(__file__))
    for name in BENCHMARK_NAMES:
        local = os.path.join(here, name)
        if os.path.isfile(local) and os.access(local, os.X_OK):
            return local
        found = shutil.which(name)
        if found:
            return found
    installed = os.path.expanduser(SETUP_BINARY)
    return installed if os.path.isfile(installed) and os.access(installed, os.X_OK) else None


def _python_runtimes():
    found = []
    for module in BOARD_RUNTIMES + ("tensorflow", "larq_compute_engine"):
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
        "emulated": _emulated(),
    }


# ---------------------------------------------------------------- timing


def _row(model, path, runtime, kernel, threads):
    return {"model": model, "runtime": runtime, "kernel": kernel, "threads": threads,
            "latency_ms": {"mean": None, "median": None, "p90": None, "min": None}, "fps": 0.0,
            "size_bytes": os.path.getsize(path) if os.path.exists(path) else 0, "peak_rss_mb": 0.0,
            "status": "ok", "error": None, "float_ops": None, "output": None}


def _model_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def _python_interpreter(path, threads, lce, kernel):
    if lce:
        try:
            interp = lce_interpreter(_model_bytes(path), threads=threads, kernel=kernel)
        except (RuntimeError, ImportError) as err:
            raise RuntimeError("no LCE runtime here (%s): LCE files need lce_benchmark_model on this board, "
                               "make jetson-setup (lcefr jetson-setup) installs it" % err)
        return interp, (lambda x: interp.predict(x)), interp.input_shapes[0], interp.input_types[0]
    interp = tflite_interpreter(_model_bytes(path), threads=threads, prefer_tflite_runtime=True)
    detail = interp.get_input_details()[0]

    def run(x):
        interp.set_tensor(detail["index"], x)
        interp.invoke()

    return interp, run, list(detail["shape"]), detail["dtype"]


def time_python(path, name, threads, runs, warmup, kernel):
    lce = is_lce_model(_model_bytes(path))
    row = _row(name, path, "lce" if lce else "tflite", kernel if lce else "xnnpack", threads)
    try:
        interp, run, shape, dtype = _python_interpreter(path, threads, lce, kernel)
        x = random_input(shape, dtype)
        samples = time_callable(lambda: run(x), runs=runs, warmup=warmup)
    except Exception as err:
        row["status"], row["error"] = "failed", "%s: %s" % (type(err).__name__, err)
        return row
    row["latency_ms"] = latency_stats(samples)
    row["fps"] = fps(row["latency_ms"]["mean"])
    row["peak_rss_mb"] = peak_rss_mb()
    row["float_ops"] = "xnnpack"  # ai-edge-litert / tflite-runtime / TensorFlow / LCE apply XNNPACK by default
    if not lce:
        row["interpreter"] = interpreter_module(interp)
    try:  # after the timing: the probe's output, which the host compares with its own (parity)
        row["output"] = probe_output(interp)
    except Exception as err:
        row["output_error"] = "%s: %s" % (type(err).__name__, err)
    return row


def time_binary(binary, path, name, threads, runs, warmup, kernel, timeout):
    lce = is_lce_model(_model_bytes(path))
    # a float / int8 file's kernel is what ran its ops: "xnnpack" only once the output shows it did
    row = _row(name, path, "lce_benchmark_model", kernel if lce else "builtin", threads)
    cmd = [binary, "--graph=" + path, "--num_threads=%d" % threads, "--num_runs=%d" % runs, "--min_secs=0",
           "--warmup_runs=%d" % max(warmup, 1), "--warmup_min_secs=0", "--report_peak_memory_footprint=true",
           "--use_xnnpack=true"]
    if lce:
        cmd.append("--use_indirect_bgemm=%s" % ("true" if kernel == "indirect" else "false"))
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        text = proc.stdout.decode("utf-8", "replace")
        if proc.returncode < 0:
            raise RuntimeError("lce_benchmark_model killed by signal %d%s" % (-proc.returncode, _signal_name(-proc.returncode)))
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
    row["fps"] = fps(mean)
    row["peak_rss_mb"] = parsed["peak_mb"] or parsed["overall_delta_mb"] or 0.0
    row["float_ops"] = float_ops_of(text)
    if not lce:
        row["kernel"] = row["float_ops"]
    return row


def run_model(args):
    path, name = args.model, args.name or os.path.basename(args.model)
    kernels = kernels_for(args.kernel)
    binary = find_benchmark_binary(args.lce_benchmark) if args.runtime in ("auto", "lce_benchmark_model") else None
    if args.runtime == "lce_benchmark_model" and not binary:
        row = _row(name, path, "lce_benchmark_model", kernels[0], args.threads)
        row["status"], row["error"] = "failed", "lce_benchmark_model not found (%s)" % (args.lce_benchmark or "PATH")
        return row
    if not os.path.isfile(path):
        row = _row(name, path, "none", kernels[0], args.threads)
        row["status"], row["error"] = "failed", "model file not found: %s" % path
        return row
    if not is_lce_model(_model_bytes(path)):
        kernels = kernels[:1]
    rows = []
    for kernel in kernels:
        if binary:
            rows.append(time_binary(binary, path, name, args.threads, args.runs, args.warmup, kernel, args.timeout))
        else:
            rows.append(time_python(path, name, args.threads, args.runs, args.warmup, kernel))
    return fastest(rows)


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
    r.add_argument("--kernel", choices=KERNEL_CHOICES, default="auto")
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
