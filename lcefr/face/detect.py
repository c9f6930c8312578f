"""Face detection with five landmarks behind one small interface; MTCNN (``mtcnn==1.0.0``) implements it.

MTCNN: Zhang, Zhang, Li, Qiao, "Joint Face Detection and Alignment using Multi-task Cascaded
Convolutional Networks", IEEE SPL 2016 (arXiv 1604.02878). Install with ``pip install 'lcefr[detect]'``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Protocol

import numpy as np

__all__ = ["Face", "Detector", "MTCNNDetector", "DetectorUnavailableError"]


class DetectorUnavailableError(ImportError):
    """The detector's package is not installed."""


@dataclass(frozen=True)
class Face:
    """One detection: ``box`` (x1, y1, x2, y2) in pixels, ``score`` in [0, 1], ``landmarks`` (5, 2) x, y.

    Landmark order: image-left eye, image-right eye, nose tip, image-left and image-right mouth corner.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


class Detector(Protocol):
    def detect(self, image_rgb: np.ndarray) -> List[Face]:
        """Faces in an RGB uint8 (H, W, 3) image, largest first."""
        ...


class MTCNNDetector:
    """:class:`Detector` backed by ``mtcnn.MTCNN`` (TensorFlow; weights ship with the wheel)."""

    def __init__(self, *, min_face_size: int = 20, thresholds=(0.6, 0.7, 0.8), device: str = "CPU:0"):
        try:
            from mtcnn import MTCNN
        except ImportError as err:
            raise DetectorUnavailableError(
                f"face detection needs the 'detect' extra (mtcnn==1.0.0): pip install 'lcefr[detect]' ({err})"
            ) from None
        self._mtcnn = MTCNN(device=device)
        self._kw = dict(min_face_size=int(min_face_size), threshold_pnet=thresholds[0],
                        threshold_rnet=thresholds[1], threshold_onet=thresholds[2])

    def detect(self, image_rgb: np.ndarray) -> List[Face]:
        img = np.asarray(image_rgb)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"Expected an RGB uint8 image (H, W, 3), got {img.dtype} {img.shape}")
        rows = self._mtcnn.detect_faces(img, box_format="xyxy", output_type="numpy", **self._kw)
        faces = []
        for row in np.asarray(rows, dtype=np.float64).reshape(-1, 16):
            # row: image id, x1, y1, x2, y2, confidence, then 5 x coordinates and 5 y coordinates
            faces.append(Face(box=row[1:5].copy(), score=float(row[5]), landmarks=_landmarks(row[6:16])))
        return sorted(faces, key=lambda f: -f.area)


def _landmarks(values: np.ndarray) -> np.ndarray:
    return np.stack([values[:5], values[5:]], axis=1)
