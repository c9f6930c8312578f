"""TensorRT on the board (lcefr.board.trt, lcefr.board.facts.parse_probe, ``lcefr bench --trt-onnx``).

No TensorRT or GPU here. Covered: the trtexec/probe parsers on hand-written fixtures in the
documented formats (tests/fixtures/trt/README.md); against the loopback sshd, the whole remote
flow with stand-in ``nvcc``/``cmake``/``trtexec`` scripts (copy, build command, trtexec flags,
rows, build failure, trtexec crash, timeout) and, with nothing stubbed, ``lcefr bench --remote
--trt-onnx`` on this x86 host (TensorRT missing -> failed GPU rows next to ok .tflite rows, exit 1).
The microbench's graphs (used here as inputs) are tested in tests/trt/test_microbench.py.
"""
import json
import os
import stat
import subprocess
import sys

import pytest

from lcefr.board import trt as tr
from lcefr.board.facts import parse_probe
from lcefr.board.lce import BenchOptions, bench_host
from lcefr.board.ssh import SSHTarget
from lcefr.trt import microbench
from lcefr.trt.shapes import ConvLayer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "trt")


def _fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


# ---------------------------------------------------------------- parsers


@pytest.mark.parametrize("name, gpu, host, qps, version", [
    ("trtexec-8.2-plugin-fp16.txt", {"min": 13.9136, "max": 15.7964, "mean": 14.1837, "median": 14.1216, "p90": 14.4072},
     {"mean": 14.2873, "p90": 14.5128}, 69.9395, "8.2.1"),
    ("trtexec-8.6-conv-int8.txt", {"min": 23.4102, "mean": 23.7181, "median": 23.6943, "p90": 23.8838, "p95": 23.9639, "p99": 24.416},
     {"mean": 23.9187, "p99": 24.6245}, 41.8031, "8.6.1"),
    ("trtexec-7.1-blocks.txt", {"min": 0.820313, "max": 1.42285, "mean": 0.875716, "median": 0.868652, "p90": 0.911133},
     {"mean": 1.06245, "p90": 1.10059}, 1151.37, None),
])
def test_parse_trtexec_summary_forms(name, gpu, host, qps, version):
    out = tr.parse_trtexec_output(_fixture(name))
    for key, value in gpu.items():
        assert out["gpu_compute"][key] == pytest.approx(value)
    for key, value in host.items():
        assert out["host_latency"][key] == pytest.approx(value)
    assert out["throughput_qps"] == pytest.approx(qps)
    assert out["tensorrt"] == version


def test_parse_trtexec_tolerates_missing_equals_and_bare_lines():
    text = ("GPU Compute Time: min = 3.17834 ms, max = 3.88306 ms, mean 3.63242 ms, median = 3.71753 ms, "
            "percentile(99%) 3.87793 ms\nThroughput: 169.352 qps\n")
    out = tr.parse_trtexec_output(text)
    assert out["gpu_compute"] == {"min": 3.17834, "max": 3.88306, "mean": 3.63242, "median": 3.71753, "p99": 3.87793}


def test_failed_trtexec_output_has_no_summary_and_a_clear_error():
    text = _fixture("trtexec-8.2-plugin-missing.txt")
    with pytest.raises(ValueError, match="no GPU compute time"):
        tr.parse_trtexec_output(text)
    assert tr.trtexec_error(text).startswith("Assertion failed: creator && \"Plugin not found")
    assert tr.trtexec_error("[01/01/2025-00:00:00] [E] [TRT] 1: Cuda Runtime (out of memory)\n[E] Engine set up failed\n") \
        == "1: Cuda Runtime (out of memory)"
    assert tr.trtexec_error("") == "no output"


def test_trtexec_version_banner():
    assert tr._trt_version("8201") == "8.2.1"
    assert tr._trt_version("100300") == "10.3.0"
    assert tr._trt_version("8.6.1") == "8.6.1"


def test_parse_probe_jetson_nano():
    facts = parse_probe(_fixture("probe-nano-jetpack461.txt"))
    assert (facts.trt_version, facts.trt_major, facts.sm, facts.nvcc_version) == ("8.2.1", 8, 53, "10.2")
    assert facts.trtexec == "/usr/src/tensorrt/bin/trtexec" and facts.gnu_time and facts.timeout and facts.cores == 4
    assert facts.board == "NVIDIA Jetson Nano Developer Kit"
    assert facts.problem() is None


