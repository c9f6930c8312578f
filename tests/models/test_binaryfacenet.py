"""BinaryFaceNet (Luevano et al.): shapes, published totals, SE squeeze sizes, save/load."""

import numpy as np
import pytest
import tensorflow as tf

from lcefr.keras_graph import CUSTOM_OBJECTS
from lcefr.layers import HEAD_PREFIX
from lcefr.models import create_model, model_info
from lcefr.profile import summarize


@pytest.fixture(scope="module")
def model():
    return create_model("binaryfacenet")


def test_output_shape(model):
    assert model.input_shape == (None, 112, 112, 3)
    assert model.output_shape == (None, 128)


def test_published_totals(model):
    total = summarize("binaryfacenet", model)["total"]
    print(total)
    assert total["params"] == pytest.approx(506_000, rel=0.05)
    assert total["binary_macs"] == pytest.approx(184.9e6, rel=0.05)
    assert total["float_macs"] == pytest.approx(3.85e6, rel=0.05)


def test_se_squeeze_sizes(model):
    sizes = [model.get_layer(f"se_squeeze{i}_conv").output.shape[1:3] for i in range(1, 5)]
    assert [tuple(s) for s in sizes] == [(54, 54), (18, 18), (5, 5), (1, 1)]


def test_head_is_the_full_precision_embedding(model):
    head = [layer for layer in model.layers if layer.name.startswith(HEAD_PREFIX)]
    assert [type(layer).__name__ for layer in head] == [
        "Conv2D", "BatchNormalization", "PReLU", "Conv2D", "BatchNormalization", "PReLU", "Flatten"
    ]


def test_tags():
    for name in ("binaryfacenet", "test_binaryfacenet"):
        info = model_info(name)
        assert (info.family, info.binary, info.embedding_size, info.lce_native) == ("binaryfacenet", True, 128, False)


def test_embedding_size_and_tiny_variant():
    model = create_model("test_binaryfacenet", embedding_size=32)
    assert model.output_shape == (None, 32)
    assert summarize("test_binaryfacenet", model)["total"]["binary_macs"] > 0


def test_wrong_input_size_is_rejected():
    with pytest.raises(ValueError, match="112x112"):
        create_model("test_binaryfacenet", input_shape=(64, 64, 3))


def test_keras_save_load_roundtrip(tmp_path):
    model = create_model("test_binaryfacenet")
    x = np.random.default_rng(0).uniform(-1, 1, (2, 112, 112, 3)).astype("float32")
    expected = model(x, training=False).numpy()
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = tf.keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS)
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), expected)
