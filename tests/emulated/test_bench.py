"""make jetson-setup / make jetson-bench with JETSON=emulated, on-board parity, and faults on the board."""
import glob
import json
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from emuhelp import LCEFR, STANDIN, lcefr, make

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("board_exclusive")]
FAST = "--runs 2 --warmup 1"


def _ssh(info, command, timeout=120):
    return subprocess.run(["ssh", "-p", str(info["port"]), "-i", info["key"], "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                           "-o", f"UserKnownHostsFile={info['known_hosts']}", "-o", "StrictHostKeyChecking=yes",
                           f"{info['user']}@{info['host']}", command],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is


def _report(directory):
    (path,) = glob.glob(os.path.join(str(directory), "jetson-bench-*.json"))
    assert {os.path.splitext(p)[1] for p in glob.glob(path[:-5] + ".*")} >= {".json", ".csv", ".md"}
    with open(path) as f:
        return json.load(f), open(path[:-5] + ".md").read()


@pytest.fixture
def no_benchmark_binary(board):
    _ssh(board, "rm -rf ~/lcefr")
    yield board
    _ssh(board, "rm -rf ~/lcefr")


def test_make_jetson_setup_detects_the_emulated_board(no_benchmark_binary):
    proc = make("jetson-setup", "JETSON=emulated", "SETUP_ARGS=--dry-run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "Cortex-A57" in out and "aarch64" in out and "glibc 2.36" in out and "Python 3.11" in out
    assert "emulated" in out and "lce_benchmark_model: none on the board" in out
    assert "release binary lce_benchmark_model_aarch64" in out and "would run: " in out


def test_download_from_a_closed_loopback_port_fails_with_one_line(no_benchmark_binary):
    url = f"http://127.0.0.1:{_closed_port()}"
    proc = lcefr("jetson-setup", "emulated", env={"LCEFR_LCE_RELEASE_URL": url})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 1 and f"cannot download {url}/v0.16.0/lce_benchmark_model_aarch64" in errors[0], errors
    assert "Traceback" not in proc.stderr
    assert _ssh(no_benchmark_binary, "test -e ~/lcefr/lce_benchmark_model && echo present || echo absent").stdout.strip() == "absent"
    proc = make("jetson-setup", "JETSON=emulated", env={"LCEFR_LCE_RELEASE_URL": url})
    assert proc.returncode != 0 and "cannot download" in proc.stderr


def test_make_jetson_bench_emulated_float_int8_and_lce(no_benchmark_binary, model_files, tmp_path):
    files = [model_files["float"], model_files["int8"], model_files["lce"]]
    proc = make("jetson-bench", "JETSON=emulated", f"MODELS={' '.join(files)}", f"REPORTS={tmp_path}", f"BENCH_ARGS={FAST}")
    assert proc.returncode != 0, proc.stdout[-2000:]  # the LCE row failed: lcefr exits 1
    report, md = _report(tmp_path)
    machine = report["machine"]
    assert machine["arch"] == "aarch64" and "A57" in machine["cpu"] and machine["emulated"]
    rows = {r["model"]: r for r in report["results"]}
    flt, int8, lce = rows["quicknet_small.float"], rows["quicknet_small.int8"], rows["quicknet_small"]
    assert flt["status"] == "ok" and flt["runtime"] == "tflite" and flt["parity"] >= 0.999, flt
    assert int8["status"] == "ok" and isinstance(int8["parity"], float), int8
    assert lce["status"] == "failed" and "lce_benchmark_model" in lce["error"] and "make jetson-setup" in lce["error"], lce
    assert all(r["expected_ms"] is None for r in report["results"])  # wall time under emulation means nothing
    assert "parity" in md.splitlines()[next(i for i, line in enumerate(md.splitlines()) if line.startswith("| model"))]


def test_given_binary_is_copied_used_and_a_signal_death_keeps_the_other_rows(no_benchmark_binary, model_files, tmp_path):
    proc = make("jetson-setup", "JETSON=emulated", f"LCE_BENCHMARK={STANDIN}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "given" in proc.stdout
    assert "Inference timings" in _ssh(no_benchmark_binary, "~/lcefr/lce_benchmark_model --graph=/etc/hostname").stdout
    crash = tmp_path / "crash.tflite"
    shutil.copy(model_files["float"], crash)
    reports = tmp_path / "reports"
    proc = subprocess.run(LCEFR + ["bench", "--remote", "emulated", "--runs", "2", "--warmup", "1", "--reports", str(reports),
                                   model_files["lce"], str(crash), model_files["float"]],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=900)
    assert proc.returncode == 1, proc.stderr[-2000:]
    report, _ = _report(reports)
    rows = report["results"]
    assert [r["status"] for r in rows] == ["ok", "failed", "ok"], rows
    assert rows[0]["runtime"] == "lce_benchmark_model" and rows[0]["parity"] is None
    assert rows[0]["float_ops"] == "builtin"  # the stand-in says --use_xnnpack was unconsumed
    assert "signal" in rows[1]["error"].lower(), rows[1]


def test_board_killed_mid_run_keeps_finished_rows(board, model_files, tmp_path):
    from lcefr.board import emulate

    copies = []
    for i in range(3):
        copies.append(str(tmp_path / f"m{i}.float.tflite"))
        shutil.copy(model_files["float"], copies[-1])
    reports = tmp_path / "reports"
    proc = subprocess.Popen(LCEFR + ["bench", "--remote", "emulated", "--runs", "2", "--warmup", "1", "--reports", str(reports),
                                     *copies], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    deadline = time.time() + 600
    while time.time() < deadline and sum("timing" in line for line in lines) < 2:
        time.sleep(0.5)
    assert sum("timing" in line for line in lines) >= 2, lines
    time.sleep(1.0)
    emulate.down()
    assert proc.wait(timeout=600) == 1
    report, _ = _report(reports)
    statuses = [r["status"] for r in report["results"]]
    assert statuses[0] == "ok" and statuses[-1] == "failed" and len(statuses) == 3, report["results"]


def test_full_work_directory_fails_every_row_and_writes_reports(board, model_files, tmp_path):
    tmp = os.path.join(board["rootfs"], "tmp")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "lcefr-full", tmp], check=True)
    try:
        proc = lcefr("bench", "--remote", "emulated", "--runs", "2", "--reports", str(tmp_path), model_files["float"])
    finally:
        subprocess.run(["umount", tmp], check=True)
    assert proc.returncode == 1, proc.stderr
    report, md = _report(tmp_path)
    assert report["results"][0]["status"] == "failed" and "No space left" in report["results"][0]["error"], report
    assert "failed" in md


def test_jetson_bench_on_a_stopped_board_says_how_to_start_it(tmp_path, model_files):
    env = {"LCEFR_BOARD_DIR": str(tmp_path / "no-board")}
    proc = lcefr("bench", "--remote", "emulated", model_files["float"], env=env)
    assert proc.returncode == 2 and "start it with make board-emu" in proc.stderr and "Traceback" not in proc.stderr
    proc = make("jetson-bench", "JETSON=emulated", f"MODELS={model_files['float']}", env=env)
    assert proc.returncode != 0 and "start it with make board-emu" in proc.stderr
    proc = lcefr("jetson-setup", "emulated", env=env)
    assert proc.returncode == 2 and "start it with make board-emu" in proc.stderr
