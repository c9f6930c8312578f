"""Face detection, five-point alignment and a small SQLite gallery for verification and identification.

Pipeline: :mod:`lcefr.face.detect` finds faces and five landmarks (MTCNN), :mod:`lcefr.face.align`
warps each onto the ArcFace 112x112 template, :mod:`lcefr.face.gallery` stores embeddings. The
TensorFlow-based detector is imported lazily, so importing this package is cheap.
"""
from lcefr.face.align import align_face, estimate_similarity, template_residual, transform_points
from lcefr.face.detect import DetectorUnavailableError, Detector, Face, MTCNNDetector

__all__ = [
    "Detector",
    "DetectorUnavailableError",
    "Face",
    "MTCNNDetector",
    "align_face",
    "estimate_similarity",
    "template_residual",
    "transform_points",
]
