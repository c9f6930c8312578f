"""lcefr.trt.gpu_check without a GPU: the CPU reference stands in for the device.

Covered here: the bit-exact comparison (and that a flipped bit, a NaN left by a skipped element
or a wrong launcher path fails it), the expected launcher fallbacks, the report files, the
missing-piece messages and exit codes, the import without TensorFlow, and the module under
numpy 2 in a side environment. The device run itself is in docs/gpu-check.md.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lcefr import cuda_ref
from lcefr.trt import cuda_device, gpu_check
from lcefr.trt.cuda_device import ReferenceDevice, expected_path
from lcefr.trt.shapes import ConvLayer

ROOT = Path(__file__).resolve().parents[2]
CASES = cuda_ref.REFERENCE_CASES[::5]


class FlippingDevice(ReferenceDevice):
    """The reference with one output bit flipped (or a skipped element, or a wrong path)."""

    def __init__(self, fault, **kw):
        super().__init__(**kw)
        self.fault = fault

    def bconv2d(self, p, x_packed, w_packed, **kw):
        status, used, out = super().bconv2d(p, x_packed, w_packed, **kw)
        if out is None:
            return status, used, out
        out = out.copy()
        flat = out.reshape(-1).view(np.uint32)
        if self.fault == "bit":
            flat[flat.size // 2] ^= np.uint32(1)
        elif self.fault == "nan":
            flat[-1] = np.uint32(0xFFFFFFFF)
        elif self.fault == "path":
            used = "popc" if used != "popc" else "bmma_xor"
        return status, used, out


def test_reference_stands_in_for_an_h200_and_passes_every_row():
    rows = gpu_check.check_kernels(ReferenceDevice(cc=(9, 0)), CASES)
    assert rows and all(r["pass"] for r in rows)
    paths = {r["path"] for r in rows}
    assert {"popc", "bmma_xor", "bmma_and"} <= paths
    assert {r["epilogue"] for r in rows if r["check"] == "bconv2d"} == set(gpu_check.EPILOGUES)
    assert {"packed", "float"} <= {r["output"] for r in rows}
    features = {f for r in rows for f in r["features"]}
    assert {"one-padding", "zero-padding", "groups", "NCHW", "NHWC"} <= features


@pytest.mark.parametrize("fault", ["bit", "nan", "path"])
def test_a_wrong_device_output_fails(fault):
    rows = gpu_check.check_kernels(FlippingDevice(fault, cc=(9, 0)), CASES[:3])
    bad = [r for r in rows if not r["pass"]]
    computed = [r for r in rows if r["check"] == "bconv2d" and r["expected_path"] is not None]
    assert len(bad) == len(computed)
    assert all(r["mismatches"] >= 1 for r in bad)
    if fault == "nan":
        assert any(r["max_abs_error"] == float("inf") for r in bad if r["output"] == "float")
    if fault == "path":
        assert all("launcher took" in r["note"] for r in bad)
    summary = gpu_check.summarize(rows)
    assert any(g["failed"] for g in summary) and not all(g["pass"] for g in summary)


def test_compare_is_bit_exact():
    a = np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5
    assert gpu_check.compare(a.copy(), a) == {"mismatches": 0, "max_abs_error": 0.0}
    b = a.copy()
    b.view(np.uint32)[1, 1] ^= 1  # one ulp
    got = gpu_check.compare(b, a)
    assert got["mismatches"] == 1 and 0 < got["max_abs_error"] < 1e-5
    packed = np.array([[5, -1]], np.int32)
    flipped = packed.copy()
    flipped[0, 1] ^= 0b1010
    assert gpu_check.compare(flipped, packed) == {"mismatches": 1, "max_abs_error": 2.0}
    assert gpu_check.compare(None, a)["max_abs_error"] == float("inf")
    assert gpu_check.compare(a[:2], a)["mismatches"] == a.size


def test_epilogue_values_are_exact_in_float32():
    mult, bias, ada = gpu_check.epilogue("bn+adabin", 64, seed=3)
    acc = np.arange(-6400, 6400, 7, dtype=np.int64)[:, None]
    exact = mult.astype(np.float64) * acc + bias + ada.astype(np.float64) * (acc // 3)
    assert np.array_equal(exact.astype(np.float32).astype(np.float64), exact)
    assert gpu_check.epilogue("acc", 8, seed=0) == (None, None, None)


@pytest.mark.parametrize("cc, arch, requested, want", [
    ((9, 0), 90, "auto", "bmma_and"),
    ((9, 0), 75, "auto", "bmma_xor"),   # compute_75 PTX only: AND is not there, AUTO falls back
    ((9, 0), 75, "bmma_and", None),      # ... and an explicit AND is refused
    ((9, 0), 75, "bmma_xor", "bmma_xor"),
    ((7, 5), 75, "auto", "bmma_xor"),
    ((7, 5), 70, "auto", "popc"),
    ((7, 5), 70, "bmma_xor", None),
    ((5, 3), 53, "auto", "popc"),
    ((5, 3), 53, "bmma_xor", None),
])
def test_expected_launcher_path(cc, arch, requested, want):
    assert expected_path(cc=cc, compiled_arch=arch, in_channels=128, out_channels=64, group=1,
                         requested=requested) == want


def test_the_fallback_library_rows_refuse_and():
    rows = gpu_check.check_kernels(ReferenceDevice(cc=(9, 0), compiled_arch=75), CASES[:4], label="compute_75 PTX")
    assert all(r["pass"] for r in rows)
    assert {r["path"] for r in rows if r["requested"] == "auto"} <= {"bmma_xor", "popc"}
    assert all(r["status"] == cuda_device.E_PATH for r in rows if r["requested"] == "bmma_and")


@pytest.mark.parametrize("name, slug", [
    ("NVIDIA H200", "nvidia-h200"),
    ("NVIDIA GeForce RTX 4090", "nvidia-geforce-rtx-4090"),
    ("Orin (nvgpu)", "orin-nvgpu"),
    ("NVIDIA Tegra X1", "nvidia-tegra-x1"),
])
def test_gpu_slug(name, slug):
    assert gpu_check.gpu_slug(name) == slug


# ---- the whole command with the reference as the device -----------------------------------------


@pytest.fixture
def fake_machine(monkeypatch, tmp_path):
    """probe/nvcc/build/torch replaced; the 'device' is the reference (optionally faulty)."""
    state = {"fault": None}
    monkeypatch.setattr(gpu_check, "probe_gpu", lambda: {"devices": 1, "driver_api": 13000, "cc": (9, 0)})
    monkeypatch.setattr(gpu_check, "find_nvcc", lambda: "/opt/fake/nvcc")
    monkeypatch.setattr(gpu_check, "_nvcc_version", lambda nvcc: "13.0")
    monkeypatch.setattr(gpu_check, "build_library", lambda nvcc, gencode, out: out)
    monkeypatch.setattr(gpu_check, "IR18_CONVS", [ConvLayer(1, 32, 32, 3, 1, 6), ConvLayer(2, 40, 64, 1, 2, 6)])
    monkeypatch.setattr(gpu_check, "BATCHES", (1, 2))
    monkeypatch.setattr(cuda_ref, "REFERENCE_CASES", CASES)

    def device(library, compiled_arch):
        cls = FlippingDevice if state["fault"] else ReferenceDevice
        kw = {"fault": state["fault"]} if state["fault"] else {}
        dev = cls(cc=(9, 0), compiled_arch=compiled_arch, name="NVIDIA H200", **kw)
        dev.driver_version = dev.runtime_version = 13000
        return dev

    monkeypatch.setattr(gpu_check, "CudaDevice", device)
    return state, tmp_path


def test_main_writes_the_report_and_exits_0(fake_machine, capsys):
    _, tmp_path = fake_machine
    assert gpu_check.main(["--out", str(tmp_path), "--no-torch"]) == 0
    out = capsys.readouterr().out
    assert "**Correctness: PASS**" in out and "| popc |" in out
    files = sorted(p.name for p in tmp_path.iterdir())
    assert any(f.startswith("gpu-check-nvidia-h200-") and f.endswith(".json") for f in files)
    assert any(f.endswith(".md") for f in files)
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert report["passed"] and report["gpu"]["arch"] == 90
    assert {r["library"] for r in report["kernels"]} == {"native", "compute_75 PTX"}
    assert len(report["timing"]) == 4 and set(report["timing"][0]["ms"]) == {"popc", "bmma_xor", "bmma_and"}
    assert any("TensorRT" in n for n in report["notes"])


def test_main_exits_1_on_a_flipped_bit(fake_machine, capsys):
    state, tmp_path = fake_machine
    state["fault"] = "bit"
    assert gpu_check.main(["--out", str(tmp_path), "--no-torch", "--quick"]) == 1
    assert "**Correctness: FAIL**" in capsys.readouterr().out
    assert "First failures" in next(tmp_path.glob("*.md")).read_text()


def test_json_output(fake_machine, capsys):
    _, tmp_path = fake_machine
    assert gpu_check.main(["--out", str(tmp_path), "--no-torch", "--quick", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] > 0


# ---- missing pieces -----------------------------------------------------------------------------


class _NoDriver:
    def __call__(self, name, *a, **kw):
        raise OSError(f"{name}: cannot open shared object file")


def test_missing_gpu(monkeypatch):
    monkeypatch.setattr(gpu_check.ctypes, "CDLL", _NoDriver())
    monkeypatch.setattr(gpu_check.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(gpu_check.os.path, "exists", lambda p: False)
    with pytest.raises(gpu_check.Missing, match="no NVIDIA GPU") as info:
        gpu_check.probe_gpu()
    assert info.value.piece == "GPU"


def test_missing_driver(monkeypatch):
    monkeypatch.setattr(gpu_check.ctypes, "CDLL", _NoDriver())
    monkeypatch.setattr(gpu_check.glob, "glob", lambda pattern: ["/dev/nvidia0"] if "nvidia" in pattern else [])
    with pytest.raises(gpu_check.Missing, match="driver missing") as info:
        gpu_check.probe_gpu()
    assert info.value.piece == "driver"


@pytest.mark.parametrize("status, piece", [(100, "GPU"), (35, "driver"), (999, "driver")])
def test_driver_without_device(monkeypatch, status, piece):
    class Lib:
        def cuInit(self, flags):
            return status
    monkeypatch.setattr(gpu_check.ctypes, "CDLL", lambda name: Lib())
    with pytest.raises(gpu_check.Missing) as info:
        gpu_check.probe_gpu()
    assert info.value.piece == piece


def test_missing_nvcc(monkeypatch):
    monkeypatch.delenv("NVCC", raising=False)
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.setattr(gpu_check.shutil, "which", lambda name: None)
    monkeypatch.setattr(gpu_check.os, "access", lambda path, mode: False)
    with pytest.raises(gpu_check.Missing, match="nvcc missing") as info:
        gpu_check.find_nvcc()
    assert info.value.piece == "nvcc"
    monkeypatch.setenv("NVCC", "/nowhere/nvcc")
    with pytest.raises(gpu_check.Missing, match="NVCC=/nowhere/nvcc"):
        gpu_check.find_nvcc()


def test_missing_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(gpu_check.Missing, match="PyTorch missing.*--no-torch") as info:
        gpu_check.import_torch(required=True)
    assert info.value.piece == "PyTorch"
    assert gpu_check.import_torch(required=False) is None


@pytest.mark.parametrize("piece", ["GPU", "driver", "nvcc", "PyTorch"])
def test_main_says_what_is_missing_in_one_line(monkeypatch, capsys, piece):
    def missing():
        raise gpu_check.Missing(piece, f"{piece} missing: test")
    monkeypatch.setattr(gpu_check, "probe_gpu", missing)
    assert gpu_check.main([]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"gpu-check: {piece} missing: test"


def _has_driver():
    try:
        import ctypes
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        return False


@pytest.mark.skipif(_has_driver(), reason="this machine has an NVIDIA driver")
def test_module_on_a_machine_without_gpu():
    proc = subprocess.run([sys.executable, "-m", "lcefr.trt.gpu_check"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no NVIDIA GPU" in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.skipif(_has_driver(), reason="this machine has an NVIDIA driver")
def test_make_gpu_check_without_gpu():
    proc = subprocess.run(["make", "--no-print-directory", "gpu-check", f"PYTHON={sys.executable}"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    first = proc.stderr.strip().splitlines()[0]
    assert first.startswith("gpu-check: no NVIDIA GPU found") and "Traceback" not in proc.stderr


def test_imports_without_tensorflow_or_torch():
    code = ("import sys; sys.modules['tensorflow'] = None; sys.modules['torch'] = None\n"
            "import lcefr.trt.gpu_check\n"
            "heavy = [m for m in ('tensorflow', 'torch', 'larq', 'keras', 'click') if sys.modules.get(m)]\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


NUMPY2_CHECK = """
import numpy, sys
assert numpy.__version__.startswith("2."), numpy.__version__
from lcefr import cuda_ref
from lcefr.trt import gpu_check
from lcefr.trt.cuda_device import ReferenceDevice
rows = gpu_check.check_kernels(ReferenceDevice(cc=(8, 6)), cuda_ref.REFERENCE_CASES[::7])
assert rows and all(r["pass"] for r in rows), [r for r in rows if not r["pass"]][:2]
print("numpy", numpy.__version__, len(rows), "rows")
"""


@pytest.mark.slow
def test_module_under_numpy_2(tmp_path):
    venv = ROOT / "build" / "numpy2-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "numpy>=2,<3"], capture_output=True, text=True)
        if pip.returncode:
            if os.environ.get("CI") == "true":
                pytest.fail(f"pip install numpy 2 failed: {pip.stderr[-500:]}")
            pytest.skip("numpy 2 cannot be installed here (no package registry)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([str(python), "-c", NUMPY2_CHECK], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("numpy 2.")


# ---- TensorRT rows (a fake tensorrt module records the network definition) ------------------------


def fake_tensorrt(version="10.3.0", build_ok=True):
    import types

    calls = []
    m = types.SimpleNamespace(__version__=version, calls=calls, float32="float32")
    m.Logger = type("Logger", (), {"ERROR": 1, "__init__": lambda self, sev: calls.append(("Logger", sev))})
    m.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0)
    m.BuilderFlag = types.SimpleNamespace(FP16="FP16", INT8="INT8")
    m.Weights = lambda array: ("Weights", array.shape, array.dtype)

    class Tensor:
        def __init__(self, name, shape=None):
            self.name, self.shape = name, shape

        def set_dynamic_range(self, lo, hi):
            calls.append(("dynamic_range", self.name, lo, hi))

    class Conv:
        def __init__(self):
            self.out = Tensor("conv")

        def __setattr__(self, key, value):
            if key in ("stride_nd", "padding_nd"):
                calls.append((key, value))
            object.__setattr__(self, key, value)

        def get_output(self, i):
            return self.out

    class Network:
        def add_input(self, name, dtype, shape):
            calls.append(("add_input", name, dtype, shape))
            return Tensor(name, shape)

        def add_convolution_nd(self, x, cout, kernel, w, b):
            calls.append(("add_convolution_nd", cout, kernel, w, b))
            return Conv()

        def mark_output(self, t):
            calls.append(("mark_output", t.name))

    class Config:
        def set_flag(self, flag):
            calls.append(("set_flag", flag))

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            calls.append(("create_network", flags))
            return Network()

        def create_builder_config(self):
            return Config()

        def build_serialized_network(self, network, config):
            return b"PLAN" if build_ok else None

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return ("engine", bytes(data))

    m.Builder, m.Runtime = Builder, Runtime
    return m


@pytest.mark.parametrize("precision", ["fp16", "int8"])
@pytest.mark.parametrize("version, flags", [("10.3.0", 0), ("8.6.1", 1)])
def test_tensorrt_conv_engine_defines_the_layer(precision, version, flags):
    from lcefr.trt import gpu_trt
    from lcefr.trt.shapes import IR18_CONVS

    trt = fake_tensorrt(version)
    layer = IR18_CONVS[17]  # 512 -> 512, 3x3, stride 2, 14x14
    assert gpu_trt.conv_engine(trt, layer, 64, precision) == ("engine", b"PLAN")
    calls = trt.calls
    assert ("create_network", flags) in calls
    assert ("add_input", "x", "float32", (64, 512, 14, 14)) in calls
    conv = next(c for c in calls if c[0] == "add_convolution_nd")
    assert conv[1:3] == (512, (3, 3)) and conv[3] == ("Weights", (512, 512, 3, 3), np.float32)
    assert ("stride_nd", (2, 2)) in calls and ("padding_nd", (1, 1)) in calls and ("mark_output", "y") in calls
    flags_set = [c[1] for c in calls if c[0] == "set_flag"]
    assert flags_set == (["FP16", "INT8"] if precision == "int8" else ["FP16"])
    assert any(c[0] == "dynamic_range" for c in calls) == (precision == "int8")


def test_tensorrt_build_failure_and_old_versions():
    from lcefr.trt import gpu_trt
    from lcefr.trt.shapes import IR18_CONVS

    with pytest.raises(RuntimeError, match="could not build the fp16 engine of conv 1"):
        gpu_trt.conv_engine(fake_tensorrt(build_ok=False), IR18_CONVS[0], 1, "fp16")
    with pytest.raises(ValueError, match="precision"):
        gpu_trt.conv_engine(fake_tensorrt(), IR18_CONVS[0], 1, "fp8")
    assert "older than 8.5" in gpu_trt.unsupported(fake_tensorrt("8.2.1"))
    assert gpu_trt.unsupported(fake_tensorrt("10.3.0")) is None


def test_report_names_an_old_tensorrt(fake_machine, monkeypatch, capsys):
    _, tmp_path = fake_machine
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("8.2.1"))
    assert gpu_check.main(["--out", str(tmp_path), "--no-torch", "--quick"]) == 0
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert any("older than 8.5" in n for n in report["notes"]) and report["tensorrt"] is None


# ---- the plugin engine check ------------------------------------------------------------------------


def test_compare_outputs():
    from lcefr.trt import gpu_trt

    ref = np.random.default_rng(0).standard_normal((2, 128)).astype(np.float32)
    assert gpu_trt.compare_outputs(ref.copy(), ref)["pass"]
    noisy = ref + 0.2 * np.random.default_rng(1).standard_normal(ref.shape).astype(np.float32)
    got = gpu_trt.compare_outputs(noisy, ref)
    assert not got["pass"] and got["cosine_min"] < gpu_trt.PLUGIN_COSINE_MIN and got["max_abs_diff"] > 0.1
    assert not gpu_trt.compare_outputs(ref[:, :64], ref)["pass"]
    nan = ref.copy()
    nan[1, 3] = np.nan
    assert not gpu_trt.compare_outputs(nan, ref)["pass"]


def test_build_plugin_failure_is_one_line(monkeypatch, tmp_path):
    from lcefr.trt import gpu_trt

    def fake_run(cmd, **kw):
        assert cmd[:4] == ["make", "--no-print-directory", "-C", str(ROOT)] and "trt" in cmd
        return subprocess.CompletedProcess(cmd, 2, "", "cmake output\nerror: TensorRT not found (set TENSORRT_ROOT)\n")
    monkeypatch.setattr(gpu_trt.subprocess, "run", fake_run)
    with pytest.raises(RuntimeError, match=r"^make trt failed: error: TensorRT not found"):
        gpu_trt.build_plugin(tmp_path)


def test_plugin_engine_check_is_skipped_with_the_reason(fake_machine):
    _, tmp_path = fake_machine
    assert gpu_check.main(["--out", str(tmp_path), "--no-torch", "--quick", "--onnx", str(tmp_path / "none.onnx")]) == 0
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert report["plugin_engine"] is None
    note = next(n for n in report["notes"] if n.startswith("no plugin engine check"))
    assert "TensorRT" in note and "PyTorch" in note and "none.onnx" in note


def test_a_failing_plugin_engine_fails_the_check(monkeypatch, tmp_path):
    import argparse

    from lcefr.trt import gpu_trt

    onnx = tmp_path / "qs.onnx"
    onnx.write_bytes(b"onnx")
    monkeypatch.setattr(gpu_check.importlib.util, "find_spec", lambda name: object())

    def broken(*a, **kw):
        raise RuntimeError("TensorRT could not parse qs.onnx: no plugin BinaryConv2d\nmore")
    monkeypatch.setattr(gpu_trt, "plugin_engine_check", broken)
    args = argparse.Namespace(onnx=str(onnx), plugin=None)
    notes = []
    result = gpu_check._plugin_engine(args, object(), object(), tmp_path, notes)
    assert result == {"onnx": str(onnx), "pass": False,
                      "error": "RuntimeError: TensorRT could not parse qs.onnx: no plugin BinaryConv2d"}
    assert not notes
    report = {"started_utc": "2026-12-04T12:00:00Z", "gpu": {"name": "x", "arch": 90, "driver": 1, "runtime": 1},
              "nvcc": {"version": "13.0"}, "torch": None, "tensorrt": "10.3", "rows": 0, "rows_passed": 0,
              "passed": True, "summary": [], "kernels": [], "timing": [], "plugin_engine": result, "notes": []}
    assert "Plugin engine" in gpu_check.markdown(report) and "FAIL" in gpu_check.markdown(report)


def test_event_ms_is_the_median_of_the_timed_runs_after_warmup():
    import types

    from lcefr.trt import gpu_trt

    clock = {"t": 0.0, "runs": 0}
    costs = iter([100.0, 100.0, 3.0, 1.0, 2.0, 50.0, 4.0])  # two warm-up runs, then five timed

    class Event:
        def __init__(self, enable_timing):
            assert enable_timing

        def record(self, stream):
            self.at = clock["t"]

        def elapsed_time(self, end):
            return end.at - self.at

    stream = types.SimpleNamespace(synchronize=lambda: None)
    torch = types.SimpleNamespace(cuda=types.SimpleNamespace(Event=Event, current_stream=lambda: stream))

    def run():
        clock["t"] += next(costs)
        clock["runs"] += 1
    assert gpu_trt.event_ms(torch, run, warmup=2, iters=5) == 3.0
    assert clock["runs"] == 7
