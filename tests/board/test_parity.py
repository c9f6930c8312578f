"""On-board parity: the runner's output for the fixed probe input against the host's, per row."""
import csv
import json
import math
import os
import sys

import pytest

from lcefr.board import lce, runner
from lcefr.board.lce import BenchOptions, HostReport, add_parity, bench_host, cosine, host_output, write_reports
from lcefr.board.ssh import SSHTarget

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "bench")


@pytest.fixture(scope="module")
def small_models(tmp_path_factory):
    """A float and a fully int8 flatbuffer of one small conv net (seconds to convert)."""
    import numpy as np
    import tensorflow as tf

    d = tmp_path_factory.mktemp("parity_models")
    tf.keras.backend.clear_session()
    inputs = tf.keras.Input((12, 12, 3))
    x = tf.keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(10, activation="softmax")(x))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    (d / "small.float.tflite").write_bytes(converter.convert())
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([np.random.RandomState(i).uniform(-1, 1, (1, 12, 12, 3)).astype(np.float32)]
                                                for i in range(16))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    (d / "small.int8.tflite").write_bytes(converter.convert())
    return {"float": str(d / "small.float.tflite"), "int8": str(d / "small.int8.tflite")}


def _target(sshd):
    return SSHTarget(sshd.host, port=sshd.port, key=sshd.key, known_hosts=sshd.known_hosts, python=sys.executable)


def _options(**kw):
    return BenchOptions(runs=3, warmup=1, core=None, timeout=300.0, **kw)


def test_cosine():
    assert cosine([1.0, 2.0], [2.0, 4.0]) == pytest.approx(1.0)
    assert cosine([1.0, 0.0], [0.0, 1.0]) == 0.0 and cosine([1.0, 0.0], [-1.0, 0.0]) == -1.0
    assert cosine([0.0, 0.0], [0.0, 0.0]) == 1.0 and cosine([0.0, 0.0], [1.0, 0.0]) == 0.0
    assert math.isnan(cosine([float("nan"), 1.0], [1.0, 1.0]))
    with pytest.raises(ValueError, match="sizes differ"):
        cosine([1.0], [1.0, 2.0])


def test_python_runner_row_carries_the_probe_output(small_models):
    for kind, path in small_models.items():
        row = runner.time_python(path, kind, threads=1, runs=2, warmup=1, kernel="indirect")
        assert row["status"] == "ok" and row["float_ops"] == "xnnpack" and row["kernel"] == "xnnpack"
        assert len(row["output"]) == 10 and all(isinstance(v, float) for v in row["output"])
        host, host_kind = host_output(path)
        assert host_kind == kind and cosine(row["output"], host) > 0.99999
    # int8 output dequantized: softmax probabilities, not integers in -128..127
    assert sum(row["output"]) == pytest.approx(1.0, abs=0.05)


def test_host_that_cannot_run_the_file_keeps_the_row(monkeypatch):
    def broken(path, kernel="indirect"):
        raise RuntimeError("LCE's Python interpreter runs on x86-64 only, this is aarch64")

    monkeypatch.setattr(lce, "host_output", broken)
    row = add_parity({"status": "ok", "kernel": "indirect", "error": None, "output": [1.0, 2.0]}, "m.tflite")
    assert row["status"] == "ok" and row["parity"] is None and "x86-64 only" in row["parity_error"] and "output" not in row
    row = add_parity({"status": "ok", "kernel": "builtin", "error": None, "output": None}, "m.tflite")
    assert row["parity"] is None and "parity_error" not in row
    row = add_parity({"status": "ok", "kernel": "xnnpack", "error": None, "output": None,
                      "output_error": "ValueError: no"}, "m.tflite")
    assert row["parity"] is None and "no output on the board" in row["parity_error"] and "output_error" not in row


def test_emulated_board_in_the_markdown_header(tmp_path):
    report = HostReport(host="root@a57", label="a57", started_utc="2026-01-01T00:00:00Z",
                        machine={"cpu": "Cortex-A57", "arch": "aarch64",
                                 "emulated": {"emulated": True, "cpu": "cortex-a57"}},
                        results=[{"model": "m", "runtime": "tflite", "kernel": "xnnpack", "threads": 1, "fps": 2.0,
                                  "latency_ms": {"mean": 500.0}, "status": "ok", "error": None, "parity": 0.9999994}])
    paths = write_reports(report, str(tmp_path), stamp="x")
    md = open(paths["md"]).read()
    assert "Cortex-A57 (aarch64, glibc ?, Python ?), emulated (cpu cortex-a57)" in md
    assert "| parity |" in md and "| 0.999999 |" in md
    report.machine["emulated"] = None
    assert "emulated" not in open(write_reports(report, str(tmp_path), stamp="y")["md"]).read()


@pytest.mark.slow
def test_parity_over_ssh(sshd, small_models, tmp_path):
    report = bench_host(_target(sshd), [small_models["float"], small_models["int8"]], _options())
    assert report.error is None and [r["status"] for r in report.results] == ["ok", "ok"], report.results
    for row in report.results:
        assert "output" not in row and row["float_ops"] == "xnnpack"
        assert row["parity"] >= 0.999 and row["parity"] == round(row["parity"], 6)
    paths = write_reports(report, str(tmp_path), stamp="x")
    with open(paths["csv"]) as f:
        table = list(csv.DictReader(f))
    assert [float(t["parity"]) for t in table] == [r["parity"] for r in report.results]
    assert "| parity |" in open(paths["md"]).read()
    saved = json.load(open(paths["json"]))["results"]
    assert all("output" not in r and "parity" in r for r in saved)


@pytest.mark.slow
def test_benchmark_binary_rows_have_no_parity(sshd, small_models, tmp_path):
    fake = tmp_path / "lce_benchmark_model"
    fake.write_text("#!/bin/sh\necho 'WARN: Unconsumed cmdline flags: --use_xnnpack=true'\n"
                    f"cat {os.path.join(FIXTURES, 'lce_benchmark_rpi4_info.txt')}\n")
    fake.chmod(0o755)
    report = bench_host(_target(sshd), [small_models["float"]],
                        _options(runtime="lce_benchmark_model", lce_benchmark=str(fake)))
    row = report.results[0]
    assert row["status"] == "ok" and row["runtime"] == "lce_benchmark_model", row
    assert row["parity"] is None and "output" not in row and "parity_error" not in row
    assert row["float_ops"] == "builtin" and row["kernel"] == "builtin"


@pytest.mark.slow
def test_output_that_differs_fails_a_float_row_only(sshd, small_models, monkeypatch):
    real = lce.host_output

    def flipped(path, kernel="indirect"):  # as if the board computed something else: every other sign flipped
        output, kind = real(path, kernel)
        return [-v if i % 2 else v for i, v in enumerate(output)], kind

    monkeypatch.setattr(lce, "host_output", flipped)
    report = bench_host(_target(sshd), [small_models["float"], small_models["int8"]], _options())
    flt, int8 = report.results
    assert flt["status"] == "failed" and flt["parity"] < 0.999
    assert flt["error"] == f"on-board output differs from the host's: cosine {flt['parity']:.6f} < 0.999"
    assert int8["status"] == "ok" and int8["parity"] < 0.999  # int8: reported only
    assert report.failed