def test_parse_probe_trt10_defines_dpkg_fallback_and_problems():
    trt10 = ("@trt_header=/opt/trt/include/NvInferVersion.h\n@define=#define TRT_MAJOR_ENTERPRISE 10\n"
             "@define=#define TRT_MINOR_ENTERPRISE 3\n@define=#define TRT_PATCH_ENTERPRISE 0\n"
             "@define=#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE //!< major\n"
             "@define=#define NV_TENSORRT_MINOR TRT_MINOR_ENTERPRISE\n@define=#define NV_TENSORRT_PATCH TRT_PATCH_ENTERPRISE\n"
             "@compute_cap=8.6\n@trtexec=/usr/bin/trtexec\n@end\n")
    facts = parse_probe(trt10)
    assert (facts.trt_version, facts.sm) == ("10.3.0", 86)
    assert "nvcc not found" in facts.problem()
    assert facts.problem(build=False) is None
    only_dpkg = parse_probe("@dpkg=libnvinfer8 8.0.1-1+cuda10.2\n@compatible=nvidia,tegra194\n@end\n")
    assert (only_dpkg.trt_version, only_dpkg.sm) == ("8.0.1", 72)
    assert "not trtexec" in only_dpkg.problem()
    nothing = parse_probe("@arch=x86_64\n@nvcc=/usr/local/bin/nvcc\n@end\n")
    assert nothing.problem().startswith("TensorRT not found on the board")


def test_model_jobs_rows_and_sources(tmp_path):
    mb = microbench
    case = mb.Case(ConvLayer(1, 3, 8, 3, 1, 6), 1, 6)
    path = tmp_path / "m.onnx"
    path.write_bytes(mb.binary_graph(case))
    jobs = tr.model_jobs([str(path)], tr.TrtOptions())
    assert [(j.name, j.kernel, j.flags, j.plugin) for j in jobs] == [
        ("m.onnx", "plugin-fp32", (), True), ("m.onnx", "plugin-fp16", ("--fp16",), True)]
    assert jobs[0].shapes is None  # static input: no --shapes
    row = tr.failed_rows(jobs[:1], "TensorRT not found on the board")[0]
    assert set(row) >= {"model", "runtime", "kernel", "threads", "latency_ms", "fps", "size_bytes", "peak_rss_mb", "status", "error"}
    assert (row["runtime"], row["status"], row["size_bytes"]) == ("tensorrt", "failed", path.stat().st_size)
    sources = tr.plugin_sources()
    names = {k: sorted(os.path.basename(p) for p in v) for k, v in sources.items()}
    assert "CMakeLists.txt" in names["trt"] and "BinaryConv2dPlugin.cpp" in names["trt"]
    assert {"bconv_kernels.cu", "bconv_api.h", "bconv_common.h"} <= set(names["cuda"])


def test_dynamic_batch_gets_shapes(tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("face", TensorProto.FLOAT, ["N", 112, 112, 3])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 112, 112, 3])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["face"], ["out"])], "g", [x], [y]))
    (tmp_path / "d.onnx").write_bytes(model.SerializeToString())
    assert tr.model_jobs([str(tmp_path / "d.onnx")], tr.TrtOptions(precisions=("fp16",)))[0].shapes == "face:1x112x112x3"


# ---------------------------------------------------------------- against the loopback sshd

_FAKE_NVCC = "#!/bin/sh\necho 'Cuda compilation tools, release 10.2, V10.2.300'\n"
_FAKE_CMAKE = """#!/bin/sh
d=$(dirname "$0")
if [ "$1" = "--version" ]; then echo "cmake version 3.10.2"; exit 0; fi
echo "$@" >> "$d/cmake.log"
if [ "$1" = "--build" ]; then
  if [ -f "$d/fail_build" ]; then echo "bconv_kernels.cu(12): error: identifier \\"__reduce_add_sync\\" is undefined"; exit 2; fi
  touch libbinaryconv_plugin.so; exit 0
fi
test -f "$1/CMakeLists.txt" && test -f "$1/../cuda/bconv_kernels.cu" || { echo "error: sources not copied"; exit 1; }
exit 0
"""
_FAKE_TRTEXEC = """#!/bin/sh
d=$(dirname "$0")
echo "$@" >> "$d/trtexec.log"
if [ -f "$d/sleep" ]; then sleep 10; fi
for a in "$@"; do case "$a" in --onnx=*) test -f "${a#--onnx=}" || { echo "[E] Cannot find ONNX file"; exit 1; };; esac; done
case "$*" in *crash_me*) echo "[03/14/2025-10:20:05] [E] [TRT] 1: [cudaResources.cpp::~ScopedCudaStream::47] Error Code 1: Cuda Runtime (unspecified launch failure)"; exit 139;; esac
case "$*" in *--plugins=*) cat "%s";; *) cat "%s"; exit 1;; esac
"""


