"""The device-side runner (lcefr.board.runner): benchmark-output parsing, machine facts, rows; and the
runner as a board sees it: runner.py plus lcefr/runtime.py in a work directory, no site-packages."""
import ast
import json
import os
import shutil
import subprocess
import sys

import pytest

from lcefr.board import runner
from lcefr.board.lce import RUNNER_PATH, RUNTIME_PATH

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


def _board_workdir(tmp_path):
    """The work directory bench_host makes on a board: runner.py, lcefr/runtime.py and nothing else of lcefr."""
    work = tmp_path / "work"
    (work / "lcefr").mkdir(parents=True)
    shutil.copy(RUNNER_PATH, work / "runner.py")
    shutil.copy(RUNTIME_PATH, work / "lcefr" / "runtime.py")
    return work


def test_runner_runs_as_copied_to_a_board(tmp_path):
    """``python -S`` (no site-packages, so neither the installed lcefr nor numpy): the board's view."""
    work = _board_workdir(tmp_path)
    model = work / "m.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"LceBconv2d" + b"\x00" * 32)
    fake = tmp_path / "lce_benchmark_model"
    fake.write_text(f"#!/bin/sh\ncat {os.path.join(FIXTURES, 'lce_benchmark_rpi4_info.txt')}\n")
    fake.chmod(0o755)
    facts = subprocess.run([sys.executable, "-S", "runner.py", "machine"], cwd=work, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    assert facts.returncode == 0, facts.stderr
    assert json.loads(facts.stdout)["cores"] >= 1
    out = subprocess.run([sys.executable, "-S", "runner.py", "run", "--model", "m.tflite", "--lce-benchmark", str(fake),
                          "--kernel", "indirect"], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout.split(runner.ROW_PREFIX, 1)[1])
    assert row["status"] == "ok" and row["fps"] == pytest.approx(1000 / 31.4206, abs=1e-3)


def test_runner_and_runtime_are_python36_stdlib():
    """JetPack 4 has Python 3.6: no postponed annotations or dataclasses; the standard library at import."""
    for path in (RUNNER_PATH, RUNTIME_PATH):
        tree = ast.parse(open(path).read(), feature_version=(3, 6))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in ("__future__", "dataclasses"):
                assert [a.name for a in node.names] == ["print_function"], f"{path}: {node.module} breaks Python 3.6"
        top = {a.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for a in node.names}
        top |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom)}
        assert top <= set(sys.stdlib_module_names) | {"lcefr"}, f"{path}: {top - set(sys.stdlib_module_names)}"


def test_benchmark_binary_path_may_start_with_the_board_users_home(tmp_path, monkeypatch):
    binary = tmp_path / "lce_benchmark_model"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert runner.find_benchmark_binary("~/lce_benchmark_model") == str(binary)
    assert runner.find_benchmark_binary("~/missing") is None
