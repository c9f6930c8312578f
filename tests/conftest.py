import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import lcefr  # noqa: E402  (selects tf-keras before anything imports TensorFlow)
import numpy as np  # noqa: E402
import pytest  # noqa: E402

assert lcefr.__version__


@pytest.fixture
def faces():
    """Four preprocessed 112x112 RGB inputs in the model's input range."""
    rng = np.random.default_rng(1)
    return ((rng.integers(0, 256, size=(4, 112, 112, 3)) - 127.5) / 127.5).astype("float32")
