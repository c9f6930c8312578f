"""`lcefr quantize`: happy paths on a tiny registry teacher, and bad input with nothing written."""
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from lcefr.cli import cli


def run(*args):
    return CliRunner().invoke(cli, list(args))


def _one_error_line(result):
    lines = [l for l in result.output.strip().splitlines() if l.strip()]
    assert result.exit_code == 2, result.output
    assert lines[-1].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[-1]


def test_missing_teacher_file(tmp_path):
    out = tmp_path / "out"
    line = _one_error_line(run("quantize", "--teacher", str(tmp_path / "nope.keras"), "--bits", "8",
                               "--data", "synthetic", "--out", str(out)))
    assert "--teacher" in line and "nope.keras" in line
    assert not out.exists()


def test_teacher_not_a_model(tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a model")
    out = tmp_path / "out"
    line = _one_error_line(run("quantize", "--teacher", str(bad), "--bits", "8", "--data", "synthetic",
                               "--out", str(out)))
    assert "not a Keras model" in line
    assert not out.exists()


@pytest.mark.parametrize("bits", ["5", "16", "0"])
def test_bad_bits(tmp_path, bits):
    out = tmp_path / "out"
    line = _one_error_line(run("quantize", "--teacher", "test_iresnet", "--bits", bits, "--data", "synthetic",
                               "--out", str(out)))
    assert "--bits must be one of 8, 6, 4" in line and bits in line
    assert not out.exists()


def test_empty_and_missing_data_dir(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    line = _one_error_line(run("quantize", "--teacher", "test_iresnet", "--bits", "8", "--data", str(empty),
                               "--out", str(out)))
    assert "no images" in line
    line = _one_error_line(run("quantize", "--teacher", "test_iresnet", "--bits", "8", "--data", str(tmp_path / "x"),
                               "--out", str(out)))
    assert "no such folder" in line
    assert not out.exists()
    assert os.listdir(tmp_path) == ["empty"]


def test_ce_needs_labels_and_missing_bin(tmp_path):
    import cv2

    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        cv2.imwrite(str(flat / f"{i}.png"), np.zeros((112, 112, 3), np.uint8))
    out = tmp_path / "out"
    line = _one_error_line(run("quantize", "--teacher", "test_iresnet", "--bits", "8", "--data", str(flat),
                               "--loss", "ekd+ce", "--out", str(out)))
    assert "labelled" in line
    line = _one_error_line(run("quantize", "--teacher", "test_iresnet", "--bits", "8", "--data", str(flat),
                               "--val-bin", str(tmp_path / "v.bin"), "--out", str(out)))
    assert "v.bin" in line
    assert not out.exists()


@pytest.fixture(scope="module")
def tiny_bin(tmp_path_factory):
    from lcefr.data.pairs import synthetic_bin

    path = str(tmp_path_factory.mktemp("bin") / "tiny.bin")
    synthetic_bin(path, pairs=20, seed=0, identities=4, per_identity=5)
    return path


@pytest.fixture(scope="module")
def face_folder(tmp_path_factory):
    from lcefr.data.synth import synth_dataset

    root = str(tmp_path_factory.mktemp("faces"))
    synth_dataset(root, identities=4, per_identity=4, seed=0)
    return root


@pytest.mark.slow
def test_happy_path_8bit_exports_int8_tflite(tmp_path, tiny_bin, face_folder):
    out = tmp_path / "run"
    result = run("quantize", "--teacher", "test_iresnet", "--bits", "8", "--data", face_folder, "--images", "16",
                 "--batch-size", "8", "--calibration-images", "16", "--val-bin", tiny_bin, "--no-flip",
                 "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out)) == ["model.int8.json", "model.int8.tflite", "quantized.keras", "report.json"]
    report = json.loads((out / "report.json").read_text())
    assert report["bits"] == 8 and report["images"] == 16 and report["labelled"]
    assert report["size_bytes_quantized"] * 4 == report["size_bytes_float"]
    acc = report["accuracy"]["tiny"]
    assert 0 <= acc["quantized"] <= 1 and 0 <= acc["int8_tflite"] <= 1
    assert acc["gap"] == pytest.approx(acc["teacher"] - acc["quantized"])

    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=(out / "model.int8.tflite").read_bytes())
    kinds = {d["dtype"] for d in interpreter.get_tensor_details()}
    assert np.int8 in kinds
    evaluated = run("eval", str(out / "quantized.keras"), "--bin", tiny_bin, "--no-flip", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["sets"]["tiny"]["accuracy"] == pytest.approx(acc["quantized"])


@pytest.mark.slow
def test_happy_path_4bit_mse_int8_container(tmp_path, face_folder):
    from lcefr.convert.tflite import read_metadata

    out = tmp_path / "run"
    out.mkdir()
    (out / "model.int8.tflite").write_bytes(b"stale")
    result = run("quantize", "--teacher", "test_iresnet", "--bits", "4", "--data", face_folder, "--images", "8",
                 "--batch-size", "4", "--loss", "mse", "--calibration-images", "8", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out)) == ["model.int8.json", "model.int8.tflite", "quantized.keras", "report.json"]
    report = json.loads((out / "report.json").read_text())
    assert report["bits"] == 4 and report["size_bytes_quantized"] * 8 == report["size_bytes_float"]
    assert report["accuracy"] == {} and report["tflite_int8_bytes"] == os.path.getsize(out / "model.int8.tflite")
    meta = json.loads(read_metadata((out / "model.int8.tflite").read_bytes())["lcefr.bits"])
    assert meta["bits"] == 4 and meta["container"] == "int8"
    sidecar = json.loads((out / "model.int8.json").read_text())
    assert sidecar["bits"] == 4 and sidecar["conversion"]["parity"]["cosine_mean"] >= 0.98
