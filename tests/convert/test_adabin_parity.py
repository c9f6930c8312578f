"""The AdaBin deploy graph: parity holds, and the check catches a conversion that drops a term."""
import pytest
import tensorflow as tf

import lcefr.convert.tflite as tflite_mod
from lcefr.convert import api
from lcefr.convert.api import ConversionCheckError, convert
from lcefr.source import load_source
from lcefr.layers import AdaBinConv2D
from lcefr.quantizers import adabin_weight_stats, ede_sign


def _without(term):
    """An AdaBinConv2D whose graph drops one term of EffBin eq. 9: a deliberately wrong deploy graph."""

    class Broken(AdaBinConv2D):
        def call(self, inputs):
            beta_w, alpha_w = adabin_weight_stats(self.kernel)
            w_b = ede_sign((self.kernel - beta_w) / alpha_w, 1.0, 1.0)
            b = self.input_quantizer((inputs - self.act_beta) / self.act_alpha)
            b = tf.pad(b, self._get_padding_same(b), constant_values=1.0) if self.padding == "same" else b
            counts = tf.nn.conv2d(b, tf.concat([w_b, tf.ones_like(w_b[..., :1])], -1), (1, *self.strides, 1), "VALID")
            y = counts[..., :-1] * (self.act_alpha * alpha_w)
            if term != "box":
                y = y + counts[..., -1:] * (self.act_alpha * beta_w)
            if term != "offset":
                y = y + (self.act_alpha * self.act_beta) * tf.reduce_sum(w_b * alpha_w + beta_w, axis=[0, 1, 2])
            return y

    return Broken


def test_probe_constants_exercise_every_adabin_term():
    src = load_source("test_adabin_resnet")
    layers = [l for l in src.model.layers if isinstance(l, AdaBinConv2D)]
    assert layers and all(abs(float(l.act_beta.numpy())) > 0 for l in layers)
    beta_w, alpha_w = adabin_weight_stats(layers[0].kernel)
    assert float(tf.reduce_mean(tf.abs(beta_w) / alpha_w)) > 0.05


@pytest.mark.slow
def test_adabin_parity_holds():
    tf.keras.backend.clear_session()
    src = load_source("test_adabin_resnet")
    _, result = convert(src.model, target="tflite", name="test_adabin_resnet")
    assert result.parity["cosine_min"] >= 0.9999


@pytest.mark.slow
@pytest.mark.parametrize("term", ["box", "offset"])
def test_parity_catches_a_dropped_term(monkeypatch, term):
    """Convert a graph without the beta_w box-sum (or the beta_a offset) term: the check must fail."""
    tf.keras.backend.clear_session()
    src = load_source("test_adabin_resnet")
    real = tflite_mod.convert_lce
    broken_cls = _without(term)

    def clone_layer(layer):
        if isinstance(layer, AdaBinConv2D):
            return broken_cls.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    def sabotaged(model, **kwargs):
        clone = tf.keras.models.clone_model(model, clone_function=clone_layer)
        clone.set_weights(model.get_weights())
        return real(clone, **kwargs)

    monkeypatch.setattr(api, "convert_lce", sabotaged)
    with pytest.raises(ConversionCheckError, match="parity"):
        convert(src.model, target="tflite", name="test_adabin_resnet")
