"""Reusable Keras blocks shared by the model families: embedding head, Maxout."""
from __future__ import annotations

import logging

import larq as lq
import tensorflow as tf

from lcefr.quantizers import AdaBinWeight, adabin_weight_stats, ede_sign

__all__ = ["HEAD_PREFIX", "Maxout", "AdaBinConv2D", "embedding_head", "CUSTOM_OBJECTS"]

#: Every layer of the full-precision embedding head carries this name prefix, so the backbone
#: (everything else) can be told apart from the head without rebuilding the model.
HEAD_PREFIX = "embedding_"


@tf.keras.utils.register_keras_serializable(package="lcefr")
class Maxout(tf.keras.layers.Layer):
    """Per-channel two-slope activation ``g_pos * relu(x) - g_neg * relu(-x)`` (AdaBin, arXiv:2208.08084).

    With the default initialisation (1.0, 0.25) it starts as a PReLU with slope 0.25; unlike a
    PReLU both slopes are learned.
    """

    def __init__(self, pos_init: float = 1.0, neg_init: float = 0.25, **kwargs):
        super().__init__(**kwargs)
        self.pos_init = float(pos_init)
        self.neg_init = float(neg_init)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.pos = self.add_weight(
            name="pos", shape=(channels,), initializer=tf.keras.initializers.Constant(self.pos_init)
        )
        self.neg = self.add_weight(
            name="neg", shape=(channels,), initializer=tf.keras.initializers.Constant(self.neg_init)
        )
        super().build(input_shape)

    def call(self, x):
        return self.pos * tf.nn.relu(x) - self.neg * tf.nn.relu(-x)

    def get_config(self):
        return {**super().get_config(), "pos_init": self.pos_init, "neg_init": self.neg_init}


def embedding_head(x, *, embedding_size: int, dropout: float = 0.0, name: str = HEAD_PREFIX):
    """insightface's "BN-Dropout-Flatten-FC-BN" head, full precision; the last BN has no learned scale."""
    x = tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}bn_in")(x)
    x = tf.keras.layers.Dropout(dropout, name=f"{name}dropout")(x)
    x = tf.keras.layers.Flatten(name=f"{name}flatten")(x)
    x = tf.keras.layers.Dense(embedding_size, name=f"{name}fc")(x)
    return tf.keras.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5, scale=False, name=f"{name}bn_out"
    )(x)




@tf.keras.utils.register_keras_serializable(package="lcefr")
class AdaBinConv2D(lq.layers.QuantConv2D):
    """Binary convolution with AdaBin weights and activations (arXiv:2208.08084, released-code form).

    The input is binarized to ``alpha_a * (sign((x - beta_a) / alpha_a) + beta_a)`` with learnable
    scalars ``alpha_a`` (init 1) and ``beta_a`` (init 0) and Bi-Real's ApproxSign gradient; the
    kernel by :class:`lcefr.quantizers.AdaBinWeight`. Borders are padded with +1 in the binarized
    domain (``pad_values=1``), so the convolution equals
    ``alpha_a * conv(b, W_hat) + alpha_a * beta_a * sum(W_hat)`` with ``b`` in {-1, +1}, which is
    how it is computed here and how it lowers to LCE binary ops.
    """

    def __init__(self, filters, kernel_size, *, k: float = 1.0, t: float = 1.0, **kwargs):
        kwargs.pop("input_quantizer", None)
        kwargs.pop("kernel_quantizer", None)
        kwargs.setdefault("padding", "same")
        kwargs.setdefault("pad_values", 1.0)
        kwargs.setdefault("use_bias", False)
        # AdaBin's EDE gradient never starves weights, so larq's advice to clip does not apply.
        larq_log = logging.getLogger("larq.layers_base")
        level = larq_log.level
        larq_log.setLevel(logging.ERROR)
        try:
            super().__init__(
                filters,
                kernel_size,
                input_quantizer="approx_sign",
                kernel_quantizer=AdaBinWeight(k=k, t=t),
                **kwargs,
            )
        finally:
            larq_log.setLevel(level)

    def build(self, input_shape):
        super().build(input_shape)
        self.act_alpha = self.add_weight(name="act_alpha", shape=(), initializer="ones")
        self.act_beta = self.add_weight(name="act_beta", shape=(), initializer="zeros")

    def call(self, inputs):
        """The binarized convolution in the form LCE runs it (EffBin eq. 9).

        With ``b = sign((x - beta_a) / alpha_a)`` (one-padded) and ``W_hat = alpha_w * W_b + beta_w``:
        ``y = alpha_a * alpha_w * conv(b, W_b) + alpha_a * beta_w * conv(b, 1) + alpha_a * beta_a * sum(W_hat)``.
        Both convolutions are +-1 by +-1, so they give exact integers; they run as one binary
        convolution with ``C + 1`` output channels (``W_b`` and an all-ones kernel for the box-sum
        of ``b`` over the window and all input channels), split afterwards. Training and the
        converted flatbuffer therefore compute the same numbers in the same order. (A separate
        one-channel box convolution would let LCE fuse the per-channel ``beta_w`` multiply into its
        one-channel multiplier, which breaks at run time.)
        """
        beta_w, alpha_w = adabin_weight_stats(self.kernel)
        q = self.kernel_quantizer
        w_b = ede_sign((self.kernel - beta_w) / alpha_w, q.k, q.t)
        kernel = tf.concat([w_b, tf.ones_like(w_b[..., :1])], axis=-1)
        b = self.input_quantizer((inputs - self.act_beta) / self.act_alpha)
        if self.padding == "same":
            b = tf.pad(b, self._get_padding_same(b), constant_values=1.0)
        counts = tf.nn.conv2d(b, kernel, (1, *self.strides, 1), "VALID")
        main, box = counts[..., :-1], counts[..., -1:]
        w_sum = tf.reduce_sum(w_b * alpha_w + beta_w, axis=[0, 1, 2])
        return main * (self.act_alpha * alpha_w) + box * (self.act_alpha * beta_w) + (self.act_alpha * self.act_beta) * w_sum

    def get_config(self):
        config = super().get_config()
        config.pop("input_quantizer", None)
        config.pop("kernel_quantizer", None)
        return {**config, "k": self.kernel_quantizer.k, "t": self.kernel_quantizer.t}


def _custom_objects():
    from lcefr.quantize.fakequant import QUANT_OBJECTS  # fake-quantized layers of `lcefr quantize` outputs

    return {"Maxout": Maxout, "AdaBinConv2D": AdaBinConv2D, "AdaBinWeight": AdaBinWeight, **QUANT_OBJECTS}


CUSTOM_OBJECTS = _custom_objects()
