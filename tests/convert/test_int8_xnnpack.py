"""int8 exports on XNNPACK's fast path: float islands for PReLU, the off-path warning, ``inspect --delegation``."""
import numpy as np
import pytest

from lcefr.convert.api import convert
from lcefr.convert.delegation import inspect_delegation, placement
from lcefr.eval.parity import face_inputs
from cli_helpers import json_output, one_error, run


def _prelu_model(channels=16, seed=0):
    """conv -> per-channel PReLU (distinct alphas) -> conv -> GAP: the op XNNPACK has no int8 kernel for."""
    import tensorflow as tf

    L = tf.keras.layers
    tf.keras.utils.set_random_seed(seed)
    x = inp = L.Input((32, 32, 3))
    x = L.Conv2D(channels, 3, padding="same")(x)
    prelu = L.PReLU(shared_axes=[1, 2])
    x = prelu(x)
    x = L.Conv2D(channels, 3, strides=2, padding="same")(x)
    x = L.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inp, L.Dense(8)(x))
    prelu.set_weights([np.linspace(0.05, 0.6, channels, dtype=np.float32).reshape(1, 1, channels)])
    return model


@pytest.fixture(scope="module")
def prelu_files(tmp_path_factory):
    model = _prelu_model()
    cal = face_inputs((32, 32, 3), n=16, seed=4)
    probes = face_inputs((32, 32, 3), n=8, seed=5)
    out = {}
    for islands in (False, True):
        buffer, result = convert(model, target="tflite-int8", calibration=cal, probes=probes, float_islands=islands)
        path = tmp_path_factory.mktemp("int8") / f"prelu_{'islands' if islands else 'plain'}.tflite"
        path.write_bytes(buffer)
        out[islands] = (str(path), result)
    return out


def test_plain_int8_prelu_is_off_xnnpack_and_warned(prelu_files):
    path, result = prelu_files[False]
    assert result.float_islands == []
    assert result.checks["xnnpack_fast_path"] is False
    (message,) = [w for w in result.warnings if "fast path" in w]
    assert "PRELU (int8) x1" in message
    report = inspect_delegation(path)
    assert [(op.op, op.dtype) for op in report.off_xnnpack] == [("PRELU", "int8")]
    assert report.partitions == 2  # the builtin PReLU splits the graph


def test_islands_keep_every_op_on_xnnpack_without_warning(prelu_files):
    path, result = prelu_files[True]
    assert result.float_islands == ["PRELU"]
    assert result.checks["xnnpack_fast_path"] is True and not result.warnings
    assert result.xnnpack["ops_xnnpack"] == result.xnnpack["ops_total"] and result.xnnpack["partitions"] == 1
    report = inspect_delegation(path)
    prelus = [op for op in report.ops if op.op == "PRELU"]
    assert len(prelus) == 1 and prelus[0].dtype == "float32" and prelus[0].xnnpack
    # the island is DEQUANTIZE -> PRELU -> QUANTIZE; the convolutions stay int8
    assert [op.dtype for op in report.ops if op.op == "CONV_2D"] == ["int8", "int8"]
    assert result.parity["cosine_mean"] >= 0.98


def test_islands_are_no_less_accurate(prelu_files):
    plain, islands = prelu_files[False][1], prelu_files[True][1]
    assert islands.parity["cosine_mean"] >= plain.parity["cosine_mean"] - 1e-3


def test_placement_walks_partitions_back_to_their_inputs():
    """Two partitions around a builtin op; a constant input of a delegated op is not a node."""
    tensors = {i: {"dtype": "int8", "shape": [1, 4]} for i in range(8)}
    raw = {"runtime": "tensorflow", "version": "x", "tensors": tensors, "nodes": [
        {"index": 0, "op": "CONV_2D", "inputs": [0, 7], "outputs": [1]},
        {"index": 1, "op": "ADD", "inputs": [1, 1], "outputs": [2]},
        {"index": 2, "op": "PRELU", "inputs": [2, 7], "outputs": [3]},
        {"index": 3, "op": "CONV_2D", "inputs": [3, 7], "outputs": [4]},
        {"index": 4, "op": "DELEGATE", "inputs": [0, 7], "outputs": [2]},
        {"index": 5, "op": "DELEGATE", "inputs": [3, 7], "outputs": [4]},
    ]}
    report = placement(raw)
    assert [(op.op, op.xnnpack, op.partition) for op in report.ops] == [
        ("CONV_2D", True, 0), ("ADD", True, 0), ("PRELU", False, None), ("CONV_2D", True, 1)]
    assert report.off_path_summary() == {"PRELU (int8)": 1}
    assert report.to_dict()["ops_xnnpack"] == 3


def test_inspect_delegation_cli(prelu_files):
    plain, islands = prelu_files[False][0], prelu_files[True][0]
    result = run("inspect", plain, "--delegation")
    assert result.exit_code == 0 and "PRELU" in result.stdout and "builtin" in result.stdout
    assert "not on XNNPACK's fast path" in result.stdout
    result = run("inspect", islands, "--delegation", "--json", "--all-ops")
    data = json_output(result.stdout)
    assert result.exit_code == 0 and data["off_xnnpack"] == {}
    assert data["ops_xnnpack"] == data["ops_total"] == len(data["ops"])
    result = run("inspect", islands, "--delegation")
    assert result.exit_code == 0 and "every op runs on XNNPACK" in result.stdout


def test_inspect_delegation_refuses_lce_and_junk(tmp_path):
    from lcefr.convert.tflite import convert_lce
    from lcefr.source import load_source

    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all")
    one_error(run("inspect", junk, "--delegation"))
    lce = tmp_path / "q.tflite"
    lce.write_bytes(convert_lce(load_source("test_quicknet").model))
    assert "LCE file" in one_error(run("inspect", lce, "--delegation"))


@pytest.mark.slow
def test_convert_cli_warns_only_without_islands(tmp_path):
    out = tmp_path / "m.int8.tflite"
    result = run("convert", "test_mobilefacenet", "--to", "tflite-int8", "-o", out, "--calibration-size", "8",
                 "--no-float-islands")
    assert result.exit_code == 0 and "warning:" in result.stderr and "PRELU (int8)" in result.stderr
    result = run("convert", "test_mobilefacenet", "--to", "tflite-int8", "-o", out, "--calibration-size", "8")
    assert result.exit_code == 0, result.output
    assert "not on XNNPACK" not in result.stderr and "float islands: PRELU" in result.stdout
