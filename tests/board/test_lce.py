"""`lcefr bench --remote` and `make jetson-bench` against a real sshd on loopback."""
import csv
import json
import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LCEFR = [sys.executable, "-m", "lcefr.cli"]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """LCE and float flatbuffers of QuickNet-small (12 ms, not 1 ms: timings above the noise), checked."""
    import tensorflow as tf

    from lcefr.convert.api import convert
    from lcefr.source import load_source

    d = tmp_path_factory.mktemp("models")
    tf.keras.backend.clear_session()
    src = load_source("quicknet_small")
    paths = []
    for target, name in (("tflite", "tiny.tflite"), ("tflite-float", "tiny.float.tflite")):
        data, _ = convert(src.model, target=target, name="quicknet_small")
        (d / name).write_bytes(data)
        paths.append(str(d / name))
    return paths


def _remote_args(sshd, reports):
    return ["--remote", sshd.host, "--port", str(sshd.port), "--key", sshd.key, "--known-hosts", sshd.known_hosts,
            "--python", sys.executable, "--core", "0", "--reports", str(reports)]


def _reports(directory):
    files = sorted(os.listdir(directory))
    by_ext = {}
    for f in files:
        by_ext.setdefault(f.rsplit(".", 1)[-1], []).append(os.path.join(directory, f))
    return by_ext


