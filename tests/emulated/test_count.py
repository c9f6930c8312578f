"""`lcefr bench --emulate cortex-a57`: instructions per inference under qemu with the counting plugin."""
import json
import os
import shutil

import pytest

from emuhelp import STANDIN, lcefr

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("board_exclusive")]

#: ../shared/reference/arm-a57.md, section 3: quicknet_small's float file on tflite-runtime 2.14 (XNNPACK), A57
REFERENCE_FLOAT_XNNPACK = 102.3e6
ROW_KEYS = {"model", "runtime", "kernel", "float_ops", "cpu", "instructions", "status", "error"}


def _count(*args):
    proc = lcefr("bench", "--emulate", "cortex-a57", "--json", *args, timeout=1800)
    return proc, (json.loads(proc.stdout) if proc.stdout.strip().startswith("[") else None)


def test_quicknet_small_float_count_is_deterministic_and_matches_the_reference(board_session, model_files):
    runs = []
    for _ in range(2):
        proc, rows = _count(model_files["float"])
        assert proc.returncode == 0, proc.stderr
        (row,) = rows
        assert ROW_KEYS <= set(row)
        assert row["status"] == "ok" and row["runtime"] == "tflite_runtime" and row["float_ops"] == "xnnpack"
        assert row["cpu"] == "cortex-a57" and row["kernel"] == "xnnpack"
        runs.append(row["instructions"])
    assert abs(runs[0] - runs[1]) / runs[0] < 0.001, runs
    assert abs(runs[0] - REFERENCE_FLOAT_XNNPACK) / REFERENCE_FLOAT_XNNPACK < 0.10, runs


def test_builtin_float_ops_and_int8_are_counted_separately(board_session, model_files):
    proc, rows = _count("--float-ops", "builtin", "--runs", "1", model_files["float"], model_files["int8"])
    assert proc.returncode == 0, proc.stderr
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all(r["float_ops"] == "builtin" == r["kernel"] for r in rows)
    assert all(r["runs"] == 1 and r["instructions"] > 10e6 for r in rows)
    # the builtin kernels are not XNNPACK's: a different count than the reference's XNNPACK figure
    assert abs(rows[0]["instructions"] - REFERENCE_FLOAT_XNNPACK) / REFERENCE_FLOAT_XNNPACK > 0.2


def test_lce_file_without_a_benchmark_binary_is_skipped_with_the_reason(board_session, model_files):
    proc, rows = _count(model_files["lce"])
    assert proc.returncode == 0, proc.stderr
    (row,) = rows
    assert row["status"] == "skipped" and row["instructions"] is None
    assert "--lce-benchmark" in row["error"] and "lce_benchmark_model" in row["error"]


def test_lce_benchmark_stand_in_is_counted_and_reports_builtin_float_ops(board_session, model_files, tmp_path):
    """A stand-in that says --use_xnnpack was unconsumed (a build without XNNPACK): never reported as xnnpack."""
    proc, rows = _count("--lce-benchmark", STANDIN, model_files["lce"])
    assert proc.returncode == 0, proc.stderr
    (row,) = rows
    assert row["status"] == "ok" and row["runtime"] == "lce_benchmark_model" and row["kernel"] == "default"
    assert row["float_ops"] == "builtin" and row["instructions"] > 0
    again = _count("--lce-benchmark", STANDIN, model_files["lce"])[1][0]
    assert abs(again["instructions"] - row["instructions"]) <= 0.001 * row["instructions"]
    # an x86 program is not an lce_benchmark_model for the board
    x86 = tmp_path / "lce_benchmark_model"
    shutil.copy("/bin/true", x86)
    proc, rows = _count("--lce-benchmark", str(x86), model_files["lce"])
    assert proc.returncode == 1 and rows[0]["status"] == "failed" and "not an aarch64 program" in rows[0]["error"]


def test_bad_inputs_are_one_line_errors(board_session, tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    proc, _ = _count(str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc, _ = _count("--lce-benchmark", os.path.join(str(tmp_path), "missing"), str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
