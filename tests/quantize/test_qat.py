"""The small-data QAT loop, data loading and sizes."""
import os

import numpy as np
import pytest

from lcefr.quantize import QuantData, load_quant_data, packed_size, quant_layers, quantization_aware_training
from lcefr.quantize.qat import _pair_order, load_teacher


def _write_faces(root, layout):
    import cv2

    rng = np.random.default_rng(0)
    for rel in layout:
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        cv2.imwrite(path, rng.integers(0, 256, (112, 112, 3), dtype=np.uint8))


def test_load_folder_labelled_and_subset(tmp_path):
    _write_faces(str(tmp_path), [f"id{i}/{k}.png" for i in range(5) for k in range(3)])
    data = load_quant_data(str(tmp_path))
    assert data.labelled and data.images.shape == (15, 112, 112, 3)
    assert sorted(np.bincount(data.labels)) == [3] * 5
    sub = load_quant_data(str(tmp_path), images=6, seed=1)
    assert len(sub.images) == 6 and sorted(np.bincount(sub.labels)) == [3, 3]


def test_load_flat_folder_is_unlabelled(tmp_path):
    _write_faces(str(tmp_path), ["a.png", "b.jpg", "c.png"])
    data = load_quant_data(str(tmp_path))
    assert not data.labelled and len(data.images) == 3


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="no images"):
        load_quant_data(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_quant_data(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="at least 2"):
        load_quant_data(str(tmp_path), images=1)


def test_pair_order_keeps_identities_together():
    labels = np.repeat(np.arange(6), 4)
    order = _pair_order(labels, np.random.default_rng(0))
    assert sorted(order) == list(range(24))
    assert all(labels[order[i]] == labels[order[i + 1]] for i in range(0, 24, 2))


@pytest.fixture(scope="module")
def teacher():
    return load_teacher("test_iresnet")


@pytest.fixture(scope="module")
def tiny_data():
    rng = np.random.default_rng(0)
    return QuantData(rng.integers(0, 256, (8, 112, 112, 3), dtype=np.uint8), np.repeat(np.arange(4), 2), "test")


@pytest.mark.slow
def test_qat_trains_with_frozen_ranges(teacher, tiny_data):
    before = teacher.get_weights()
    calibrated = quantization_aware_training(teacher, tiny_data, bits=4, epochs=0, batch_size=4, calibration_images=8)
    trained = quantization_aware_training(teacher, tiny_data, bits=4, epochs=1, batch_size=4, calibration_images=8,
                                          lr=1e-3)
    assert len(trained.history) == 1 and np.isfinite(trained.history[0]["loss"]) and trained.history[0]["steps"] == 2
    for a, b in zip(quant_layers(calibrated.student), quant_layers(trained.student)):
        np.testing.assert_array_equal(a.input_range.numpy(), b.input_range.numpy())
    assert any(not np.array_equal(a.kernel.numpy(), b.kernel.numpy())
               for a, b in zip(quant_layers(calibrated.student), quant_layers(trained.student)))
    for w, v in zip(before, teacher.get_weights()):
        np.testing.assert_array_equal(w, v)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["mse", "ekd+ce"])
def test_qat_losses(teacher, tiny_data, loss):
    result = quantization_aware_training(teacher, tiny_data, bits=8, loss=loss, epochs=1, batch_size=4,
                                         calibration_images=4)
    assert np.isfinite(result.history[0]["loss"])


def test_qat_bad_loss_and_ce_needs_labels(teacher, tiny_data):
    flat = QuantData(tiny_data.images, None, "test")
    with pytest.raises(ValueError, match="labelled"):
        quantization_aware_training(teacher, flat, bits=8, loss="ekd+ce")
    with pytest.raises(ValueError, match="--loss"):
        quantization_aware_training(teacher, flat, bits=8, loss="l1")


@pytest.mark.slow
def test_qat_unlabelled_two_views(teacher, tiny_data):
    flat = QuantData(tiny_data.images, None, "test")
    result = quantization_aware_training(teacher, flat, bits=6, epochs=1, batch_size=4, calibration_images=4)
    assert np.isfinite(result.history[0]["loss"])


def test_packed_size(teacher):
    result = quantization_aware_training(teacher, QuantData(np.zeros((2, 112, 112, 3), np.uint8), None, "x"),
                                         bits=4, epochs=0)
    size = packed_size(result.student, 4)
    assert size["params"] == teacher.count_params()
    assert size["size_bytes_float"] == 4 * teacher.count_params()
    assert size["size_bytes_quantized"] == -(-4 * teacher.count_params() // 8)
    assert 0 < size["quantized_kernel_params"] < size["params"]
