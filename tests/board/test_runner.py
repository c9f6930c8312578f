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


# ---------------------------------------------------------------- XNNPACK or not, CPU name, emulated marker


def _float_model(path):
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 32)
    return path


def _lce_model(path):
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"LceBconv2d" + b"\x00" * 32)
    return path


def _stand_in_benchmark(tmp_path, unconsumed):
    """A stand-in lce_benchmark_model: logs its flags, prints the recorded output and, like a binary
    built without XNNPACK, the line naming the flags it ignored."""
    args_log = tmp_path / "args"
    fake = tmp_path / "lce_benchmark_model"
    extra = "echo 'WARN: Unconsumed cmdline flags: --use_xnnpack=true'\n" if unconsumed else ""
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {args_log}\n{extra}cat {os.path.join(FIXTURES, 'lce_benchmark_rpi4_info.txt')}\n")
    fake.chmod(0o755)
    return fake, args_log


def _run_row(model, fake, *extra):
    out = subprocess.run([sys.executable, runner.__file__, "run", "--model", str(model), "--lce-benchmark", str(fake), *extra],
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    return json.loads(out.split(runner.ROW_PREFIX, 1)[1])


@pytest.mark.parametrize("unconsumed, expected", [(False, "xnnpack"), (True, "builtin")])
def test_use_xnnpack_for_every_file_and_float_ops_as_the_binary_says(tmp_path, unconsumed, expected):
    fake, args_log = _stand_in_benchmark(tmp_path, unconsumed)
    row = _run_row(_float_model(tmp_path / "f.tflite"), fake)
    assert row["status"] == "ok" and row["float_ops"] == expected and row["kernel"] == expected
    assert row["output"] is None  # lce_benchmark_model prints no outputs
    row = _run_row(_lce_model(tmp_path / "b.tflite"), fake, "--kernel", "indirect")
    assert row["status"] == "ok" and row["float_ops"] == expected and row["kernel"] == "indirect"
    calls = args_log.read_text().splitlines()
    assert len(calls) == 2 and all("--use_xnnpack=true" in c for c in calls)


def test_failed_binary_run_claims_no_xnnpack(tmp_path):
    fake = tmp_path / "lce_benchmark_model"
    fake.write_text("#!/bin/sh\necho 'ERROR: Failed to allocate tensors' >&2\nexit 1\n")
    fake.chmod(0o755)
    row = _run_row(_float_model(tmp_path / "f.tflite"), fake)
    assert row["status"] == "failed" and row["kernel"] != "xnnpack" and row["float_ops"] is None


def test_float_ops_of_benchmark_output():
    text = _fixture("lce_benchmark_plain.txt")
    assert runner.float_ops_of(text) == "xnnpack"
    assert runner.float_ops_of("INFO: Unconsumed cmdline flags: --use_xnnpack=true --foo=1\n" + text) == "builtin"
    assert runner.float_ops_of("Unconsumed cmdline flags:\n--use_xnnpack=true\n" + text) == "builtin"
    assert runner.float_ops_of("Unconsumed cmdline flags: --other=1\n" + text) == "xnnpack"
    assert runner.float_ops_of("ERROR: Failed to apply XNNPACK delegate.\n" + text) == "builtin"


QEMU_A57_CPUINFO = "".join(
    f"processor\t: {n}\nBogoMIPS\t: 125.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid\n"
    "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd07\nCPU revision\t: 0\n\n"
    for n in range(4))


def test_cpu_name_from_the_arm_part_table():
    assert runner._cpu_name(QEMU_A57_CPUINFO) == "Cortex-A57"
    jetson = "model name\t: ARMv8 Processor rev 1 (v8l)\n" + QEMU_A57_CPUINFO
    assert runner._cpu_name(jetson) == "Cortex-A57"
    big_little = QEMU_A57_CPUINFO + QEMU_A57_CPUINFO.replace("0xd07", "0xd03")
    assert runner._cpu_name(big_little) == "Cortex-A53, Cortex-A57"
    assert runner._cpu_name("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) CPU\n") == "Intel(R) Xeon(R) CPU"
    other = QEMU_A57_CPUINFO.replace("0x41", "0x4e").replace("0xd07", "0x004")
    assert runner._cpu_name(other) == "ARM CPU part 0x004"


def test_arm_parts_live_in_runtime_and_facts_reexports_them():
    from lcefr import runtime
    from lcefr.board import facts

    assert facts.ARM_PARTS is runtime.ARM_PARTS and "ARM_PARTS" in facts.__all__
    assert runtime.ARM_PARTS["0xd07"] == "Cortex-A57"
    assert facts.parse_cpuinfo(QEMU_A57_CPUINFO)["cpu_names"] == ["Cortex-A57"]


def test_emulated_marker(tmp_path):
    marker = tmp_path / "lcefr-emulated-board"
    assert runner._emulated(str(marker)) is None
    marker.write_text('{"emulated": true, "cpu": "cortex-a57", "emulator": "qemu-system-aarch64"}\n')
    assert runner._emulated(str(marker)) == {"emulated": True, "cpu": "cortex-a57", "emulator": "qemu-system-aarch64"}
    marker.write_text("qemu cortex-a57\n")
    assert runner._emulated(str(marker)) == {"emulated": True, "marker": "qemu cortex-a57"}
    assert "emulated" in runner.machine_facts()


# ---------------------------------------------------------------- the parity probe


def test_probe_input_is_the_documented_formula():
    import numpy as np

    from lcefr.runtime import probe_input

    def element(i):  # the docstring's formula, in Python integers
        m = 2 ** 31
        return ((i * i % m) * 1103515245 + 12345 * i + 6789) % m / 2 ** 30 - 1

    x = probe_input([None, 4, 5, 3], np.float32)
    assert x.shape == (1, 4, 5, 3) and x.dtype == np.float32
    assert x.ravel().tolist() == [float(np.float32(element(i))) for i in range(60)]
    assert -1.0 <= x.min() and x.max() < 1.0 and abs(float(x.mean())) < 0.2
    q = probe_input([1, 60], np.int8, (0.5 / 127, -3))
    assert q.dtype == np.int8 and q.ravel().tolist() == [max(-128, min(127, int(np.floor(element(i) * 254 + 0.5)) - 3))
                                                         for i in range(60)]
    u = probe_input([60], np.uint8, {"quantization": (1 / 128, 128)})
    assert u.dtype == np.uint8 and u.ravel().tolist() == [min(255, int(np.floor(element(i) * 128 + 0.5)) + 128) for i in range(60)]
    assert probe_input([60], np.int8).ravel().tolist() == [int(np.floor(element(i) * 128)) for i in range(60)]


def test_output_vector_dequantizes_and_rounds():
    import numpy as np

    from lcefr.runtime import output_vector

    assert output_vector(np.array([[-128, 0, 127]], np.int8), (0.5, -128)) == [0.0, 64.0, 127.5]
    assert output_vector(np.array([3, 4], np.uint8), {"quantization": (0.25, 2)}) == [0.25, 0.5]
    assert output_vector(np.array([1 / 3, 123456789.0], np.float64)) == [0.3333333, 123456800.0]
    assert output_vector(np.array([5], np.int32)) == [5.0]  # no scale: the integers as they are
