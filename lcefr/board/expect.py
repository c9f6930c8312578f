"""Measurement against expectation in board reports: ``expected_ms`` per row and the flag that tells
an unoptimized runtime from a slow model.

The expectation is :func:`lcefr.estimate.expected_ms` for the board's CPU (from ``/proc/cpuinfo``)
and clock; it is None on an emulated board and on CPUs the cost model does not cover (an x86 host).
A row measured above :data:`FLAG_FACTOR` times the upper expectation is flagged: a runtime ~100x
slower than its kernels allow is what a CMake build without ``-DCMAKE_BUILD_TYPE=Release`` gives
(LCE issue #815), and seed 001's Jetson Nano figures sit about that far below the estimate.
"""
from __future__ import annotations

from typing import Dict, Optional

from lcefr.estimate import FLAG_FACTOR, expected_ms
from lcefr.runtime import KERNELS

__all__ = ["FLAG_FACTOR", "UNOPTIMIZED_HINT", "add_expectations", "check_row"]

UNOPTIMIZED_HINT = ("likely an unoptimized runtime: an lce_benchmark_model (or TFLite) built without "
                    "-DCMAKE_BUILD_TYPE=Release runs ~100x slower (LCE issue #815). Rebuild it in Release mode "
                    "(make jetson-setup does) or use LCE's release binary; check the clocks (sudo nvpmodel -m 0, "
                    "sudo jetson_clocks) and that nothing else runs on the pinned core")


def check_row(row: Dict, path: Optional[str], machine: Dict) -> Optional[str]:
    """Set ``expected_ms`` (and ``flag`` when far too slow) on one report row; return why there is
    no expectation, if there is none."""
    row["expected_ms"] = None
    if not path:
        return "model file unknown"
    kernel = row.get("kernel") if row.get("kernel") in KERNELS else "auto"
    float_ops = row.get("float_ops") if row.get("float_ops") in ("xnnpack", "builtin") else "xnnpack"
    try:
        expected, why = expected_ms(path, machine, kernel=kernel, float_ops=float_ops)
    except (OSError, ValueError) as err:
        row["expected_error"] = f"{type(err).__name__}: {err}"
        return str(err)
    row["expected_ms"] = expected
    if expected is None:
        return why
    mean = (row.get("latency_ms") or {}).get("mean")
    if row.get("status") == "ok" and mean and mean > FLAG_FACTOR * expected["high"]:
        row["flag"] = (f"{mean:.1f} ms measured, {expected['low']:.1f}-{expected['high']:.1f} ms expected "
                       f"({mean / expected['high']:.0f}x the upper bound): {UNOPTIMIZED_HINT}")
    return None


def add_expectations(report, files_by_name: Dict[str, str]) -> None:
    """Every ``.tflite`` row of a HostReport; the reason for missing expectations goes to
    ``machine["expectation"]``."""
    reasons = set()
    for row in report.results:
        if row.get("runtime") == "tensorrt":
            continue
        why = check_row(row, files_by_name.get(row.get("model")), report.machine)
        if why:
            reasons.add(why)
    if reasons:
        report.machine["expectation"] = "; ".join(sorted(reasons))
