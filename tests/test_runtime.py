"""lcefr.runtime: the TFL3 check, latency statistics and the one FPS definition (1000 / mean)."""
import ast
import os
import subprocess
import sys

import numpy as np
import pytest

from lcefr import runtime
from lcefr.runtime import check_tflite, fastest, fps, is_lce_model, latency_stats, model_name


def test_check_tflite():
    check_tflite(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 8)
    with pytest.raises(ValueError, match=r"^not a TFLite flatbuffer \(no TFL3 identifier\)$"):
        check_tflite(b"\x00\x00\x00\x00TFL")
    with pytest.raises(ValueError, match=r"^m\.tflite is not a TFLite flatbuffer \(no TFL3 identifier\)$"):
        check_tflite(b"hello world", name="m.tflite")


def test_is_lce_model_and_model_name():
    assert is_lce_model(b"\x1c\x00\x00\x00TFL3LceBconv2d") and not is_lce_model(b"\x1c\x00\x00\x00TFL3CONV_2D")
    assert model_name("/a/quicknet.tflite") == "quicknet" and model_name("q.float.tflite") == "q.float"
    assert model_name("x.onnx") == "x.onnx"


@pytest.mark.parametrize("n", [1, 2, 5, 37])
def test_latency_stats_match_numpy(n):
    ms = np.random.default_rng(n).uniform(10.0, 20.0, n)
    stats = latency_stats(list(ms))
    assert set(stats) == {"mean", "median", "p90", "min"}
    assert stats["mean"] == pytest.approx(ms.mean(), abs=1e-4)
    assert stats["median"] == pytest.approx(np.median(ms), abs=1e-4)
    assert stats["p90"] == pytest.approx(np.percentile(ms, 90), abs=1e-4)
    assert stats["min"] == pytest.approx(ms.min(), abs=1e-4)
    with pytest.raises(ValueError, match="no timing samples"):
        latency_stats([])


def test_fps_is_1000_over_mean():
    assert fps(4.0) == 250.0 and fps(3.0) == 333.333 and fps(4.0, batch=8) == 2000.0
    assert fps(0.0) == 0.0 and fps(None) == 0.0


def test_fastest_keeps_the_others():
    rows = [{"kernel": "default", "status": "ok", "error": None, "latency_ms": {"mean": 3.0}},
            {"kernel": "indirect", "status": "ok", "error": None, "latency_ms": {"mean": 2.0}}]
    best = fastest(rows)
    assert best["kernel"] == "indirect" and best["alternatives"] == [
        {"kernel": "default", "status": "ok", "error": None, "mean_ms": 3.0}]
    failed = [{"kernel": k, "status": "failed", "error": "boom", "latency_ms": {}} for k in ("default", "indirect")]
    assert fastest(failed)["error"] == "default: boom; indirect: boom"


def test_runtime_is_board_safe():
    """Copied to boards next to the runner: Python 3.6 syntax, standard library at import time."""
    source = open(runtime.__file__).read()
    tree = ast.parse(source, feature_version=(3, 6))
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            assert node.module not in ("__future__", "dataclasses"), f"{node.module} breaks Python 3.6"
    code = ("import sys\nfor m in ('numpy', 'tensorflow', 'larq', 'larq_compute_engine'): sys.modules[m] = None\n"
            "import runtime\nprint(runtime.latency_stats([1.0, 3.0])['mean'], runtime.fps(2.0))\n")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(runtime.__file__))  # -S: no site-packages, so no installed lcefr
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2.0", "500.0"]
