"""Conversions with their checks: parity with Keras, LceBconv2d audit, clear failures."""
import json
import os

import pytest
import tensorflow as tf
from click.testing import CliRunner

from lcefr.cli import cli
from lcefr.convert import api
from lcefr.convert.api import ConversionCheckError, convert
from lcefr.convert.audit import count_sign_convs, lce_lint
from lcefr.eval.parity import face_inputs
from lcefr.source import load_source
from lcefr.models import list_models, model_info

TINY = list_models("test_*")


def _convert(name, target):
    tf.keras.backend.clear_session()
    src = load_source(name)
    cal = face_inputs((112, 112, 3), n=16, seed=3) if target == "tflite-int8" else None
    return src, convert(src.model, target=target, name=name, lce_native=src.lce_native, calibration=cal)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["tflite", "tflite-float", "onnx"])
@pytest.mark.parametrize("name", TINY)
def test_tiny_models_convert_with_checks(name, target):
    src, (buffer, result) = _convert(name, target)
    assert result.ok and buffer
    assert result.parity["cosine_mean"] >= 0.999 and result.parity["cosine_min"] >= 0.979
    if target == "tflite":
        assert result.ops["lce_bconv2d"] >= result.sign_convs
        if model_info(name).lce_native and model_info(name).binary:
            assert result.ops["lce_bconv2d"] > 0 and result.sign_convs > 0
        if not model_info(name).lce_native:
            assert result.warnings, "a not-LCE-native model must be reported"


def test_quicknet_tiny_lce_every_sign_conv_is_a_bconv():
    src, (buffer, result) = _convert("test_quicknet", "tflite")
    assert result.sign_convs == 4
    assert result.ops["lce_bconv2d"] == 4
    assert result.kernel == "indirect"
    assert result.checks == {"op_audit": True, "parity": True}


@pytest.mark.parametrize("name", ["test_iresnet", "test_mobilefacenet"])
def test_int8_full_precision_parity_enforced(name):
    src, (buffer, result) = _convert(name, "tflite-int8")
    assert result.parity_enforced and result.parity["cosine_min"] >= 0.98
    assert result.ops["float_conv"] > 0


def test_parity_failure_raises_and_returns_no_bytes(monkeypatch):
    """A flatbuffer of another model must fail the parity check."""
    from lcefr.convert import tflite as tfl

    tf.keras.backend.clear_session()
    other = load_source("test_quicknet", seed=99).model
    other_bytes = tfl.convert_lce(other)
    monkeypatch.setattr(api, "convert_lce", lambda model, **kw: other_bytes)
    src = load_source("test_quicknet", seed=1)
    with pytest.raises(ConversionCheckError, match="parity against Keras") as info:
        convert(src.model, target="tflite", name="test_quicknet")
    assert info.value.result.checks["parity"] is False


def test_op_audit_fails_when_bconvs_are_missing():
    report = type("R", (), {"lce_bconv2d": 3, "binary_mac_share": 0.5})()
    result = api.ConversionResult(source="m", target="tflite", sign_convs=4, binary_model=True)
    api._audit_ops(result, report)
    assert result.checks["op_audit"] is False and "3 LceBconv2d for 4" in result.errors[0]
    lenient = api.ConversionResult(source="m", target="tflite", sign_convs=4, binary_model=True, lce_native=False)
    api._audit_ops(lenient, report)
    assert not lenient.errors and lenient.warnings


def test_lint_explains_faithful_binaryfacenet_and_passes_lce_variant():
    bfn = lce_lint(load_source("test_binaryfacenet").model)
    problems = " ".join(f.problem for f in bfn)
    assert "not sign-type" in problems and "depthwise/separable" in problems and "per group" in problems
    assert lce_lint(load_source("test_binaryfacenet_lce").model) == []
    assert count_sign_convs(load_source("test_binaryfacenet_lce").model) == 19


def test_zero_padding_is_linted():
    findings = lce_lint(load_source("binary_densenet28").model)
    assert len(findings) == 23 and all("zero padding" in f.problem for f in findings)
    assert lce_lint(load_source("binary_densenet28_lce").model) == []


# ---- CLI: contract and bad input -------------------------------------------------------------

