"""lcefr.trt.engine and ``lcefr trt`` against a fake ``tensorrt`` module that records the API calls.

No TensorRT here: the fake checks the order of the builder calls on the 8.2 and 10.x API shapes
(explicit-batch flag, workspace API, FP16 flag, optimization profile), parser-error reporting, the
atomic engine write and the execute_v2 / execute_async_v3 timing loops; without TensorRT the CLI
prints one error line and exits 2.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
from click.testing import CliRunner

from lcefr.runtime import fps, latency_stats
from lcefr.trt import engine as lt
from lcefr.cli.trt import trt as trt_group


class _Tensor:
    def __init__(self, name, shape):
        self.name, self.shape, self.dtype = name, tuple(shape), "DataType.FLOAT"


def fake_tensorrt(version="10.3.0", *, parse_ok=True, errors=(), engine=b"ENGINE", engine_io=None):
    """A ``tensorrt`` stand-in; every call is appended to ``module.calls`` as (name, *args)."""
    m = types.ModuleType("tensorrt")
    m.__version__ = version
    m.calls = calls = []
    major_minor = tuple(int(p) for p in version.split(".")[:2])
    new_api = major_minor >= (8, 4)

    class Logger:
        WARNING = "WARNING"

        def __init__(self, severity):
            calls.append(("Logger", severity))

    m.Logger = Logger
    m.init_libnvinfer_plugins = lambda logger, ns: calls.append(("init_libnvinfer_plugins", ns)) or True
    m.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0)
    m.BuilderFlag = types.SimpleNamespace(FP16="FP16")
    if new_api:
        m.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")

    class Network:
        num_inputs = num_outputs = 1

        def get_input(self, i):
            return _Tensor("face", (-1, 112, 112, 3))

        def get_output(self, i):
            return _Tensor("embedding", (-1, 512))

    class Profile:
        def set_shape(self, name, lo, opt, hi):
            calls.append(("profile.set_shape", name, tuple(lo), tuple(opt), tuple(hi)))

    class Config:
        def __setattr__(self, name, value):
            calls.append(("config." + name, value))
            object.__setattr__(self, name, value)

        def set_flag(self, flag):
            calls.append(("set_flag", flag))

        def add_optimization_profile(self, profile):
            calls.append(("add_optimization_profile",))

    if new_api:
        Config.set_memory_pool_limit = lambda self, pool, size: calls.append(("set_memory_pool_limit", pool, size))

    class Builder:
        platform_has_fast_fp16 = True

        def __init__(self, logger):
            calls.append(("Builder",))

        def create_network(self, flags=0):
            calls.append(("create_network", flags))
            return Network()

        def create_builder_config(self):
            calls.append(("create_builder_config",))
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            calls.append(("build_serialized_network",))
            return engine

    class OnnxParser:
        def __init__(self, network, logger):
            calls.append(("OnnxParser",))
            self.num_errors = 0 if parse_ok else len(errors)

        def parse(self, data):
            calls.append(("parse", bytes(data)))
            return parse_ok

        def get_error(self, i):
            return errors[i]

    m.Builder, m.OnnxParser = Builder, OnnxParser

    # ---- runtime -----------------------------------------------------------------------------------
    io = engine_io or [("face", True, (-1, 112, 112, 3), (1, 112, 112, 3)), ("embedding", False, (1, 512), None)]
    m.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    m.nptype = lambda dtype: np.float32

    class ContextV2:  # 8.2: bindings only
        def set_binding_shape(self, index, shape):
            calls.append(("set_binding_shape", index, tuple(shape)))

        def execute_v2(self, bindings):
            calls.append(("execute_v2", tuple(bindings)))
            return True

    class ContextV3(ContextV2):  # 8.5+ / 10: tensor addresses
        def set_input_shape(self, name, shape):
            calls.append(("set_input_shape", name, tuple(shape)))

        def set_tensor_address(self, name, ptr):
            calls.append(("set_tensor_address", name, ptr))

        def execute_async_v3(self, stream):
            calls.append(("execute_async_v3", stream))
            return True

    class Engine:
        def create_execution_context(self):
            return ContextV3() if new_api else ContextV2()

    if new_api:
        Engine.num_io_tensors = len(io)
        Engine.get_tensor_name = lambda self, i: io[i][0]
        Engine.get_tensor_mode = lambda self, n: "INPUT" if dict((t[0], t[1]) for t in io)[n] else "OUTPUT"
        Engine.get_tensor_shape = lambda self, n: next(t[2] for t in io if t[0] == n)
        Engine.get_tensor_profile_shape = lambda self, n, p: (None, next(t[3] for t in io if t[0] == n), None)
        Engine.get_tensor_dtype = lambda self, n: "DataType.FLOAT"
    else:
        Engine.num_bindings = len(io)
        Engine.get_binding_name = lambda self, i: io[i][0]
        Engine.binding_is_input = lambda self, i: io[i][1]
        Engine.get_binding_shape = lambda self, i: io[i][2]
        Engine.get_profile_shape = lambda self, p, i: (None, io[i][3], None)
        Engine.get_binding_dtype = lambda self, i: "DataType.FLOAT"

    class Runtime:
        def __init__(self, logger):
            calls.append(("Runtime",))

        def deserialize_cuda_engine(self, data):
            calls.append(("deserialize_cuda_engine", bytes(data)))
            return Engine() if data else None

    m.Runtime = Runtime
    return m


@pytest.fixture
def use_trt(monkeypatch):
    """Install a fake tensorrt module; returns it. No plugin is found by default."""
    monkeypatch.setenv(lt.PLUGIN_ENV, "")
    monkeypatch.setattr(lt, "default_plugin", lambda: None)

    def install(*args, **kwargs):
        module = fake_tensorrt(*args, **kwargs)
        monkeypatch.setitem(sys.modules, "tensorrt", module)
        return module
    return install


@pytest.fixture
def onnx_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"ONNX-BYTES")
    return path


BUILD_ORDER = ["Logger", "init_libnvinfer_plugins", "Builder", "create_network", "OnnxParser", "parse",
               "create_builder_config", "set_flag", "build_serialized_network"]


@pytest.mark.parametrize("version, flags, workspace_call", [
    ("8.2.1.8", 1, ("config.max_workspace_size", 256 << 20)),
    ("8.6.1", 1, ("set_memory_pool_limit", "WORKSPACE", 256 << 20)),
    ("10.3.0", 0, ("set_memory_pool_limit", "WORKSPACE", 256 << 20)),
])
@pytest.mark.parametrize("fp16", [False, True])
def test_build_engine_call_order(use_trt, onnx_file, tmp_path, version, flags, workspace_call, fp16):
    fake = use_trt(version)
    engine = tmp_path / "out" / "model.engine"
    result = lt.build_engine(onnx_file, engine, fp16=fp16, workspace_mb=256)
    names = [c[0] for c in fake.calls]
    expected = [n for n in BUILD_ORDER if fp16 or n != "set_flag"]
    assert [n for n in names if n in BUILD_ORDER] == expected
    assert ("create_network", flags) in fake.calls
    assert ("parse", b"ONNX-BYTES") in fake.calls
    assert workspace_call in fake.calls
    assert (("set_flag", "FP16") in fake.calls) == fp16
    # dynamic batch -> one profile fixing it to 1, added before the build
    assert ("profile.set_shape", "face", (1, 112, 112, 3), (1, 112, 112, 3), (1, 112, 112, 3)) in fake.calls
    assert names.index("add_optimization_profile") < names.index("build_serialized_network")
    assert engine.read_bytes() == b"ENGINE"
    assert os.listdir(engine.parent) == ["model.engine"]  # no temp file left
    assert result["bytes"] == 6 and result["tensorrt"] == version and result["fp16"] is fp16
    assert result["inputs"] == [{"name": "face", "shape": [-1, 112, 112, 3], "dtype": "DataType.FLOAT"}]
    assert result["plugin"] is None


def test_build_engine_reports_parser_errors(use_trt, onnx_file, tmp_path):
    errors = ("In node 3 (importFallbackPluginImporter): UNSUPPORTED_NODE: Assertion failed: creator "
              "&& \"Plugin not found, are the plugin name, version, and namespace correct?\"", "second error")
    fake = use_trt("8.2.1.8", parse_ok=False, errors=errors)
    engine = tmp_path / "model.engine"
    with pytest.raises(lt.EngineBuildError) as info:
        lt.build_engine(onnx_file, engine)
    message = str(info.value)
    assert errors[0] in message and "second error" in message
    assert "make trt" in message  # no plugin was loaded: the hint says how to get one
    assert "build_serialized_network" not in [c[0] for c in fake.calls]
    assert not engine.exists()


def test_build_engine_failed_build_writes_nothing(use_trt, onnx_file, tmp_path):
    use_trt("10.3.0", engine=None)
    with pytest.raises(lt.EngineBuildError, match="could not build"):
        lt.build_engine(onnx_file, tmp_path / "model.engine")
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_build_engine_no_fp16_flag(use_trt, onnx_file, tmp_path):
    fake = use_trt("10.3.0")
    del fake.BuilderFlag.FP16  # TensorRT 11: strongly typed networks only
    with pytest.raises(lt.EngineBuildError, match="FP16"):
        lt.build_engine(onnx_file, tmp_path / "model.engine", fp16=True)


@pytest.mark.parametrize("kwargs", [dict(workspace_mb=0), dict(batch=0)])
def test_build_engine_rejects_bad_options(use_trt, onnx_file, tmp_path, kwargs):
    use_trt()
    with pytest.raises(ValueError):
        lt.build_engine(onnx_file, tmp_path / "model.engine", **kwargs)


@pytest.fixture(scope="module")
def empty_plugin(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    folder = tmp_path_factory.mktemp("plugin")
    (folder / "p.cpp").write_text('extern "C" int lcefr_fake_plugin(void) { return 1; }\n')
    out = folder / "libfake_plugin.so"
    subprocess.run([cxx, "-shared", "-fPIC", str(folder / "p.cpp"), "-o", str(out)], check=True)
    return out


def test_build_engine_loads_plugin(use_trt, onnx_file, tmp_path, empty_plugin):
    use_trt("8.2.1.8")
    result = lt.build_engine(onnx_file, tmp_path / "model.engine", plugin=empty_plugin)
    assert result["plugin"] == str(empty_plugin.resolve())
    with pytest.raises(FileNotFoundError, match="make trt"):
        lt.build_engine(onnx_file, tmp_path / "model.engine", plugin=tmp_path / "missing.so")


def test_default_plugin_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(lt.PLUGIN_ENV, str(tmp_path / "lib.so"))
    assert lt.default_plugin() == tmp_path / "lib.so"


# ---- run_engine ---------------------------------------------------------------------------------


class FakeCuda:
    name = "fake"

    def __init__(self):
        self.allocated, self.freed, self.uploads, self.syncs = {}, [], [], 0

    def malloc(self, nbytes):
        ptr = 0x1000 * (len(self.allocated) + 1)
        self.allocated[ptr] = nbytes
        return ptr

    def upload(self, ptr, array):
        self.uploads.append((ptr, array.shape, array.dtype))

    def stream_handle(self):
        return 77

    def synchronize(self):
        self.syncs += 1

    def free(self, ptr):
        self.freed.append(ptr)

    def close(self):
        pass


@pytest.mark.parametrize("version, api", [("8.2.1.8", "execute_v2"), ("10.3.0", "execute_async_v3")])
def test_run_engine(use_trt, monkeypatch, tmp_path, version, api):
    fake = use_trt(version)
    cuda = FakeCuda()
    monkeypatch.setattr(lt, "_cuda_backend", lambda: cuda)
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"ENGINE")
    result = lt.run_engine(engine, runs=7, warmup=2)
    executes = [c for c in fake.calls if c[0] == api]
    assert len(executes) == 9
    assert result["api"] == api and result["runs"] == 7
    assert set(result["latency_ms"]) == {"mean", "median", "p90", "min"} and result["fps"] > 0
    assert cuda.allocated == {0x1000: 112 * 112 * 3 * 4, 0x2000: 512 * 4}
    assert cuda.uploads == [(0x1000, (1, 112, 112, 3), np.float32)]
    assert sorted(cuda.freed) == [0x1000, 0x2000]
    if api == "execute_v2":
        assert executes[0] == ("execute_v2", (0x1000, 0x2000))
        assert ("set_binding_shape", 0, (1, 112, 112, 3)) in fake.calls
    else:
        assert executes[0] == ("execute_async_v3", 77) and cuda.syncs == 9
        assert ("set_input_shape", "face", (1, 112, 112, 3)) in fake.calls
        assert ("set_tensor_address", "embedding", 0x2000) in fake.calls


def test_run_engine_fps_is_1000_over_mean(use_trt, monkeypatch, tmp_path):
    """``lcefr trt run`` rows: latency statistics of the timed runs and FPS = 1000 / mean (not median)."""
    use_trt("10.3.0")
    monkeypatch.setattr(lt, "_cuda_backend", FakeCuda)
    real = lt.time_callable
    monkeypatch.setattr(lt, "time_callable", lambda fn, *, runs, warmup: (real(fn, runs=runs, warmup=warmup),
                                                                          [1.0, 2.0, 3.0, 4.0, 10.0])[1])
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"ENGINE")
    result = lt.run_engine(engine, runs=5, warmup=0)
    assert result["latency_ms"] == {"mean": 4.0, "median": 3.0, "p90": 7.6, "min": 1.0}
    assert result["fps"] == 250.0


def test_run_engine_without_cuda_bindings(use_trt, monkeypatch, tmp_path):
    use_trt("10.3.0")
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart", "pycuda", "pycuda.autoinit",
                 "pycuda.driver"):
        monkeypatch.setitem(sys.modules, name, None)
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"ENGINE")
    with pytest.raises(lt.CudaBindingsMissing, match="cuda-python"):
        lt.run_engine(engine)


def test_run_engine_bad_engine(use_trt, monkeypatch, tmp_path):
    use_trt("10.3.0")
    monkeypatch.setattr(lt, "_cuda_backend", FakeCuda)
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"")
    with pytest.raises(lt.EngineBuildError, match="deserialize"):
        lt.run_engine(engine)


@pytest.mark.parametrize("times, expected", [
    ([2.0], {"mean": 2.0, "median": 2.0, "p90": 2.0, "min": 2.0}),
    ([1.0, 2.0, 3.0, 4.0, 10.0], {"mean": 4.0, "median": 3.0, "p90": 7.6, "min": 1.0}),
])
def test_latency_stats(times, expected):
    """The statistics run_engine reports (lcefr.runtime, one implementation); FPS is 1000 / mean."""
    assert latency_stats(times) == pytest.approx(expected)
    assert fps(expected["mean"]) == pytest.approx(1000.0 / expected["mean"], rel=1e-4)


def test_latency_stats_empty():
    with pytest.raises(ValueError):
        latency_stats([])


# ---- without TensorRT -------------------------------------------------------------------------


def test_missing_tensorrt_raises(monkeypatch, onnx_file, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(lt.TensorRTMissing, match="^TensorRT is not installed"):
        lt.build_engine(onnx_file, tmp_path / "model.engine")
    with pytest.raises(lt.TensorRTMissing):
        lt.run_engine(tmp_path / "model.engine")


@pytest.mark.parametrize("args", [["build", "x.onnx", "-o", "y.engine"], ["run", "y.engine", "--runs", "3"]])
def test_cli_without_tensorrt_group(monkeypatch, args):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    result = CliRunner().invoke(trt_group, args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()  # click 8.2+ keeps stderr apart; both end up here or there
    assert len(lines) == 1 and lines[0].startswith("error: TensorRT is not installed")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed")
def test_cli_without_tensorrt_subprocess(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lcefr.cli", "trt", "build", "x.onnx", "-o", "y.engine"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("error: TensorRT is not installed")
    assert not (tmp_path / "y.engine").exists()
