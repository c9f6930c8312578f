"""Aligned faces from image files: aligned crops as they are, photographs detected and aligned."""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

from lcefr.data.images import is_aligned_face, read_image
from lcefr.face.align import align_face
from lcefr.face.detect import MTCNN_MIN_FACE, MTCNNDetector

__all__ = ["FaceReader", "read_faces"]


class FaceReader:
    """Reads images and returns aligned faces, creating the MTCNN detector only when one is needed.

    ``no_align``: every image must already be an aligned 112x112 face. ``min_face``: smallest face
    the detector looks for, in pixels.
    """

    def __init__(self, *, min_face: int = MTCNN_MIN_FACE, no_align: bool = False, detector=None):
        self.min_face = min_face
        self.no_align = no_align
        self._detector = detector

    def detector(self):
        """The detector (raises :class:`lcefr.face.DetectorUnavailableError` without the detect extra)."""
        if self._detector is None:
            self._detector = MTCNNDetector(min_face_size=self.min_face)
        return self._detector

    def one(self, path: str) -> Tuple[np.ndarray, Dict]:
        """(aligned face, info) of the largest face in ``path``.

        Raises:
            FileNotFoundError: no such file. ValueError: not an image, no face, or not aligned with ``no_align``.
        """
        image = read_image(path)
        if is_aligned_face(image):
            return image, {"image": path, "aligned": "input is 112x112", "faces": None}
        if self.no_align:
            raise ValueError(f"{path} is {image.shape[1]}x{image.shape[0]}; --no-align needs aligned 112x112 faces")
        faces = self.detector().detect(image)
        if not faces:
            raise ValueError(f"no face found in {path}")
        face = faces[0]
        info = {"image": path, "aligned": "detected", "faces": len(faces),
                "box": [round(float(v), 1) for v in face.box], "score": round(face.score, 4)}
        return align_face(image, face.landmarks), info


def read_faces(paths: Sequence[str], *, detector=None) -> List[np.ndarray]:
    """Aligned 112x112 RGB faces, one per path (the largest face of each photograph).

    ``detector`` (an :class:`lcefr.face.Detector`) is created on first need when not given.

    Raises:
        FileNotFoundError: a missing file. ValueError: an unreadable image or one without a face.
        lcefr.face.DetectorUnavailableError: a photograph needs detection but MTCNN is not installed.
    """
    reader = FaceReader(detector=detector)
    return [reader.one(path)[0] for path in paths]
