import os
import subprocess
import sys

import pytest


def _run(code, **env):
    full = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=300)


def test_import_selects_legacy_keras():
    proc = _run("import lcefr, os, tensorflow as tf; print(os.environ['TF_USE_LEGACY_KERAS'], tf.keras.__name__)")
    assert proc.returncode == 0, proc.stderr
    flag, module = proc.stdout.split()
    assert flag == "1" and module.startswith("tf_keras")


def test_variable_set_to_zero_fails_with_one_clear_line():
    proc = _run("import lcefr", TF_USE_LEGACY_KERAS="0")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "KerasModeError" in last and "TF_USE_LEGACY_KERAS='0'" in last


@pytest.mark.slow
def test_keras3_already_loaded_fails():
    proc = _run("import keras; import lcefr")
    assert proc.returncode != 0
    assert "Keras 3" in proc.stderr.strip().splitlines()[-1]
