"""Fake-quantization layers: weight levels, frozen activation ranges, straight-through gradients."""
import numpy as np
import pytest
import tensorflow as tf

from lcefr.models import create_model
from lcefr.layers import QUANT_OBJECTS
from lcefr.quantize import calibrate, fold_quantized_weights, quant_layers, quantize_model
from lcefr.quantizers import quantize_activation, quantize_weight


def _kernel(rows=4096, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.uniform(-1, 1, (rows, channels)).astype(np.float32) * np.array([0.1, 1.0, 7.0], np.float32)[:channels]
    return w


@pytest.mark.parametrize("bits", [8, 6, 4, 2])
def test_weight_levels_per_channel(bits):
    w = _kernel()
    q = quantize_weight(w, bits).numpy()
    qmax = 2 ** (bits - 1) - 1
    for c in range(w.shape[1]):
        values = np.unique(q[:, c])
        assert len(values) == 2 ** bits - 1
        scale = np.abs(w[:, c]).max() / qmax
        np.testing.assert_allclose(values / scale, np.arange(-qmax, qmax + 1), atol=1e-3)
    assert np.abs(q - w).max() <= (np.abs(w).max(axis=0) / qmax / 2 + 1e-6).max()


def test_weight_channels_are_independent():
    w = _kernel()
    q = quantize_weight(w, 4).numpy()
    small = np.abs(w[:, 0]).max() / 7
    assert np.allclose(q[:, 0] / small, np.round(q[:, 0] / small), atol=1e-3)
    np.testing.assert_allclose(q[:, 0], quantize_weight(w[:, :1], 4).numpy()[:, 0])


def test_depthwise_channel_axes():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(3, 3, 8, 2)).astype(np.float32)
    q = quantize_weight(w, 4, channel_axes=(2, 3)).numpy()
    for c in range(8):
        for m in range(2):
            assert len(np.unique(q[:, :, c, m])) <= 15
    assert len(np.unique(q)) > 15


@pytest.mark.parametrize("bits", [8, 4])
def test_weight_gradient_is_straight_through(bits):
    w = tf.Variable(_kernel(64))
    upstream = tf.constant(np.random.default_rng(1).normal(size=(64, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(quantize_weight(w, bits) * upstream)
    np.testing.assert_allclose(tape.gradient(loss, w).numpy(), upstream.numpy())


def test_activation_levels_and_clipped_gradient():
    x = tf.Variable(np.linspace(-3, 5, 1001, dtype=np.float32))
    with tf.GradientTape() as tape:
        y = quantize_activation(x, -1.0, 2.0, 4)
        loss = tf.reduce_sum(y * 3.0)
    values = np.unique(y.numpy())
    assert len(values) == 16
    assert 0.0 in values
    grad = tape.gradient(loss, x).numpy()
    inside = (x.numpy() > values.min()) & (x.numpy() < values.max())
    np.testing.assert_allclose(grad[inside], 3.0)
    outside = (x.numpy() < values.min() - 1e-3) | (x.numpy() > values.max() + 1e-3)
    assert outside.sum() > 100
    np.testing.assert_allclose(grad[outside], 0.0)


def test_bad_bits():
    with pytest.raises(ValueError, match="bits"):
        quantize_weight(_kernel(), 9)
    with pytest.raises(ValueError, match="bits"):
        quantize_model(create_model("test_iresnet"), bits=1)


@pytest.fixture(scope="module")
def teacher():
    tf.keras.utils.set_random_seed(0)
    model = create_model("test_iresnet")
    model.trainable = False
    return model


def test_quantize_model_replaces_layers_and_keeps_weights(teacher, faces):
    student = quantize_model(teacher, bits=8)
    assert len(quant_layers(student)) == sum(type(l) in (tf.keras.layers.Conv2D, tf.keras.layers.Dense)
                                             for l in teacher.layers)
    assert teacher.trainable is False and student.trainable_variables
    calibrate(student, [faces])
    a, b = teacher(faces, training=False).numpy(), student(faces, training=False).numpy()
    cos = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99
    low = calibrate(quantize_model(teacher, bits=2), [faces])
    assert low == 1


def test_ranges_calibrated_then_frozen_during_training(teacher, faces):
    student = quantize_model(teacher, bits=4)
    layers = quant_layers(student)
    assert all(np.allclose(l.input_range.numpy(), [-1, 1]) for l in layers)
    calibrate(student, [faces[:2], faces[2:]])
    ranges = [l.input_range.numpy().copy() for l in layers]
    assert not all(np.allclose(r, [-1, 1]) for r in ranges)
    assert not any(v is l.input_range for l in layers for v in student.trainable_variables)
    kernels = [l.kernel.numpy().copy() for l in layers]
    optimizer = tf.keras.optimizers.Adam(1e-2)
    target = teacher(faces, training=False)
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(student(faces * 1.5, training=False) - target * 2))
        optimizer.apply_gradients(zip(tape.gradient(loss, student.trainable_variables), student.trainable_variables))
    for layer, before, kernel in zip(layers, ranges, kernels):
        np.testing.assert_array_equal(layer.input_range.numpy(), before)
    assert any(not np.allclose(l.kernel.numpy(), k) for l, k in zip(layers, kernels))


def test_calibration_needs_data(teacher):
    student = quantize_model(teacher, bits=8)
    with pytest.raises(ValueError, match="at least one batch"):
        calibrate(student, [])
    assert not any(l.calibrating for l in quant_layers(student))


def test_save_load_round_trip(teacher, faces, tmp_path):
    student = quantize_model(teacher, bits=6)
    calibrate(student, [faces])
    path = str(tmp_path / "q.keras")
    student.save(path)
    loaded = tf.keras.models.load_model(path, custom_objects=QUANT_OBJECTS, compile=False)
    assert [l.bits for l in quant_layers(loaded)] == [6] * len(quant_layers(student))
    np.testing.assert_allclose(loaded(faces, training=False).numpy(), student(faces, training=False).numpy(), atol=1e-5)


def test_fold_puts_grid_kernels_into_float_graph(teacher, faces):
    student = quantize_model(teacher, bits=4)
    calibrate(student, [faces])
    folded = fold_quantized_weights(student, tf.keras.models.clone_model(teacher))
    for layer in quant_layers(student):
        np.testing.assert_allclose(folded.get_layer(layer.name).kernel.numpy(), layer.quantized_kernel())
        assert len(np.unique(layer.quantized_kernel()[..., 0])) <= 15
    assert not quant_layers(folded)