@pytest.fixture
def fake_board(tmp_path, monkeypatch):
    """nvcc/cmake/trtexec stand-ins first on PATH (the sshd fixture passes PATH to its sessions) and a
    TensorRT root with an 8.2.1 NvInferVersion.h. Must be requested before ``sshd``."""
    tools = tmp_path / "tools"
    tools.mkdir()
    scripts = {"nvcc": _FAKE_NVCC, "cmake": _FAKE_CMAKE,
               "trtexec": _FAKE_TRTEXEC % (os.path.join(FIXTURES, "trtexec-8.2-plugin-fp16.txt"),
                                           os.path.join(FIXTURES, "trtexec-8.2-plugin-missing.txt"))}
    for name, text in scripts.items():
        (tools / name).write_text(text)
        (tools / name).chmod((tools / name).stat().st_mode | stat.S_IEXEC)
    root = tmp_path / "TensorRT"
    (root / "include").mkdir(parents=True)
    (root / "include" / "NvInferVersion.h").write_text(
        "#define NV_TENSORRT_MAJOR 8 //!< TensorRT major version.\n#define NV_TENSORRT_MINOR 2 //!< minor\n"
        "#define NV_TENSORRT_PATCH 1 //!< patch\n")
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ.get('PATH', '')}")
    return tools, str(root)


def _target(sshd):
    return SSHTarget(sshd.host, port=sshd.port, key=sshd.key, known_hosts=sshd.known_hosts, python=sys.executable)


def _graphs(tmp_path, *names):
    mb = microbench
    case = mb.Case(ConvLayer(1, 32, 8, 3, 1, 8), 1, 8)
    paths = []
    for name in names:
        (tmp_path / name).write_bytes(mb.binary_graph(case))
        paths.append(str(tmp_path / name))
    return paths


@pytest.mark.slow
def test_remote_flow_with_stand_in_tools(fake_board, sshd, tmp_path):
    tools, root = fake_board
    files = _graphs(tmp_path, "a.onnx", "crash_me.onnx")
    options = tr.TrtOptions(tensorrt_root=root, cuda_archs="53", iterations=100, timeout=60)
    rows, facts = tr.bench_trt(_target(sshd), files, options)
    assert facts["tensorrt"] == "8.2.1" and facts["nvcc_version"] == "10.2" and facts["plugin"].endswith("libbinaryconv_plugin.so")
    assert [(r["model"], r["kernel"], r["status"]) for r in rows] == [
        ("a.onnx", "plugin-fp32", "ok"), ("a.onnx", "plugin-fp16", "ok"),
        ("crash_me.onnx", "plugin-fp32", "failed"), ("crash_me.onnx", "plugin-fp16", "failed")]
    ok = rows[0]
    assert ok["runtime"] == "tensorrt" and ok["latency_ms"] == {"mean": 14.1837, "median": 14.1216, "p90": 14.4072, "min": 13.9136}
    assert ok["fps"] == pytest.approx(1000 / 14.1837, rel=1e-4) and ok["host_latency_ms"]["mean"] == 14.2873
    assert ok["size_bytes"] == os.path.getsize(files[0]) and ok["tensorrt"] == "8.2.1"
    assert "trtexec exit 139" in rows[2]["error"] and "unspecified launch failure" in rows[2]["error"]
    configure, build = (tools / "cmake.log").read_text().splitlines()
    assert "-DLCEFR_CUDA_ARCHS=53" in configure and f"-DTENSORRT_ROOT={root}" in configure and "-DCMAKE_CUDA_COMPILER=" in configure
    assert build.startswith("--build . -- -j")
    calls = (tools / "trtexec.log").read_text().splitlines()
    assert len(calls) == 4 and all("--plugins=/tmp/lcefr-trt." in c and "--iterations=100" in c and "--percentile=90" in c for c in calls)
    assert "--fp16" in calls[1] and "--fp16" not in calls[0]
    assert "--warmUp=500" in calls[0] and "--avgRuns=10" in calls[0]
    workdir = calls[0].split("--plugins=", 1)[1].split("/trt-build/", 1)[0]
    assert workdir.startswith("/tmp/lcefr-trt.") and not os.path.exists(workdir)  # removed afterwards


