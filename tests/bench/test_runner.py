"""The device-side runner: benchmark-output parsing, machine facts, local rows; lcefr bench input errors."""
import json
import os
import subprocess
import sys

import pytest

from lcefr.bench import runner

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "bench")
LCEFR = [sys.executable, "-m", "lcefr.cli"]


def _fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def test_parse_benchmark_output_with_info_prefix():
    out = runner.parse_benchmark_output(_fixture("lce_benchmark_rpi4_info.txt"))
    assert out["inference_avg_us"] == 31420.6 and out["init_us"] == 1471 and out["first_us"] == 41707
    assert out["warmup_avg_us"] == 32491.4
    assert (out["runs"], out["min_us"], out["max_us"], out["std_us"]) == (50, 31138, 31929, 260)  # timed phase, not warm-up
    assert out["peak_mb"] == 16.5195 and out["overall_delta_mb"] == 12.3477


def test_parse_benchmark_output_plain_and_missing():
    out = runner.parse_benchmark_output(_fixture("lce_benchmark_plain.txt"))
    assert out["inference_avg_us"] == 31420.6 and out["peak_mb"] is None and out["overall_delta_mb"] == 12.3477
    with pytest.raises(ValueError, match="Inference timings"):
        runner.parse_benchmark_output("ERROR: Could not open 'x.tflite'.\n")


def test_fake_benchmark_binary_row(tmp_path):
    """A stand-in lce_benchmark_model that prints the documented output: the runner's row and flags."""
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"LceBconv2d" + b"\x00" * 32)
    args_log = tmp_path / "args"
    fake = tmp_path / "lce_benchmark_model"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {args_log}\ncat {os.path.join(FIXTURES, 'lce_benchmark_rpi4_info.txt')}\n")
    fake.chmod(0o755)
    out = subprocess.run([sys.executable, runner.__file__, "run", "--model", str(model), "--lce-benchmark", str(fake),
                          "--runs", "7", "--kernel", "auto"], stdout=subprocess.PIPE, text=True, check=True).stdout
    row = json.loads(out.split(runner.ROW_PREFIX, 1)[1])
    assert row["runtime"] == "lce_benchmark_model" and row["status"] == "ok"
    assert row["latency_ms"]["mean"] == pytest.approx(31.4206) and row["latency_ms"]["min"] == pytest.approx(31.138)
    assert row["fps"] == pytest.approx(1000 / 31.4206, rel=1e-3) and row["peak_rss_mb"] == 16.5195
    calls = args_log.read_text().splitlines()
    assert len(calls) == 2  # auto: both kernels
    assert all("--num_threads=1" in c and "--num_runs=7" in c for c in calls)
    assert any("--use_indirect_bgemm=true" in c for c in calls) and any("--use_indirect_bgemm=false" in c for c in calls)


def test_failing_binary_is_a_failed_row(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 32)
    fake = tmp_path / "lce_benchmark_model"
    fake.write_text("#!/bin/sh\necho 'ERROR: Failed to allocate tensors' >&2\nexit 1\n")
    fake.chmod(0o755)
    out = subprocess.run([sys.executable, runner.__file__, "run", "--model", str(model), "--lce-benchmark", str(fake)],
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    row = json.loads(out.split(runner.ROW_PREFIX, 1)[1])
    assert row["status"] == "failed" and "Failed to allocate" in row["error"]


def test_machine_facts_here():
    facts = runner.machine_facts()
    assert facts["arch"] and facts["cores"] >= 1 and facts["python"].count(".") == 2
    assert isinstance(facts["clocks"], dict) and facts["taskset"] in (True, False)


def test_stats_match_numpy():
    import numpy as np

    samples = list(np.random.default_rng(0).uniform(0.01, 0.02, 37))
    stats = runner._stats_ms(samples)
    ms = np.asarray(samples) * 1e3
    assert stats["median"] == pytest.approx(np.median(ms), abs=1e-4)
    assert stats["p90"] == pytest.approx(np.percentile(ms, 90), abs=1e-4)


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
