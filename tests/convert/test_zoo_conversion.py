"""Full-size models: every sign-quantized conv is an LceBconv2d and the binary MAC share is high."""
import pytest
import tensorflow as tf

from lcefr.convert.api import convert
from lcefr.source import load_source

SHARE_MIN = {
    "quicknet_small": 0.95,
    "quicknet": 0.95,
    "quicknet_large": 0.95,
    "binaryfacenet_lce": 0.95,
    "adabin_r18": 0.95,
    "binary_densenet28_lce": 0.94,
    "binary_densenet37_lce": 0.94,
    "binary_densenet45_lce": 0.94,
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    sorted(SHARE_MIN),
)
def test_lce_native_models_run_binary(name):
    tf.keras.backend.clear_session()
    src = load_source(name)
    _, result = convert(src.model, target="tflite", name=name, lce_native=src.lce_native)
    assert result.sign_convs > 0
    assert result.ops["lce_bconv2d"] == result.sign_convs
    assert result.ops["binary_mac_share"] >= SHARE_MIN[name]
    assert result.parity["cosine_mean"] >= 0.999 and result.parity["cosine_min"] >= 0.979
    assert not result.warnings


@pytest.mark.slow
def test_faithful_binaryfacenet_is_audited_honestly():
    """The published BinaryFaceNet converts, but none of its binary layers becomes a binary op."""
    tf.keras.backend.clear_session()
    src = load_source("binaryfacenet")
    _, result = convert(src.model, target="tflite", name="binaryfacenet", lce_native=src.lce_native, verify=False)
    assert result.sign_convs == 0
    assert result.ops["lce_bconv2d"] == 0 and result.ops["binary_mac_share"] == 0.0
    assert result.ops["float_conv"] >= 19 and result.ops["float_depthwise"] >= 2
    assert any("run in float" in w for w in result.warnings)
    assert not result.errors


@pytest.mark.slow
@pytest.mark.parametrize("name,target", [("binary_densenet37", "tflite"), ("binary_densenet28", "onnx"), ("binary_densenet37_lce", "onnx")])
def test_densenet_float_paths_keep_parity(name, target):
    """BinaryDenseNet's float stem and transitions feed signs; probes keep them off the thresholds."""
    tf.keras.backend.clear_session()
    src = load_source(name)
    _, result = convert(src.model, target=target, name=name, lce_native=src.lce_native)
    assert result.parity["cosine_mean"] >= 0.999 and result.parity["cosine_min"] >= 0.979
