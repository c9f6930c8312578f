"""The personal verifier f: size limits, tensorised scores vs one network at a time, spec validation."""
import numpy as np
import pytest

from lcefr.personal.verifier import (VerifierSpec, build_verifier, count_macs, count_params, initial_theta,
                                     param_layout, score_logits)

SPEC = VerifierSpec()


def _thetas(n, seed=0, spread=0.3):
    rng = np.random.default_rng(seed)
    base = initial_theta(SPEC, rng)
    return np.stack([base + spread * rng.normal(0, 1, base.shape).astype(np.float32) * np.abs(base).mean()
                     for _ in range(n)])


def _faces(n, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, 112, 112, 3)).astype(np.float32)


def _keras_macs(model):
    """MACs read off the built Keras layers (independent of count_macs)."""
    import tf_keras as keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, c = layer.output_shape
            total += h * w * layer.kernel_size[0] * layer.kernel_size[1] * c
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c = layer.output_shape
            cin = layer.input_shape[-1]
            total += h * w * layer.kernel_size[0] * layer.kernel_size[1] * (cin // layer.groups) * c
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input_shape[-1] * layer.units
    return total


def test_f_is_within_the_issue_budget():
    model = build_verifier(_thetas(1)[0], SPEC)
    assert count_params(SPEC) == model.count_params() <= 25_000
    assert count_macs(SPEC) == _keras_macs(model) <= 6_000_000
    assert sum(int(np.prod(s)) for _, s in param_layout(SPEC)) == count_params(SPEC)


def test_f_is_built_mostly_from_group_convolutions():
    import tf_keras as keras

    model = build_verifier(_thetas(1)[0], SPEC)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    grouped = [c for c in convs if isinstance(c, keras.layers.DepthwiseConv2D) or c.groups > 1]
    assert len(grouped) >= len(convs) - 1
    assert not any(getattr(layer, "weights", None) for layer in model.layers if "norm" in layer.name)


def test_score_matrix_equals_one_network_at_a_time():
    thetas, faces = _thetas(5), _faces(6)
    matrix = np.asarray(score_logits(faces, thetas, SPEC))
    assert matrix.shape == (5, 6)
    for i, theta in enumerate(thetas):
        single = build_verifier(theta, SPEC, logits=True)(faces).numpy()[:, 0]
        np.testing.assert_allclose(matrix[i], single, atol=1e-4, rtol=1e-4)
    assert np.ptp(matrix, axis=0).max() > 1e-3  # the networks really differ


def test_probability_output_is_the_sigmoid_of_the_logit():
    theta, faces = _thetas(1)[0], _faces(3)
    logit = build_verifier(theta, SPEC, logits=True)(faces).numpy()
    prob = build_verifier(theta, SPEC)(faces).numpy()
    np.testing.assert_allclose(prob, 1 / (1 + np.exp(-logit)), atol=1e-6)


def test_wrong_theta_size_and_bad_specs_are_rejected():
    with pytest.raises(ValueError, match="theta with"):
        build_verifier(np.zeros(10), SPEC)
    with pytest.raises(ValueError, match="groups 5 must divide"):
        VerifierSpec(convs=((16, 3, 2, 1), (30, 1, 1, 5))).validate()
    with pytest.raises(ValueError, match="depthwise or 1x1"):
        VerifierSpec(convs=((16, 3, 2, 1), (32, 3, 1, 2))).validate()
    spec = VerifierSpec.from_dict(SPEC.to_dict())
    assert spec == SPEC
