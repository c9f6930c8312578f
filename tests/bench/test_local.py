"""``lcefr bench`` on this machine (lcefr.bench.local): input errors and the JSON rows."""
import json
import subprocess
import sys

import pytest

LCEFR = [sys.executable, "-m", "lcefr.cli"]


@pytest.mark.parametrize("args,message", [
    (["missing.tflite"], "model file not found"),
    (["NOT_A_MODEL"], "is not a TFLite flatbuffer (no TFL3 identifier)"),
])
def test_bench_bad_input(tmp_path, args, message):
    if args == ["NOT_A_MODEL"]:
        (tmp_path / "x.tflite").write_text("hello world, not a flatbuffer")
        args = [str(tmp_path / "x.tflite")]
    proc = subprocess.run(LCEFR + ["bench", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_local_bench_json_keys(tmp_path):
    import tensorflow as tf

    from lcefr.convert.api import convert
    from lcefr.source import load_source

    tf.keras.backend.clear_session()
    src = load_source("test_quicknet")
    for target, name in (("tflite", "q.tflite"), ("tflite-float", "q.float.tflite")):
        (tmp_path / name).write_bytes(convert(src.model, target=target, name="q")[0])
    proc = subprocess.run(LCEFR + ["bench", str(tmp_path / "q.tflite"), str(tmp_path / "q.float.tflite"), "--runs", "3", "--json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 0, proc.stderr[-1000:]
    rows = json.loads(proc.stdout[proc.stdout.index("["):])
    keys = {"model", "runtime", "kernel", "threads", "latency_ms", "fps", "size_bytes", "peak_rss_mb", "status", "error"}
    assert all(keys <= set(r) for r in rows)
    assert [(r["model"], r["runtime"]) for r in rows] == [("q", "lce"), ("q.float", "tflite")]
    assert rows[0]["kernel"] in ("default", "indirect") and rows[0]["alternatives"][0]["kernel"] != rows[0]["kernel"]
    assert all(r["fps"] > 0 and r["latency_ms"]["min"] <= r["latency_ms"]["median"] for r in rows)