def test_make_jetson_bench_writes_four_reports_close_to_local(sshd, tiny_models, tmp_path):
    reports = tmp_path / "reports"
    env = dict(os.environ, CI=os.environ.get("CI", ""))
    proc = subprocess.run(
        ["make", "--no-print-directory", "-C", ROOT, "jetson-bench", f"JETSON={sshd.host}", f"JETSON_PORT={sshd.port}",
         f"JETSON_KEY={sshd.key}", f"JETSON_PYTHON={sys.executable}", f"MODELS={' '.join(tiny_models)}", "CORE=0",
         f"REPORTS={reports}", f"BENCH_ARGS=--known-hosts {sshd.known_hosts} --runs 30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    files = _reports(reports)
    assert {k: len(v) for k, v in files.items()} == {"json": 1, "csv": 1, "md": 1, "png": 1}
    assert os.path.basename(files["json"][0]).startswith("jetson-bench-127.0.0.1-")
    report = json.load(open(files["json"][0]))
    assert report["host"] == sshd.host and report["started_utc"].endswith("Z")
    assert {"arch", "cpu", "glibc", "clocks"} <= set(report["machine"])
    rows = report["results"]
    assert [r["model"] for r in rows] == ["tiny", "tiny.float"]
    assert [r["runtime"] for r in rows] == ["lce", "tflite"]
    for r in rows:
        assert r["status"] == "ok" and r["threads"] == 1 and r["fps"] > 0
        assert set(r["latency_ms"]) == {"mean", "median", "p90", "min"}
        # the board's output for the probe input matches the host's; the vector itself stays out of the report
        assert r["parity"] >= 0.999 and "output" not in r and r["float_ops"] == "xnnpack"
    with open(files["csv"][0]) as f:
        table = list(csv.DictReader(f))
    assert [t["model"] for t in table] == ["tiny", "tiny.float"] and all(t["status"] == "ok" for t in table)
    assert all(float(t["parity"]) >= 0.999 for t in table)
    assert open(files["png"][0], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "| `tiny` |" in open(files["md"][0]).read()

    # Same files timed locally right after. The machine is shared (other test workers), which moves
    # mean latencies by 2x and more (measured while two training jobs ran: remote/local FPS ratios
    # 1.8-2.5 on three pairs, unpinned local runs the slower); best-case FPS (1000 / min latency)
    # stays within 15%. So FPS from the min latency is compared, up to three remote/local pairs;
    # a systematic error (threads, kernel, runtime) fails all three.
    ratios = []
    for attempt in range(3):
        if attempt:
            again = subprocess.run(LCEFR + ["bench", *tiny_models, *_remote_args(sshd, tmp_path / f"again{attempt}"),
                                            "--runs", "30", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, timeout=600)
            assert again.returncode == 0, again.stderr[-2000:]
            rows = json.loads(again.stdout[again.stdout.index("["):])[0]["results"]
        local = subprocess.run(LCEFR + ["bench", *tiny_models, "--json", "--runs", "30"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=600)
        assert local.returncode == 0, local.stderr[-2000:]
        local_rows = json.loads(local.stdout[local.stdout.index("["):])
        ratios.append([l["latency_ms"]["min"] / r["latency_ms"]["min"] for r, l in zip(rows, local_rows)])
        if all(0.5 <= x <= 2.0 for x in ratios[-1]):
            break
    assert all(0.5 <= x <= 2.0 for x in ratios[-1]), ratios


def test_killing_sshd_mid_run_keeps_finished_rows(sshd, tiny_models, tmp_path):
    reports = tmp_path / "reports"
    models = [tiny_models[0]] * 4
    proc = subprocess.Popen(LCEFR + ["bench", *models, *_remote_args(sshd, reports), "--runs", "200"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = 0
    deadline = time.time() + 300
    while seen < 2 and time.time() < deadline:  # the second "timing" line: the first model is done
        line = proc.stderr.readline()
        if not line:
            break
        seen += line.strip().startswith("timing ")
    assert seen == 2, "the first model never finished"
    time.sleep(0.5)
    sshd.kill()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err[-2000:]
    report = json.load(open(_reports(reports)["json"][0]))
    statuses = [r["status"] for r in report["results"]]
    assert len(statuses) == 4 and statuses[0] == "ok" and statuses[1:] == ["failed"] * 3
    assert all(r["error"] for r in report["results"][1:])
    assert set(_reports(reports)) == {"json", "csv", "md", "png"}


def test_unreachable_host_and_refused_key_fail_cleanly(sshd, tiny_models, tmp_path):
    # a port nobody listens on, and a key the server does not know, in parallel
    other_key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    for args, why in (
        (["--remote", "nobody@127.0.0.1", "--port", "1", "--reports", str(tmp_path / "r1")], "cannot reach"),
        (["--remote", sshd.host, "--port", str(sshd.port), "--key", str(other_key), "--known-hosts", sshd.known_hosts,
          "--reports", str(tmp_path / "r2")], "cannot reach"),
    ):
        proc = subprocess.run(LCEFR + ["bench", tiny_models[0], *args, "--json"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=120)
        assert proc.returncode == 1, proc.stderr[-1000:]
        result = json.loads(proc.stdout[proc.stdout.index("["):])[0]
        assert why in result["error"]
        assert [r["status"] for r in result["results"]] == ["failed"]
        assert set(result["reports"]) == {"json", "csv", "md", "png"}


def test_missing_binary_crashing_model_and_timeout_are_failed_rows(sshd, tiny_models, tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64)
    common = _remote_args(sshd, tmp_path / "reports")
    proc = subprocess.run(LCEFR + ["bench", tiny_models[1], str(broken), *common, "--json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 1
    rows = json.loads(proc.stdout[proc.stdout.index("["):])[0]["results"]
    assert rows[0]["status"] == "ok" and rows[1]["status"] == "failed" and rows[1]["error"]

    proc = subprocess.run(LCEFR + ["bench", tiny_models[0], *common, "--runtime", "lce_benchmark_model",
                                   "--lce-benchmark", "/nonexistent/lce_benchmark_model", "--json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 1
    row = json.loads(proc.stdout[proc.stdout.index("["):])[0]["results"][0]
    assert row["status"] == "failed" and "lce_benchmark_model not found" in row["error"]

    start = time.time()
    proc = subprocess.run(LCEFR + ["bench", tiny_models[0], *common, "--runs", "100000", "--timeout", "3", "--json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 1 and time.time() - start < 120
    row = json.loads(proc.stdout[proc.stdout.index("["):])[0]["results"][0]
    assert row["status"] == "failed" and "timed out" in row["error"]


# ---------------------------------------------------------------- boards without SFTP, pinned host keys


def _logging_scp(tmp_path, fail=False):
    """A directory to put first on PATH with an ``scp`` that logs its arguments, then runs the real one
    (or fails like an scp that the board's sshd refuses)."""
    import shutil

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "scp.log"
    body = "echo 'subsystem request failed on channel 0' >&2\nexit 255\n" if fail else f'exec {shutil.which("scp")} "$@"\n'
    (bin_dir / "scp").write_text(f'#!/bin/sh\necho "$@" >> {log}\n{body}')
    (bin_dir / "scp").chmod(0o755)
    return str(bin_dir), log


def test_put_falls_back_to_legacy_scp_without_sftp_and_remembers_it(sshd_nosftp, tmp_path, monkeypatch):
    from lcefr.board.ssh import SSHTarget

    bin_dir, log = _logging_scp(tmp_path)
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ["PATH"])
    target = SSHTarget(sshd_nosftp.host, port=sshd_nosftp.port, key=sshd_nosftp.key, known_hosts=sshd_nosftp.known_hosts)
    source = tmp_path / "a file.txt"
    source.write_text("first")
    remote = tmp_path / "remote dir"
    remote.mkdir()
    assert target.put([str(source)], str(remote), timeout=60).returncode == 0
    assert target.put_method == "scp-legacy" and (remote / "a file.txt").read_text() == "first"
    calls = log.read_text().splitlines()
    assert len(calls) == 2 and " -O " not in f" {calls[0]} " and " -O " in f" {calls[1]} "
    source.write_text("second")
    assert target.put([str(source)], str(remote), timeout=60).returncode == 0
    calls = log.read_text().splitlines()
    assert len(calls) == 3 and " -O " in f" {calls[2]} "  # straight to the method that worked
    assert (remote / "a file.txt").read_text() == "second"


def test_put_streams_with_cat_when_scp_fails_both_ways(sshd_nosftp, tmp_path, monkeypatch):
    from lcefr.board.ssh import SSHTarget

    bin_dir, log = _logging_scp(tmp_path, fail=True)
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ["PATH"])
    target = SSHTarget(sshd_nosftp.host, port=sshd_nosftp.port, key=sshd_nosftp.key, known_hosts=sshd_nosftp.known_hosts)
    text = tmp_path / "it's $HOME.txt"
    text.write_text("quoted 'name'\n")
    script = tmp_path / "run.sh"
    script.write_bytes(b"#!/bin/sh\necho ok\n\x00\xff")
    script.chmod(0o755)
    remote = tmp_path / "remote"
    remote.mkdir()
    proc = target.put([str(text), str(script)], str(remote), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert target.put_method == "cat" and len(log.read_text().splitlines()) == 2
    assert (remote / "it's $HOME.txt").read_text() == "quoted 'name'\n"
    assert (remote / "run.sh").read_bytes() == script.read_bytes() and os.access(remote / "run.sh", os.X_OK)
    failed = target.put([str(text)], str(tmp_path / "missing"), timeout=60)
    assert failed.returncode != 0 and "cat:" in failed.stderr


def test_put_names_every_failed_method(sshd, tmp_path, monkeypatch):
    from lcefr.board.ssh import SSHTarget, why

    bin_dir, _ = _logging_scp(tmp_path, fail=True)
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ["PATH"])
    target = SSHTarget(sshd.host, port=sshd.port, key=sshd.key, known_hosts=sshd.known_hosts)
    source = tmp_path / "f"
    source.write_text("x")
    proc = target.put([str(source)], str(tmp_path / "no such dir"), timeout=60)
    assert proc.returncode != 0 and target.put_method is None
    assert all(f"{m}: " in why(proc) for m in ("scp", "scp-legacy", "cat"))


def test_bench_on_a_board_without_sftp(sshd_nosftp, tiny_models, tmp_path):
    reports = tmp_path / "reports"
    proc = subprocess.run(LCEFR + ["bench", tiny_models[1], *_remote_args(sshd_nosftp, reports), "--runs", "3", "--json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads(proc.stdout[proc.stdout.index("["):])[0]["results"][0]
    assert row["status"] == "ok" and row["runtime"] == "tflite" and row["fps"] > 0
    assert set(_reports(reports)) == {"json", "csv", "md", "png"}


def test_pinned_host_key_is_strict(sshd, tmp_path):
    from lcefr.board.ssh import SSHTarget

    pinned = tmp_path / "known_hosts"
    pinned.write_text("")
    strict = SSHTarget(sshd.host, port=sshd.port, key=sshd.key, known_hosts=str(pinned), strict_host_key=True)
    assert "StrictHostKeyChecking=yes" in strict._options()
    proc = strict.run("echo ok", timeout=60)
    assert proc.returncode == 255 and "Host key verification failed" in proc.stderr and pinned.read_text() == ""
    loose = SSHTarget(sshd.host, port=sshd.port, key=sshd.key, known_hosts=str(pinned))
    assert "StrictHostKeyChecking=accept-new" in loose._options()
    assert loose.run("echo ok", timeout=60).stdout.strip() == "ok"  # accept-new: remembered
    assert pinned.read_text().strip()
    assert strict.run("echo ok", timeout=60).stdout.strip() == "ok"
    for target in (strict, loose, SSHTarget("h"), SSHTarget("h", strict_host_key=True)):
        assert "StrictHostKeyChecking=no" not in target._options()
