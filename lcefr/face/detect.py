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


#: The smallest face MTCNN's own pyramid is asked to find; larger ``min_face_size`` values shrink the image instead.
MTCNN_MIN_FACE = 20


class MTCNNDetector:
    """:class:`Detector` backed by ``mtcnn.MTCNN`` (TensorFlow; weights ship with the wheel).

    ``min_face_size`` (pixels) is the smallest face to find. Above 20 the image is shrunk by
    ``20 / min_face_size`` before detection and boxes and landmarks are mapped back, so a frame
    whose faces are large is searched in fewer pixels (faster). mtcnn 1.0.0's own ``min_face_size``
    is not used for that: above 20 it found neither face of scikit-image's two photographs.
    """

    def __init__(self, *, min_face_size: int = MTCNN_MIN_FACE, thresholds=(0.6, 0.7, 0.8), device: str = "CPU:0"):
        if int(min_face_size) < 12:
            raise ValueError(f"min_face_size must be at least 12 pixels (MTCNN's window), got {min_face_size}")
        try:
            from mtcnn import MTCNN
        except ImportError as err:
            raise DetectorUnavailableError(
                f"face detection needs the 'detect' extra (mtcnn==1.0.0): pip install 'lcefr[detect]' ({err})"
            ) from None
        self._mtcnn = MTCNN(device=device)
        self.min_face_size = int(min_face_size)
        self._kw = dict(min_face_size=min(self.min_face_size, MTCNN_MIN_FACE), threshold_pnet=thresholds[0],
                        threshold_rnet=thresholds[1], threshold_onet=thresholds[2])

    def detect(self, image_rgb: np.ndarray) -> List[Face]:
        img = np.asarray(image_rgb)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"Expected an RGB uint8 image (H, W, 3), got {img.dtype} {img.shape}")
        work, sx, sy = _shrink(img, MTCNN_MIN_FACE / self.min_face_size)
        rows = self._mtcnn.detect_faces(work, box_format="xyxy", output_type="numpy", **self._kw)
        faces = []
        for row in np.asarray(rows, dtype=np.float64).reshape(-1, 16):
            # row: image id, x1, y1, x2, y2, confidence, then 5 x coordinates and 5 y coordinates
            box = row[1:5] / [sx, sy, sx, sy]  # box edges scale with the image
            landmarks = (_landmarks(row[6:16]) + 0.5) / [sx, sy] - 0.5  # landmarks are pixel centres
            faces.append(Face(box=box, score=float(row[5]), landmarks=landmarks))
        return sorted(faces, key=lambda f: -f.area)


def _shrink(img: np.ndarray, scale: float):
    """``(image, sx, sy)``: ``img`` resized by ``scale`` (only when it shrinks it) and the exact factors used."""
    if scale >= 1.0:
        return img, 1.0, 1.0
    import cv2

    h, w = img.shape[:2]
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    return cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA), nw / w, nh / h


def _landmarks(values: np.ndarray) -> np.ndarray:
    return np.stack([values[:5], values[5:]], axis=1)
