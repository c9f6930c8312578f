"""Aligned faces from image files: aligned crops as they are, photographs detected and aligned."""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from lcefr.data.images import is_aligned_face, read_image
from lcefr.face.align import align_face
from lcefr.face.detect import MTCNNDetector

__all__ = ["read_faces"]


def read_faces(paths: Sequence[str], *, detector=None) -> List[np.ndarray]:
    """Aligned 112x112 RGB faces, one per path (the largest face of each photograph).

    ``detector`` (an :class:`lcefr.face.Detector`) is created on first need when not given.

    Raises:
        FileNotFoundError: a missing file. ValueError: an unreadable image or one without a face.
        lcefr.face.DetectorUnavailableError: a photograph needs detection but MTCNN is not installed.
    """
    faces = []
    for path in paths:
        image = read_image(path)
        if is_aligned_face(image):
            faces.append(image)
            continue
        if detector is None:
            detector = MTCNNDetector()
        found = detector.detect(image)
        if not found:
            raise ValueError(f"no face found in {path}")
        faces.append(align_face(image, found[0].landmarks))
    return faces