@pytest.mark.slow
def test_remote_build_failure_and_timeout_are_failed_rows(fake_board, sshd, tmp_path):
    tools, root = fake_board
    files = _graphs(tmp_path, "a.onnx")
    (tools / "fail_build").write_text("")
    rows, facts = tr.bench_trt(_target(sshd), files, tr.TrtOptions(tensorrt_root=root, timeout=60))
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert rows[0]["error"].startswith("plugin cmake build failed on the board:") and "__reduce_add_sync" in rows[0]["error"]
    assert not (tools / "trtexec.log").exists()
    (tools / "fail_build").unlink()
    (tools / "sleep").write_text("")
    rows, _ = tr.bench_trt(_target(sshd), files, tr.TrtOptions(tensorrt_root=root, timeout=2, precisions=("fp16",)))
    assert [r["status"] for r in rows] == ["failed"] and "timed out after 2 s (killed on the board)" in rows[0]["error"]


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory):
    import tensorflow as tf

    inputs = tf.keras.Input((16, 16, 3))
    model = tf.keras.Model(inputs, tf.keras.layers.Conv2D(4, 3)(inputs))
    data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    path = tmp_path_factory.mktemp("tflite") / "tiny.float.tflite"
    path.write_bytes(data)
    return str(path)


@pytest.mark.slow
def test_cli_bench_remote_trt_onnx_without_tensorrt(sshd, tiny_tflite, tmp_path):
    onnx_file = _graphs(tmp_path, "tiny.onnx")[0]
    reports = tmp_path / "reports"
    proc = subprocess.run(
        [sys.executable, "-m", "lcefr.cli", "bench", tiny_tflite, "--remote", sshd.host, "--port", str(sshd.port), "--key", sshd.key,
         "--known-hosts", sshd.known_hosts, "--python", sys.executable, "--core", "-1", "--runs", "5",
         "--reports", str(reports), "--trt-onnx", onnx_file, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr[-2000:]
    host = json.loads(proc.stdout)[0]
    rows = host["results"]
    assert [(r["model"], r["runtime"], r["status"]) for r in rows] == [
        ("tiny.float", "tflite", "ok"), ("tiny.onnx", "tensorrt", "failed"), ("tiny.onnx", "tensorrt", "failed")]
    assert [r["kernel"] for r in rows[1:]] == ["plugin-fp32", "plugin-fp16"]
    assert all(r["error"].startswith("TensorRT not found on the board") for r in rows[1:])
    assert host["machine"]["tensorrt"]["arch"] == "x86_64"
    report = json.load(open(host["reports"]["json"]))
    assert [r["runtime"] for r in report["results"]] == ["tflite", "tensorrt", "tensorrt"]
    md = open(host["reports"]["md"]).read()
    assert "| `tiny.onnx` | tensorrt | plugin-fp16 |" in md and "TensorRT not found on the board" in md


def test_cli_trt_onnx_needs_remote(tmp_path):
    from click.testing import CliRunner

    from lcefr.cli.bench import bench

    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 32)
    result = CliRunner().invoke(bench, [str(model), "--trt-onnx", str(model)])
    assert result.exit_code != 0 and "--trt-onnx needs --remote" in result.output


def test_unreachable_host_gives_failed_trt_rows(tmp_path):
    import shutil
    import socket

    if not shutil.which("ssh"):
        pytest.skip("no ssh client")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connection refused

    def broken(target, report, workdir, say):
        raise RuntimeError("bug in a step")

    files = _graphs(tmp_path, "a.onnx")
    options = BenchOptions(extra_steps=[tr.trt_step(files, tr.TrtOptions(precisions=("fp16",))), broken])
    target = SSHTarget("nobody@127.0.0.1", port=port, connect_timeout=5, known_hosts=str(tmp_path / "known_hosts"))
    report = bench_host(target, [], options)
    assert [(r["model"], r["runtime"], r["kernel"], r["status"]) for r in report.results] == [("a.onnx", "tensorrt", "plugin-fp16", "failed")]
    assert report.results[0]["error"].startswith("cannot reach nobody@127.0.0.1") and report.failed
