"""Read aligned 112x112 face images from disk into the preprocessing contract."""
from __future__ import annotations

import os
from typing import List, Optional

import numpy as np

from lcefr.preprocess import FACE_SIZE, preprocess
from lcefr.vocab import IMAGE_EXTENSIONS

__all__ = ["IMAGE_EXTENSIONS", "list_images", "read_image", "is_aligned_face", "read_face", "load_faces"]



def list_images(directory: str) -> List[str]:
    """Image files below ``directory`` (recursively), sorted."""
    if not os.path.isdir(directory):
        raise NotADirectoryError(f"not a directory: {directory}")
    found = []
    for root, _, files in os.walk(directory):
        found.extend(os.path.join(root, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS))
    return sorted(found)


def read_image(path: str) -> np.ndarray:
    """An image file as RGB uint8 (grayscale is expanded to three channels).

    Raises:
        FileNotFoundError: no such file. ValueError: not a decodable image.
    """
    import cv2  # optional heavy import: listing images must not need OpenCV

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such image file: {path}")
    with open(path, "rb") as f:
        data = np.frombuffer(f.read(), np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise ValueError(f"cannot read image {path}: not a decodable image file")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def is_aligned_face(image, *, size: int = FACE_SIZE) -> bool:
    """True for an image already shaped like an aligned face (``size`` x ``size`` x 3)."""
    return np.shape(image) == (size, size, 3)


def read_face(path: str) -> np.ndarray:
    """One aligned face as uint8 RGB 112x112x3.

    Raises:
        FileNotFoundError: no such file. ValueError: not an image, or not 112x112.
    """
    image = read_image(path)
    if not is_aligned_face(image):
        raise ValueError(
            f"{path}: expected an aligned {FACE_SIZE}x{FACE_SIZE} face, got {image.shape[1]}x{image.shape[0]} "
            "(align photos first)"
        )
    return image


def load_faces(directory: str, *, limit: Optional[int] = None, seed: int = 0) -> np.ndarray:
    """Up to ``limit`` faces from ``directory`` (random subset by ``seed``), preprocessed."""
    paths = list_images(directory)
    if not paths:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {directory}")
    if limit is not None and len(paths) > limit:
        rng = np.random.default_rng(seed)
        paths = sorted(rng.choice(paths, size=limit, replace=False))
    return preprocess(np.stack([read_face(p) for p in paths]))
