"""f as a standalone .tflite: float and int8 scores against the Keras f."""
import numpy as np
import pytest

from lcefr.data.synth import synth_faces
from lcefr.personal.enroll import TFLiteVerifier, calibration_faces, export_tflite
from lcefr.personal.verifier import VerifierSpec, build_verifier, initial_theta
from lcefr.preprocess import preprocess

SPEC = VerifierSpec()


@pytest.fixture(scope="module")
def keras_f():
    rng = np.random.default_rng(4)
    theta = initial_theta(SPEC, rng)
    theta[-1] = 0.3  # output bias: keep the probabilities away from 0 and 1, where differences vanish
    return build_verifier(theta, SPEC)


@pytest.fixture(scope="module")
def faces():
    return synth_faces(8, seed=11, per_identity=2)


@pytest.mark.slow
@pytest.mark.parametrize("int8, tol", [(False, 1e-3), (True, 2e-2)])
def test_tflite_scores_match_keras(keras_f, faces, int8, tol):
    buffer = export_tflite(keras_f, int8=int8, representative=calibration_faces(faces[:2]) if int8 else None)
    lite = TFLiteVerifier(buffer)
    want = keras_f(preprocess(faces)).numpy()[:, 0]
    got = lite.score(faces)
    assert np.ptp(want) > 1e-3  # the scores differ between faces, so agreement means something
    np.testing.assert_allclose(got, want, atol=tol)
    if int8:
        import tensorflow as tf

        interp = tf.lite.Interpreter(model_content=buffer)
        kinds = {d["dtype"] for d in interp.get_tensor_details()}
        assert np.int8 in kinds


def test_not_a_flatbuffer_is_rejected(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        TFLiteVerifier(str(bad))
    with pytest.raises(FileNotFoundError):
        TFLiteVerifier(str(tmp_path / "missing.tflite"))
