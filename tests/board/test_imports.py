"""``lcefr.board`` imports without TensorFlow: the SSH side runs on hosts and in jobs that have none."""
import pkgutil
import subprocess
import sys

import lcefr.board


def test_board_imports_without_tensorflow():
    modules = sorted(f"lcefr.board.{m.name}" for m in pkgutil.iter_modules(lcefr.board.__path__))
    assert {"lcefr.board.ssh", "lcefr.board.facts", "lcefr.board.setup", "lcefr.board.lce", "lcefr.board.trt",
            "lcefr.board.runner"} <= set(modules)
    code = ("import importlib, sys\n"
            "sys.modules['tensorflow'] = None  # any import of it fails\n"
            f"for name in ['lcefr.board'] + {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "heavy = [m for m in ('tensorflow', 'larq', 'larq_compute_engine', 'tf_keras', 'keras')\n"
            "         if sys.modules.get(m) is not None]\n"
            "print('heavy:', heavy)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "heavy: []"
