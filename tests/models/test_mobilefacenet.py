"""MobileFaceNet (arXiv:1804.07573): shapes and size."""

import pytest

from lcefr.layers import HEAD_PREFIX
from lcefr.models import create_model, model_info
from lcefr.profile import summarize


def test_default_512d():
    model = create_model("mobilefacenet")
    assert model.output_shape == (None, 512)
    counts = summarize("mobilefacenet", model)
    print(counts)
    assert counts["total"]["params"] == pytest.approx(1_200_512, rel=0.02)
    assert counts["total"]["binary_macs"] == 0
    head = [layer.name for layer in model.layers if layer.name.startswith(HEAD_PREFIX)]
    assert len(head) == 5


def test_paper_128d_size():
    """The paper's 128-D model: 0.99M parameters, 221M MAdds (BatchNorm folded, 2 per channel here)."""
    total = summarize("mobilefacenet", create_model("mobilefacenet", embedding_size=128))["total"]
    print(total)
    assert total["params"] == pytest.approx(1_003_136, rel=0.02)
    assert total["params"] == pytest.approx(0.99e6, rel=0.03)
    assert total["float_macs"] == pytest.approx(221e6, rel=0.02)


def test_tiny_variant():
    model = create_model("test_mobilefacenet")
    assert model.output_shape == (None, 64)
    info = model_info("test_mobilefacenet")
    assert (info.family, info.binary, info.test) == ("mobilefacenet", False, True)


def test_other_input_size_keeps_the_embedding():
    assert create_model("test_mobilefacenet", input_shape=(96, 96, 3)).output_shape == (None, 64)
