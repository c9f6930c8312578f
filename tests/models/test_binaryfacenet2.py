"""BinaryFaceNet2 (issue 25): registry, parameter budget, LCE-native layers; the full model's LCE
file against the budgets (size, LceBconv2d coverage, binary MAC share, bitpacked chains, A57
estimate, LCE's default kernel) in one slow test."""
import larq as lq
import numpy as np
import pytest

from lcefr.convert.audit import count_sign_convs, lce_lint
from lcefr.models import create_model, list_models, model_info

MAX_PARAMS = 1_000_000
MAX_BYTES = 1_000_000
MAX_A57_INSTRUCTIONS = 7_000_000


@pytest.fixture(scope="module")
def tiny():
    return create_model("test_binaryfacenet2")


def _binary_convs(model):
    return [layer for layer in model.layers if isinstance(layer, lq.layers.QuantConv2D)]


def test_registered_with_tags():
    assert {"binaryfacenet2", "test_binaryfacenet2"} <= set(list_models("*binaryfacenet2"))
    for name in ("binaryfacenet2", "test_binaryfacenet2"):
        info = model_info(name)
        assert (info.family, info.binary, info.embedding_size, info.lce_native) == ("binaryfacenet2", True, 128, True)


def test_full_model_parameter_budget():
    model = create_model("binaryfacenet2")
    assert model.input_shape == (None, 112, 112, 3)
    assert model.output_shape == (None, 128)
    assert model.count_params() < MAX_PARAMS


def test_binary_convs_are_lce_default_kernel_shaped(tiny):
    convs = _binary_convs(tiny)
    assert len(convs) == 4
    for layer in convs:
        assert layer.groups == 1, layer.name
        assert layer.pad_values == 1.0, layer.name
        assert isinstance(layer.input_quantizer, lq.quantizers.SteSign), layer.name
        assert isinstance(layer.kernel_quantizer, lq.quantizers.SteSign), layer.name
    assert count_sign_convs(tiny) == len(convs)
    assert lce_lint(tiny) == []


def test_tiny_embeds(tiny):
    x = np.random.default_rng(0).uniform(-1, 1, (2, 112, 112, 3)).astype("float32")
    out = tiny(x, training=False).numpy()
    assert out.shape == (2, 128) and np.isfinite(out).all()
    assert np.std(out, axis=0).max() > 0, "the embedding does not depend on the face"


def test_input_sides_must_divide_by_16():
    with pytest.raises(ValueError, match="multiples of 16"):
        create_model("test_binaryfacenet2", input_shape=(100, 100, 3))


@pytest.mark.slow
def test_full_model_lce_file_meets_the_budgets():
    from lcefr.convert.inspect import inspect_tflite
    from lcefr.convert.tflite import convert_lce
    from lcefr.estimate import estimate_ops
    from lcefr.estimate.ops import read_op_infos
    from lcefr.runtime import lce_interpreter

    model = create_model("binaryfacenet2")
    buffer = convert_lce(model)
    assert len(buffer) < MAX_BYTES
    report = inspect_tflite(buffer).to_dict()
    assert report["lce_bconv2d"] == count_sign_convs(model) == 6
    assert report["binary_mac_share"] >= 0.90
    assert report["bconv_bitpacked_out"] > 0
    estimate = estimate_ops(read_op_infos(buffer), cpu="cortex-a57")
    assert estimate["kernel"] == "default"
    assert estimate["instructions"] <= MAX_A57_INSTRUCTIONS
    interpreter = lce_interpreter(buffer, kernel="default")
    out = np.asarray(interpreter.predict(np.zeros((1, 112, 112, 3), np.float32)))
    assert out.reshape(-1).shape == (128,) and np.isfinite(out).all()