def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_cli_convert_writes_file_and_json(tmp_path):
    out = tmp_path / "m.tflite"
    result = run("convert", "test_quicknet", "--to", "tflite", "-o", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["output"] == str(out) and os.path.getsize(out) == record["size_bytes"]
    assert record["ops"]["lce_bconv2d"] == 4
    inspected = run("inspect", str(out), "--json")
    report = json.loads(inspected.stdout)
    for key in ("ops", "lce_bconv2d", "bconv_bitpacked_out", "bconv_float_out", "lce_quantize", "lce_dequantize",
                "float_conv", "float_depthwise", "float_fc", "binary_mac_share", "size_bytes"):
        assert key in report
    assert 0.9 < report["binary_mac_share"] < 1.0


def test_trained_models_are_probed_on_faces(tmp_path):
    """A random-init registry model is probed on noise; a saved (trained) model on faces."""
    saved = tmp_path / "m.keras"
    load_source("test_quicknet").model.save(saved)
    records = {}
    for source in ("test_quicknet", str(saved)):
        result = run("convert", source, "--to", "tflite", "-o", str(tmp_path / "m.tflite"), "--json")
        assert result.exit_code == 0, result.stderr
        records[source] = json.loads(result.stdout)
    assert records["test_quicknet"]["probes"] == "noise"
    assert records[str(saved)]["probes"] == "faces"
    assert load_source(str(saved)).random_init is False and load_source("test_quicknet").random_init is True


@pytest.mark.parametrize(
    "args, message",
    [
        (["no_such_model_or_file", "--to", "tflite"], "neither a registered model"),
        (["{notmodel}", "--to", "tflite"], "is not a Keras model file"),
        (["test_quicknet", "--to", "coreml"], "Invalid value for '--to'"),
        (["{gray}", "--to", "tflite"], "Expected a model with one HxWx3 image input"),
    ],
)
def test_cli_convert_bad_input(tmp_path, args, message):
    notmodel = tmp_path / "notes.keras"
    notmodel.write_text("hello")
    gray_path = tmp_path / "gray.keras"
    if "{gray}" in args:
        inp = tf.keras.Input((112, 112, 1))
        tf.keras.Model(inp, tf.keras.layers.Flatten()(inp)).save(gray_path)
    args = [a.format(notmodel=notmodel, gray=gray_path) for a in args]
    out = tmp_path / "out.tflite"
    result = run("convert", *args, "-o", str(out))
    assert result.exit_code != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 4
    assert not out.exists()


def test_cli_inspect_bad_input(tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    result = run("inspect", str(junk))
    assert result.exit_code == 2 and "not a TFLite flatbuffer" in result.stderr
    assert run("inspect", str(tmp_path / "missing.tflite")).exit_code == 2


def test_probe_sign_inputs_stay_off_thresholds():
    """After load_source, no sign input of the probe model sits within SIGN_MARGIN of zero on the parity probes."""
    import numpy as np

    from lcefr.eval.parity import PARITY_PROBES, probe_inputs
    from lcefr.source import SIGN_MARGIN, _sign_input_norms, keep_signs_off_thresholds

    tf.keras.backend.clear_session()
    model = load_source("test_binary_densenet").model
    norms = _sign_input_norms(model)
    assert len(norms) == 4  # one per dense layer
    outputs = tf.keras.Model(model.inputs, [bn.output for bn in norms])(probe_inputs(tuple(model.input_shape[1:]), n=PARITY_PROBES))
    for values in outputs:
        values = np.asarray(values, np.float64).reshape(-1, values.shape[-1])
        assert (np.abs(values).min(axis=0) >= 0.5 * SIGN_MARGIN * np.maximum(values.std(axis=0), 1e-3)).all()
    assert keep_signs_off_thresholds(model, np.random.default_rng(0)) == 0  # already conditioned


@pytest.mark.slow
def test_sign_margin_repair_moves_offsets():
    """An offset that puts a probe value exactly on the threshold is moved, and only in that BatchNorm."""
    import numpy as np

    from lcefr.eval.parity import PARITY_PROBES, probe_inputs
    from lcefr.source import _sign_input_norms, keep_signs_off_thresholds

    tf.keras.backend.clear_session()
    model = load_source("test_binary_densenet").model
    first = _sign_input_norms(model)[0]
    x = tf.keras.Model(model.inputs, first.input)(probe_inputs(tuple(model.input_shape[1:]), n=PARITY_PROBES))
    beta = first.beta.numpy()
    beta[0] = -float(np.asarray(x)[0, 5, 5, 0])  # a sign input of exactly 0 on probe 0
    first.beta.assign(beta)
    assert keep_signs_off_thresholds(model, np.random.default_rng(0)) >= 1
    assert first.beta.numpy()[0] != beta[0]


def test_tflite_metadata_round_trip_keeps_the_model_runnable():
    import numpy as np

    from lcefr.convert.tflite import add_metadata, convert_float, read_metadata

    model = tf.keras.Sequential([tf.keras.layers.Input((4,)), tf.keras.layers.Dense(3)])
    buffer = add_metadata(convert_float(model), "lcefr.bits", b'{"bits": 6}')
    buffer = add_metadata(buffer, "lcefr.bits", b'{"bits": 4}')
    meta = read_metadata(buffer)
    assert meta["lcefr.bits"] == b'{"bits": 4}' and "min_runtime_version" in meta
    interpreter = tf.lite.Interpreter(model_content=buffer)
    interpreter.allocate_tensors()
    x = np.linspace(-1, 1, 4, dtype=np.float32)[None]
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]), model(x).numpy(),
                               rtol=1e-5, atol=1e-6)
