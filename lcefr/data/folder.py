"""Image folders with one sub-folder per identity (the layout `lcefr data synth` and `lcefr align` write)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List

import numpy as np

from lcefr.preprocess import FACE_SIZE
from lcefr.vocab import IMAGE_EXTENSIONS

__all__ = ["ImageFolder", "scan_image_folder", "image_folder_dataset", "decode_face_tf"]


@dataclass
class ImageFolder:
    """``paths[i]`` belongs to identity ``labels[i]``, named ``classes[labels[i]]`` (sorted folder names)."""

    root: str
    paths: List[str]
    labels: np.ndarray
    classes: List[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.paths)


def scan_image_folder(root: str, *, min_images: int = 1) -> ImageFolder:
    """List ``root/<identity>/*.{jpg,png,...}``; identities with fewer than ``min_images`` are skipped.

    Raises:
        NotADirectoryError: ``root`` is not a folder.
        ValueError: no identity folder with images (the message says what was found instead).
    """
    if not os.path.isdir(root):
        raise NotADirectoryError(f"not a directory: {root}")
    classes, paths, labels = [], [], []
    loose = 0
    for entry in sorted(os.listdir(root)):
        full = os.path.join(root, entry)
        if not os.path.isdir(full):
            loose += entry.lower().endswith(IMAGE_EXTENSIONS)
            continue
        files = sorted(
            os.path.join(full, f) for f in os.listdir(full) if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
        )
        if len(files) < min_images:
            continue
        labels.extend([len(classes)] * len(files))
        paths.extend(files)
        classes.append(entry)
    if not classes:
        hint = f" ({loose} images lie directly in it: put each identity in its own sub-folder)" if loose else ""
        raise ValueError(f"{root}: no identity sub-folders with at least {min_images} image(s){hint}")
    return ImageFolder(root=root, paths=paths, labels=np.asarray(labels, np.int32), classes=classes)


def _decode_cv2(encoded: bytes) -> np.ndarray:
    """WebP, TIFF and the other formats TensorFlow's decoders lack, through OpenCV (RGB uint8)."""
    import cv2  # optional heavy import: scanning a folder must not need OpenCV

    bgr = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("not a decodable image")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def decode_face_tf(encoded, *, size: int = FACE_SIZE):
    """Encoded image bytes (tensor) -> uint8 RGB ``size`` x ``size`` x 3 tensor."""
    import tensorflow as tf

    head = tf.strings.substr(encoded, 0, 4)
    native = tf.reduce_any([tf.io.is_jpeg(encoded), tf.equal(head, b"\x89PNG"),
                            tf.equal(tf.strings.substr(encoded, 0, 2), b"BM"), tf.equal(head, b"GIF8")])
    image = tf.cond(native, lambda: tf.io.decode_image(encoded, channels=3, expand_animations=False),
                    lambda: tf.numpy_function(_decode_cv2, [encoded], tf.uint8, stateful=False))
    image = tf.ensure_shape(image, [None, None, 3])
    shape = tf.shape(image)
    return tf.cond(
        tf.logical_and(tf.equal(shape[0], size), tf.equal(shape[1], size)),
        lambda: tf.reshape(image, [size, size, 3]),
        lambda: tf.cast(tf.clip_by_value(tf.round(tf.image.resize(image, [size, size], antialias=True)), 0, 255), tf.uint8),
    )


def image_folder_dataset(
    root_or_folder,
    *,
    batch_size: int = 0,
    shuffle: bool = False,
    seed: int = 0,
    repeat: bool = False,
    drop_remainder: bool = False,
):
    """tf.data of ``(uint8 RGB 112x112x3, int32 label)`` with parallel decoding and prefetch.

    Args:
        root_or_folder: a folder path or an :class:`ImageFolder`.
        batch_size: 0 for single examples.
        shuffle: shuffle file order each epoch (before decoding, so memory stays small).
    """
    import tensorflow as tf

    folder = root_or_folder if isinstance(root_or_folder, ImageFolder) else scan_image_folder(root_or_folder)
    ds = tf.data.Dataset.from_tensor_slices((folder.paths, folder.labels))
    if shuffle:
        ds = ds.shuffle(len(folder), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.map(lambda p, y: (decode_face_tf(tf.io.read_file(p)), y), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=not shuffle)
    if batch_size:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)
