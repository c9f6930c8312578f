"""MTCNN detection on scikit-image's sample photographs and alignment onto the ArcFace template."""
import numpy as np
import pytest

pytest.importorskip("mtcnn")
skdata = pytest.importorskip("skimage.data")

from lcefr.face.align import align_face, estimate_similarity, transform_points  # noqa: E402
from lcefr.preprocess import ARCFACE_TEMPLATE  # noqa: E402


@pytest.fixture(scope="module")
def detector():
    from lcefr.face.detect import MTCNNDetector

    return MTCNNDetector()


def _photo(name):
    image = getattr(skdata, name)()
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image


@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_photo_landmarks_after_alignment(detector, name):
    """One face is found and aligned; landmarks are checked by RE-DETECTION on the aligned face.

    The re-detected landmarks must lie within 3 px of where the estimated similarity maps the
    detected ones (the warp and the detector agree). They cannot all lie within 3 px of the
    template itself: a 4-parameter similarity leaves a pose residual (head pitch/yaw) of
    max 6.3 px (astronaut) and 12.0 px (camera, turned head) even for exact landmarks, so the
    distance to the template is bounded by an RMS of 10 px and printed (run with -s).
    """
    image = _photo(name)
    faces = detector.detect(image)
    assert len(faces) == 1, [f.box for f in faces]
    face = faces[0]
    assert face.score > 0.9 and face.landmarks.shape == (5, 2)
    mapped = transform_points(estimate_similarity(face.landmarks, ARCFACE_TEMPLATE), face.landmarks)
    aligned = align_face(image, face.landmarks)
    assert aligned.shape == (112, 112, 3) and aligned.dtype == np.uint8
    again = detector.detect(aligned)
    assert len(again) >= 1
    to_mapped = np.linalg.norm(again[0].landmarks - mapped, axis=1)
    to_template = np.linalg.norm(again[0].landmarks - ARCFACE_TEMPLATE, axis=1)
    print(f"{name}: re-detected vs mapped {np.round(to_mapped, 2).tolist()} px, "
          f"vs template {np.round(to_template, 2).tolist()} px")
    assert to_mapped.max() < 3.0
    assert np.sqrt(np.mean(to_template ** 2)) < 10.0


def test_blank_image_has_no_face(detector):
    assert detector.detect(np.full((200, 200, 3), 128, np.uint8)) == []


def test_largest_face_first(detector):
    small = _photo("camera")
    big = _photo("astronaut")
    import cv2

    small = cv2.resize(small, (256, 256))
    canvas = np.zeros((512, 768, 3), np.uint8)
    canvas[:, :512] = big
    canvas[:256, 512:] = small
    faces = detector.detect(canvas)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area and faces[0].box[0] < 512


def test_min_face_size_shrinks_the_image_and_maps_back(detector):
    """Faces above min_face_size are still found, at the same place; smaller ones are not.

    The astronaut's face is about 83 px wide and the cameraman's about 58 px, so min_face_size=40
    leaves both at least 29 px wide after shrinking; 120 is above the cameraman's.
    """
    from lcefr.face.detect import MTCNNDetector

    coarse = MTCNNDetector(min_face_size=40)
    for name in ("astronaut", "camera"):
        image = _photo(name)
        (ref,) = detector.detect(image)
        found = coarse.detect(image)
        assert len(found) == 1, name
        # in pixels of the aligned 112x112 crop: where the full-resolution transform puts the landmarks
        matrix = estimate_similarity(ref.landmarks, ARCFACE_TEMPLATE)
        shift = np.linalg.norm(transform_points(matrix, found[0].landmarks) - transform_points(matrix, ref.landmarks),
                               axis=1)
        assert shift.max() < 3.0, (name, shift)
        assert np.abs(found[0].box - ref.box).max() < 0.1 * (ref.box[2] - ref.box[0]), name
    assert MTCNNDetector(min_face_size=120).detect(_photo("camera")) == []


def test_min_face_size_below_the_window_is_refused():
    from lcefr.face.detect import MTCNNDetector

    with pytest.raises(ValueError, match="at least 12"):
        MTCNNDetector(min_face_size=8)
