"""One list of image extensions (lcefr.vocab.IMAGE_EXTENSIONS) that align, train, data and eval all read."""
import os

import cv2
import numpy as np

from lcefr.data.folder import image_folder_dataset, scan_image_folder
from lcefr.data.images import list_images, read_face
from lcefr.vocab import IMAGE_EXTENSIONS

LOSSLESS = (".png", ".bmp", ".tif", ".tiff")


def _write_faces(root):
    rng = np.random.default_rng(0)
    written = {}
    for i, ext in enumerate(IMAGE_EXTENSIONS):
        folder = os.path.join(root, f"id{i % 3}")
        os.makedirs(folder, exist_ok=True)
        rgb = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
        path = os.path.join(folder, f"face{i}{ext}")
        assert cv2.imwrite(path, rgb[:, :, ::-1].copy())
        written[path] = rgb
    return written


def test_every_extension_is_listed_read_and_trained_on(tmp_path):
    written = _write_faces(str(tmp_path))
    assert set(list_images(str(tmp_path))) == set(written)
    folder = scan_image_folder(str(tmp_path))
    assert sorted(folder.paths) == sorted(written)
    decoded = [(x.numpy(), path) for (x, _), path in zip(image_folder_dataset(folder), folder.paths)]
    assert len(decoded) == len(IMAGE_EXTENSIONS)
    for image, path in decoded:
        assert image.shape == (112, 112, 3) and image.dtype == np.uint8
        if not path.endswith((".jpg", ".jpeg")):  # TensorFlow's and OpenCV's JPEG decoders round differently
            np.testing.assert_array_equal(image, read_face(path))
        if path.endswith(LOSSLESS):
            np.testing.assert_array_equal(image, written[path])
