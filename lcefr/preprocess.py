"""The preprocessing contract every lcefr model, command and ``.tflite`` file relies on.

Input: aligned RGB faces, 112x112 (the ArcFace five-point template), float32 NHWC, scaled as
``(x - 127.5) / 127.5`` into [-1, 1]. The scaling is applied outside the model, so a converted
``.tflite`` expects already-scaled floats too.
"""
from __future__ import annotations

import numpy as np

__all__ = ["FACE_SIZE", "ARCFACE_TEMPLATE", "MEAN", "SCALE", "normalize", "preprocess", "deprocess"]

FACE_SIZE = 112
#: insightface ``arcface_dst``: image-left eye, image-right eye, nose tip, left and right mouth corner.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
MEAN = 127.5
SCALE = 127.5


def normalize(x):
    """``(x - 127.5) / 127.5``: pixel values 0..255 to [-1, 1], for numpy arrays and tensors alike."""
    return (x - MEAN) / SCALE


def preprocess(images, *, size: int = FACE_SIZE) -> np.ndarray:
    """uint8/float RGB images (HxWx3 or NxHxWx3, values 0..255) -> float32 NHWC in [-1, 1].

    Raises:
        ValueError: the images are not ``size`` x ``size`` x 3.
    """
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1:] != (size, size, 3):
        raise ValueError(f"Expected aligned RGB faces {size}x{size}x3, got shape {tuple(np.shape(images))}")
    return normalize(x.astype(np.float32)).astype(np.float32)


def deprocess(x) -> np.ndarray:
    """Inverse of :func:`preprocess`, back to uint8 RGB."""
    return np.clip(np.asarray(x, dtype=np.float32) * SCALE + MEAN + 0.5, 0, 255).astype(np.uint8)
