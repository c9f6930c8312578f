"""`lcefr estimate`: instructions per inference from the flatbuffer alone, against the reference counts."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LCEFR = [sys.executable, "-m", "lcefr.cli"]
MODELS = os.path.join(ROOT, "build", "models")
#: ../shared/reference/arm-a57.md section 3: LCE files (default kernel unless grouped; float ops builtin)
#: and float files (XNNPACK), Cortex-A57
LCE_FIGURES = {"quicknet_small": 16.70e6, "quicknet": 23.87e6, "binary_densenet28_lce": 57.88e6, "binaryfacenet_lce": 108.1e6}
FLOAT_FIGURES = {"quicknet_small": 102.3e6, "quicknet": 161.9e6, "binary_densenet28_lce": 336.7e6,
                 "binaryfacenet_lce": 149.4e6, "mobilefacenet": 88.8e6}
ROW_KEYS = {"model", "cpu", "ghz", "kernel", "float_ops", "instructions", "ms", "fps"}


def _file(name, kind):
    path = os.path.join(MODELS, f"{name}{'' if kind == 'lce' else '.' + kind}.tflite")
    if not os.path.isfile(path):
        subprocess.run(["make", "--no-print-directory", "-C", ROOT, os.path.relpath(path, ROOT)], check=True,
                       stdout=subprocess.DEVNULL)
    return path


def _estimate(*args):
    proc = subprocess.run(LCEFR + ["estimate", "--json", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_lce_files_with_builtin_float_ops_within_20_percent_of_the_reference():
    names = list(LCE_FIGURES)
    rows = _estimate("--float-ops", "builtin", *[_file(n, "lce") for n in names])
    for name, row in zip(names, rows):
        assert ROW_KEYS <= set(row)
        assert row["kernel"] == ("indirect" if name == "binaryfacenet_lce" else "default")  # grouped -> indirect
        assert abs(row["instructions"] / LCE_FIGURES[name] - 1) <= 0.20, (name, row["instructions"])


@pytest.mark.slow
def test_float_files_within_20_percent_of_the_reference():
    names = list(FLOAT_FIGURES)
    rows = _estimate(*[_file(n, "float") for n in names])
    for name, row in zip(names, rows):
        assert row["float_ops"] == "xnnpack" and row["kernel"] == "default"
        assert abs(row["instructions"] / FLOAT_FIGURES[name] - 1) <= 0.20, (name, row["instructions"])


#: int8 files with the float islands, counted here (lcefr/estimate/data/a57_counts.json): XNNPACK on
#: ai-edge-litert, builtin kernels on tflite-runtime 2.14
INT8_COUNTS = {"xnnpack": {"mobilefacenet": 85.39e6, "quicknet_small": 74.14e6},
               "builtin": {"mobilefacenet": 118.01e6, "quicknet_small": 105.20e6}}


@pytest.mark.slow
def test_int8_files_within_20_percent_of_the_counts_per_runtime():
    names = list(INT8_COUNTS["xnnpack"])
    files = [_file(n, "int8") for n in names]
    for mode, figures in INT8_COUNTS.items():
        rows = _estimate("--float-ops", mode, *files)
        for name, row in zip(names, rows):
            assert abs(row["instructions"] / figures[name] - 1) <= 0.20, (mode, name, row["instructions"])


@pytest.mark.slow
def test_ms_and_fps_follow_the_ipc_range_and_clock():
    path = _file("quicknet_small", "lce")
    a57, fast, a72 = _estimate(path)[0], _estimate("--ghz", "2.86", path)[0], _estimate("--cpu", "cortex-a72", path)[0]
    assert a57["cpu"] == "cortex-a57" and a57["ghz"] == 1.43 and a72["ghz"] == 1.5
    assert a57["ms"]["low"] < a57["ms"]["high"] and a57["fps"]["low"] < a57["fps"]["high"]
    assert fast["ms"]["high"] == pytest.approx(a57["ms"]["high"] / 2, rel=1e-2)
    assert a57["instructions"] == a72["instructions"] and a72["ms"]["high"] < a57["ms"]["high"]
    ipc_low = a57["instructions"] / (a57["ms"]["high"] * 1e-3 * 1.43e9)
    assert 0.5 < ipc_low < 1.3


@pytest.mark.slow
def test_per_layer_shares_add_up_and_name_the_kernel():
    (row,) = _estimate("--per-layer", "--kernel", "indirect", _file("quicknet_small", "lce"))
    layers = row["layers"]
    assert {"index", "op", "shape", "kernel", "instructions", "share"} <= set(layers[0])
    assert sum(x["instructions"] for x in layers) == pytest.approx(row["instructions"], rel=1e-3)
    assert sum(x["share"] for x in layers) == pytest.approx(1.0, abs=1e-2)
    assert all(x["kernel"] == "indirect" for x in layers if x["op"] == "LceBconv2d")
    (plain,) = _estimate(_file("quicknet_small", "lce"))
    assert "layers" not in plain


def test_bad_input_is_one_line(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"nope")
    for args in (["estimate", str(bad)], ["estimate", str(tmp_path / "missing.tflite")], ["estimate", "--cpu", "m1", str(bad)]):
        proc = subprocess.run(LCEFR + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
