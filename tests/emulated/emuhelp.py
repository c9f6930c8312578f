"""Shared by the emulated-board tests: paths and subprocess helpers."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LCEFR = [sys.executable, "-m", "lcefr.cli"]
MODELS = os.path.join(ROOT, "build", "models")
STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lce_benchmark_standin.sh")


def lcefr(*args, env=None, timeout=900):
    return subprocess.run(LCEFR + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def make(*args, env=None, timeout=1800):
    return subprocess.run(["make", "--no-print-directory", "-C", ROOT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, env=dict(os.environ, **(env or {})))
