"""Image-folder reader (tf.data) and training augmentation."""
import cv2
import numpy as np
import pytest

from lcefr.data.augment import AugmentConfig, augmenter, low_resolution, photometric, random_crop_paste, random_flip
from lcefr.data.folder import image_folder_dataset, scan_image_folder


def _write(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


@pytest.fixture
def folder(tmp_path):
    for ident, colour in (("bob", (200, 10, 10)), ("alice", (10, 200, 10)), ("carol", (10, 10, 200))):
        for k in range(3 if ident != "carol" else 1):
            _write(tmp_path / ident / f"{k}.png", np.full((112, 112, 3), colour, np.uint8))
    _write(tmp_path / "alice" / "big.png", np.full((224, 224, 3), (10, 200, 10), np.uint8))
    (tmp_path / "alice" / "notes.txt").write_text("ignored")
    return tmp_path


def test_scan_sorts_identities_and_filters(folder):
    f = scan_image_folder(str(folder))
    assert f.classes == ["alice", "bob", "carol"] and len(f) == 8
    assert f.labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 2]
    assert scan_image_folder(str(folder), min_images=2).classes == ["alice", "bob"]


def test_scan_errors(tmp_path):
    with pytest.raises(NotADirectoryError):
        scan_image_folder(str(tmp_path / "missing"))
    _write(tmp_path / "loose.png", np.zeros((112, 112, 3), np.uint8))
    with pytest.raises(ValueError, match="own sub-folder"):
        scan_image_folder(str(tmp_path))


def test_dataset_decodes_rgb_and_resizes(folder):
    items = list(image_folder_dataset(str(folder)).as_numpy_iterator())
    assert len(items) == 8
    for image, label in items:
        assert image.shape == (112, 112, 3) and image.dtype == np.uint8
        assert int(np.argmax(image[50, 50])) == {0: 1, 1: 0, 2: 2}[int(label)]
    batch = next(iter(image_folder_dataset(str(folder), batch_size=4, shuffle=True)))
    assert tuple(batch[0].shape) == (4, 112, 112, 3)


def _face():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(112, 112, 3)).astype(np.uint8)


def test_augment_steps_at_probability_one_and_zero():
    import tensorflow as tf

    x = tf.constant(_face())
    np.testing.assert_array_equal(random_flip(x, 1.0).numpy(), x.numpy()[:, ::-1])
    for fn in (random_flip, random_crop_paste, photometric, low_resolution):
        np.testing.assert_array_equal(fn(x, 0.0).numpy(), x.numpy())
    tf.random.set_seed(3)
    cropped = random_crop_paste(x, 1.0, scale=(0.25, 0.25)).numpy()
    kept = np.any(cropped != 0, axis=-1)
    assert 0.15 < kept.mean() < 0.35
    np.testing.assert_array_equal(cropped[kept], x.numpy()[kept])  # pasted back in place, not resized
    low = low_resolution(x, 1.0, min_ratio=0.2).numpy()
    assert low.shape == x.shape and low.dtype == np.uint8 and np.abs(low.astype(int) - x.numpy()).mean() > 5
    jit = photometric(x, 1.0).numpy()
    assert jit.dtype == np.uint8 and not np.array_equal(jit, x.numpy())


def test_augmenter_in_a_pipeline(folder):
    ds = image_folder_dataset(str(folder)).map(augmenter(AugmentConfig(crop=1.0, photometric=1.0, low_res=1.0)))
    image, label = next(iter(ds))
    assert tuple(image.shape) == (112, 112, 3) and image.dtype.name == "uint8" and label.dtype.name == "int32"
