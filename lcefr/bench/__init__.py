"""Latency measurement: local interpreters now, remote (SSH) boards in :mod:`lcefr.bench.remote`."""
from lcefr.bench.local import BenchResult, latency_stats, time_lce, time_tflite, lce_interpreter

__all__ = ["BenchResult", "latency_stats", "time_lce", "time_tflite", "lce_interpreter"]
