"""Latency measurement on this machine; boards over SSH are :mod:`lcefr.board`."""
from lcefr.bench.local import BenchResult, bench_files, time_lce, time_tflite

__all__ = ["BenchResult", "bench_files", "time_lce", "time_tflite"]
