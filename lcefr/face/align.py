"""Five-point similarity alignment onto the ArcFace 112x112 template.

The transform is the least-squares similarity (rotation, uniform scale, translation; no
reflection) of Umeyama, "Least-squares estimation of transformation parameters between two
point patterns", IEEE TPAMI 13(4), 1991: with centred point sets, covariance
``C = dst_c^T src_c / n = U S V^T``, ``R = U D V^T`` where ``D = diag(1, sign(det U det V))``,
``c = tr(S D) / var(src)`` and ``t = mean(dst) - c R mean(src)``.
"""
from __future__ import annotations

import numpy as np

from lcefr.preprocess import ARCFACE_TEMPLATE, FACE_SIZE

__all__ = ["estimate_similarity", "transform_points", "alignment_matrix", "template_residual", "align_face"]


def _points(name: str, pts) -> np.ndarray:
    p = np.asarray(pts, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) < 2:
        raise ValueError(f"Expected {name} as (N>=2, 2) points, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{name} contains non-finite values")
    return p


def estimate_similarity(src, dst, *, allow_reflection: bool = False) -> np.ndarray:
    """The 2x3 matrix ``M`` of the similarity minimising ``sum |M [src;1] - dst|^2`` (Umeyama 1991).

    Raises:
        ValueError: the point sets differ in shape or ``src`` is degenerate (all points equal).
    """
    src = _points("src", src)
    dst = _points("dst", dst)
    if src.shape != dst.shape:
        raise ValueError(f"src and dst differ in shape: {src.shape} vs {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    sc, dc = src - mu_s, dst - mu_d
    var_s = np.mean(np.sum(sc ** 2, axis=1))
    if var_s <= 1e-12:
        raise ValueError("src points are all equal; no similarity is defined")
    cov = dc.T @ sc / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if not allow_reflection and np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = float(np.sum(s * d) / var_s)
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def transform_points(matrix, pts) -> np.ndarray:
    """Apply a 2x3 affine matrix to (N, 2) points."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (2, 3):
        raise ValueError(f"Expected a 2x3 matrix, got shape {m.shape}")
    p = _points("points", pts)
    return p @ m[:, :2].T + m[:, 2]


def _check_image(image) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"Expected an RGB uint8 image (H, W, 3), got {img.dtype} {img.shape}")
    return img


def _landmarks(landmarks) -> np.ndarray:
    lm = _points("landmarks", landmarks)
    if lm.shape != (5, 2):
        raise ValueError(f"Expected five (x, y) landmarks, got shape {lm.shape}")
    return lm


def _template(size: int) -> np.ndarray:
    return ARCFACE_TEMPLATE * (size / FACE_SIZE)


def alignment_matrix(landmarks, *, size: int = FACE_SIZE) -> np.ndarray:
    """The 2x3 similarity that takes five ``landmarks`` onto the ArcFace template of a ``size`` x ``size`` crop."""
    return estimate_similarity(_landmarks(landmarks), _template(size))


def template_residual(landmarks, *, size: int = FACE_SIZE) -> np.ndarray:
    """Distance in pixels of the crop between each aligned landmark and its template point, shape (5,).

    This is what the similarity cannot remove: head yaw and pitch, expression, face shape and detector
    error. It is zero only for a face that is a rotated, scaled and shifted copy of the template.
    """
    lm = _landmarks(landmarks)
    mapped = transform_points(alignment_matrix(lm, size=size), lm)
    return np.linalg.norm(mapped - _template(size), axis=1)


def align_face(image, landmarks, *, size: int = FACE_SIZE) -> np.ndarray:
    """Warp ``image`` so its five ``landmarks`` land on the ArcFace template: a ``size`` x ``size`` RGB uint8 face.

    Landmarks are (x, y) in the order image-left eye, image-right eye, nose tip, image-left and
    image-right mouth corner (MTCNN's order). Pixels outside the image become black.
    """
    import cv2

    img = _check_image(image)
    matrix = alignment_matrix(landmarks, size=size)
    return cv2.warpAffine(img, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
