"""Board reports hold measurement against expectation: expected_ms per row, a flag when far too slow."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from lcefr.board.lce import BenchOptions, bench_host, write_reports
from lcefr.board.ssh import SSHTarget
from lcefr.estimate import estimate_file

pytestmark = pytest.mark.slow  # converts quicknet_small (LCE and float) when build/models lacks them
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
A57 = {"arch": "aarch64", "cpu": "Cortex-A57", "cores": 4, "board": "NVIDIA Jetson Nano Developer Kit", "glibc": "2.27",
       "python": "3.6.9", "clocks": {"cpu0": 1479000, "cpu3": 1479000}, "taskset": True, "timeout": True,
       "tegrastats": False, "lce_benchmark_model": "/tmp/x", "python_runtimes": [], "emulated": None}


class LocalBoard(SSHTarget):
    """A 'board' that runs its commands here and reports the given machine facts (a Jetson Nano's)."""

    def __init__(self, machine):
        super().__init__("nano@jetson", python=sys.executable)
        self.machine = machine

    def run(self, command, timeout):
        if "runner.py machine" in command:
            return subprocess.CompletedProcess(command, 0, json.dumps(self.machine) + "\n", "")
        return subprocess.run(["sh", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)

    def put(self, files, remote_dir, timeout):
        for f in files:
            shutil.copy(f, remote_dir)
        return subprocess.CompletedProcess(files, 0, "", "")


@pytest.fixture(scope="module")
def files():
    paths = [os.path.join(ROOT, "build", "models", n) for n in ("quicknet_small.tflite", "quicknet_small.float.tflite")]
    for path in paths:
        if not os.path.isfile(path):
            subprocess.run(["make", "--no-print-directory", "-C", ROOT, os.path.relpath(path, ROOT)], check=True,
                           stdout=subprocess.DEVNULL)
    return paths


def _standin(tmp_path, us_by_name):
    """lce_benchmark_model that reports the given average per graph file name."""
    cases = "\n".join(f'  *{name}) avg={us};;' for name, us in us_by_name.items())
    script = tmp_path / "lce_benchmark_model"
    script.write_text(f"""#!/bin/sh
for a in "$@"; do case "$a" in --graph=*) g="${{a#--graph=}}";; esac; done
case "$g" in
{cases}
esac
echo "Inference timings in us: Init: 100, First inference: $avg, Warmup (avg): $avg, Inference (avg): $avg"
echo "count=5 first=$avg curr=$avg min=$avg max=$avg avg=$avg std=0"
""")
    script.chmod(0o755)
    return str(script)


def _run(tmp_path, machine, files, factor):
    expected = {}
    for path in files:
        est = estimate_file(path, cpu="cortex-a57", ghz=1.479)
        expected[os.path.basename(path)] = est["ms"]
    us = {name: int(factor * (ms["low"] + ms["high"]) / 2 * 1000) for name, ms in expected.items()}
    binary = _standin(tmp_path, us)
    options = BenchOptions(runs=5, warmup=1, core=None, runtime="lce_benchmark_model", lce_benchmark=binary, kernel="default")
    report = bench_host(LocalBoard(machine), files, options)
    write_reports(report, str(tmp_path / "reports"))
    md = open(report.paths["md"]).read()
    return report, md, expected


def test_a_runtime_100x_slower_than_expected_flags_every_row(tmp_path, files):
    report, md, expected = _run(tmp_path, A57, files, 100.0)
    assert [r["status"] for r in report.results] == ["ok", "ok"]
    for row in report.results:
        assert row["expected_ms"]["low"] < row["expected_ms"]["high"]
        assert "flag" in row and "CMAKE_BUILD_TYPE=Release" in row["flag"] and "#815" in row["flag"], row
    assert "2 of 2 rows measured above 3x the expected time" in md and "expected ms" in md


def test_a_normal_runtime_flags_none(tmp_path, files):
    report, md, _ = _run(tmp_path, A57, files, 1.0)
    assert all(r["expected_ms"] and "flag" not in r for r in report.results), report.results
    assert "measured above" not in md


@pytest.mark.parametrize("machine", [dict(A57, emulated={"emulated": True, "cpu": "cortex-a57"}),
                                     dict(A57, arch="x86_64", cpu="Intel(R) Xeon(R) CPU @ 2.20GHz")])
def test_emulated_or_x86_boards_have_no_expectation(tmp_path, files, machine):
    report, md, _ = _run(tmp_path, machine, files, 100.0)
    assert all(r["expected_ms"] is None and "flag" not in r for r in report.results)
    assert "none here" in md and report.machine["expectation"]


@pytest.mark.parametrize("factor, verdict", [(1.0, "meets"), (100.0, "miss")])
def test_jetson_setup_holds_quicknet_small_against_its_expectation(tmp_path, files, factor, verdict):
    from lcefr.board.setup import expectation_check

    lce_file = files[0]
    ms = estimate_file(lce_file, cpu="cortex-a57", ghz=1.479)["ms"]
    workdir = tmp_path / "lcefr"
    workdir.mkdir()
    standin = _standin(tmp_path, {os.path.basename(lce_file): int(factor * (ms["low"] + ms["high"]) / 2 * 1000)})
    shutil.copy(standin, workdir / "lce_benchmark_model")
    result = expectation_check(LocalBoard(A57), lce_file, workdir=str(workdir))
    assert result["status"] == verdict, result
    assert ("meets its expectation" in result["line"]) == (verdict == "meets")
    emulated = expectation_check(LocalBoard(dict(A57, emulated={"emulated": True})), lce_file, workdir=str(workdir))
    assert emulated["status"] == "no expectation" and "emulated" in emulated["line"]
