"""Umeyama similarity estimation and template alignment (pure numpy + OpenCV, no TensorFlow)."""
import numpy as np
import pytest

from lcefr.face.align import align_face, estimate_similarity, template_residual, transform_points
from lcefr.preprocess import ARCFACE_TEMPLATE


def _similarity(scale, angle, tx, ty):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


@pytest.mark.parametrize("scale,angle,tx,ty", [(1.0, 0.0, 0.0, 0.0), (2.5, 0.3, 10.0, -4.0), (0.4, -2.8, -30.0, 77.0)])
def test_umeyama_recovers_known_similarity(scale, angle, tx, ty):
    rng = np.random.default_rng(0)
    src = rng.uniform(-50, 150, size=(7, 2))
    m = _similarity(scale, angle, tx, ty)
    est = estimate_similarity(src, transform_points(m, src))
    np.testing.assert_allclose(est, m, atol=1e-9)


def test_umeyama_is_least_squares_under_noise():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, size=(5, 2))
    dst = transform_points(_similarity(1.3, 0.5, 3, 4), src) + rng.normal(0, 0.5, size=(5, 2))
    est = estimate_similarity(src, dst)
    loss = np.sum((transform_points(est, src) - dst) ** 2)
    for _ in range(50):
        p = est.copy()
        a, b = p[0, 0] + rng.normal(0, 1e-3), p[1, 0] + rng.normal(0, 1e-3)
        p[:, :2] = [[a, -b], [b, a]]
        p[:, 2] += rng.normal(0, 1e-2, 2)
        assert np.sum((transform_points(p, src) - dst) ** 2) >= loss


def test_no_reflection():
    src = ARCFACE_TEMPLATE.copy()
    mirrored = src * [-1, 1]
    est = estimate_similarity(src, mirrored)
    assert np.linalg.det(est[:, :2]) > 0
    assert np.linalg.det(estimate_similarity(src, mirrored, allow_reflection=True)[:, :2]) < 0


def test_align_of_template_landmarks_is_identity():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(112, 112, 3), dtype=np.uint8)
    np.testing.assert_allclose(estimate_similarity(ARCFACE_TEMPLATE, ARCFACE_TEMPLATE), np.eye(2, 3), atol=1e-12)
    np.testing.assert_array_equal(align_face(image, ARCFACE_TEMPLATE), image)


def test_align_undoes_a_similarity():
    rng = np.random.default_rng(3)
    face = rng.integers(0, 256, size=(112, 112, 3), dtype=np.uint8)
    import cv2

    m = _similarity(2.0, 0.2, 80.0, 40.0)
    big = cv2.warpAffine(face, m, (400, 400), flags=cv2.INTER_LINEAR)
    back = align_face(big, transform_points(m, ARCFACE_TEMPLATE))
    inner = (slice(20, 92), slice(20, 92))
    assert np.abs(back[inner].astype(int) - face[inner].astype(int)).mean() < 40


def test_template_residual_is_zero_for_a_posed_copy_of_the_template():
    assert template_residual(ARCFACE_TEMPLATE).max() < 1e-9
    posed = transform_points(_similarity(3.1, -0.7, 250.0, 40.0), ARCFACE_TEMPLATE)
    assert template_residual(posed).max() < 1e-9


def test_template_residual_of_a_moved_landmark():
    """One landmark moved by d: the least-squares fit spreads the error, so 0 < every residual <= d, and
    the result does not depend on where the face sits in the image or how large it is."""
    d = 8.0
    moved = ARCFACE_TEMPLATE.copy()
    moved[2, 0] += d  # the nose, 8 px to the side (a turned head)
    res = template_residual(moved)
    assert res.shape == (5,) and 0 < res.max() <= d and np.sum(res ** 2) < d ** 2
    assert res.argmax() == 2
    np.testing.assert_allclose(template_residual(transform_points(_similarity(0.5, 1.2, 9.0, 300.0), moved)), res,
                               atol=1e-9)
    np.testing.assert_allclose(template_residual(moved, size=224), 2 * res, atol=1e-9)


@pytest.mark.parametrize("image,landmarks,match", [
    (np.zeros((112, 112), np.uint8), ARCFACE_TEMPLATE, "RGB uint8"),
    (np.zeros((112, 112, 3), np.float32), ARCFACE_TEMPLATE, "RGB uint8"),
    (np.zeros((112, 112, 3), np.uint8), ARCFACE_TEMPLATE[:4], "five"),
    (np.zeros((112, 112, 3), np.uint8), np.full((5, 2), np.nan), "non-finite"),
    (np.zeros((112, 112, 3), np.uint8), np.ones((5, 2)), "all equal"),
])
def test_align_rejects_bad_input(image, landmarks, match):
    with pytest.raises(ValueError, match=match):
        align_face(image, landmarks)
