import numpy as np
import pytest

from lcefr.preprocess import deprocess, preprocess


def test_contract_values_and_layout():
    img = np.zeros((112, 112, 3), np.uint8)
    img[0, 0] = [0, 255, 128]
    x = preprocess(img)
    assert x.shape == (1, 112, 112, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0, 0], [-1.0, 1.0, 0.5 / 127.5])
    np.testing.assert_array_equal(deprocess(x)[0], img)


@pytest.mark.parametrize("shape", [(112, 112), (96, 112, 3), (2, 112, 112, 4)])
def test_wrong_shapes_are_rejected_with_the_shape(shape):
    with pytest.raises(ValueError, match=r"Expected aligned RGB faces 112x112x3, got shape"):
        preprocess(np.zeros(shape, np.uint8))
