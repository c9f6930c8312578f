"""The loopback ``sshd`` fixture of tests/bench/conftest.py, for the TensorRT remote tests.

tests/ is not a package (no ``__init__.py``; pytest's rootdir conftest imports are by path), so
the bench conftest is loaded from its file under a private module name and its fixture re-exported.
"""
import importlib.util
import os
import sys

_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "conftest.py")
_spec = importlib.util.spec_from_file_location("lcefr_tests_bench_conftest", _PATH)
_bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _bench  # dataclasses look their module up in sys.modules
_spec.loader.exec_module(_bench)

sshd = _bench.sshd
