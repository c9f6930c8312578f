"""Every registered model builds, embeds, has no NaN and survives save/load unchanged."""
import numpy as np
import pytest
import tensorflow as tf

from lcefr.models import create_model, list_models, model_info

TINY = list_models("test_*")
FULL = list_models(include_tests=False)


def _check_roundtrip(name, faces, tmp_path):
    tf.keras.backend.clear_session()
    model = create_model(name)
    out = model(faces, training=False).numpy()
    assert out.shape == (len(faces), model_info(name).embedding_size)
    assert np.isfinite(out).all()
    assert np.std(out) > 0, "constant embedding"
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    again = tf.keras.models.load_model(path)
    np.testing.assert_array_equal(again(faces, training=False).numpy(), out)


@pytest.mark.parametrize("name", TINY)
def test_tiny_model_roundtrip(name, faces, tmp_path):
    _check_roundtrip(name, faces, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", FULL)
def test_full_model_roundtrip(name, faces, tmp_path):
    _check_roundtrip(name, faces[:2], tmp_path)


@pytest.mark.parametrize("name", ["test_quicknet", "test_iresnet"])
def test_embedding_size_is_configurable(name):
    model = create_model(name, embedding_size=32)
    assert model.output_shape == (None, 32)


def test_every_family_has_a_tiny_variant():
    families = {model_info(n).family for n in FULL}
    tiny_families = {model_info(n).family for n in TINY}
    assert families == tiny_families
