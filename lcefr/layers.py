"""Reusable Keras layers: embedding head, Maxout, the AdaBin convolution and the fake-quantized
Conv2D / DepthwiseConv2D / Dense of quantization-aware training (ordinary serialisable tf-keras
layers: ``bits`` in their config, the calibrated input range as a weight)."""
from __future__ import annotations

import logging
from typing import List, Sequence

import larq as lq
import numpy as np
import tensorflow as tf

from lcefr.quantizers import AdaBinWeight, adabin_weight_stats, check_bits, ede_sign, quantize_activation, quantize_weight

__all__ = ["HEAD_PREFIX", "Maxout", "AdaBinConv2D", "embedding_head", "staged_backbone", "FakeQuant", "QuantConv2D",
           "QuantDepthwiseConv2D", "QuantDense", "QUANT_OBJECTS"]

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


def staged_backbone(*, input_shape, embedding_size: int, stem, block, depths: Sequence[int],
                    widths: Sequence[int], dropout: float = 0.0):
    """A ResNet-shaped face model: ``stem``, then per stage ``depth`` ``block(x, width, stride)``
    (stride 2 on each stage's first block), then :func:`embedding_head`."""
    inputs = tf.keras.Input(shape=input_shape, name="face")
    x = stem(inputs, widths[0])
    for depth, width in zip(depths, widths):
        for i in range(depth):
            x = block(x, width, 2 if i == 0 else 1)
    outputs = embedding_head(x, embedding_size=embedding_size, dropout=dropout)
    return tf.keras.Model(inputs, outputs)




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


class FakeQuant:
    """Mixin before a Keras layer class: quantizes ``self.<kernel_attr>`` and the layer input; range
    calibration switch. Subclasses only say how to apply the quantized kernel (``call``)."""

    kernel_attr = "kernel"
    channel_axes = (-1,)

    def __init__(self, *args, bits: int = 8, **kwargs):
        super().__init__(*args, **kwargs)
        self.bits = check_bits(bits)
        self.calibrating = False
        self._seen_low: List[float] = []
        self._seen_high: List[float] = []

    def build(self, input_shape):
        super().build(input_shape)
        self.input_range = self.add_weight(
            name="input_range", shape=(2,), initializer=tf.keras.initializers.Constant([-1.0, 1.0]), trainable=False
        )

    def get_config(self):
        return {**super().get_config(), "bits": self.bits}

    def _quant_input(self, inputs):
        if self.calibrating:
            if not tf.executing_eagerly():
                raise RuntimeError("calibration must run eagerly (call the model, not a tf.function)")
            self._seen_low.append(float(tf.reduce_min(inputs)))
            self._seen_high.append(float(tf.reduce_max(inputs)))
            return inputs
        return quantize_activation(inputs, self.input_range[0], self.input_range[1], self.bits)

    def _quant_kernel(self):
        return quantize_weight(getattr(self, self.kernel_attr), self.bits, channel_axes=self.channel_axes)

    def quantized_kernel(self) -> np.ndarray:
        """The kernel as the quantized network uses it."""
        return self._quant_kernel().numpy()

    def finish_calibration(self) -> None:
        """Freeze the input range at the mean of the observed per-batch minima and maxima."""
        if not self._seen_low:
            raise RuntimeError(f"{self.name}: no calibration batch reached this layer")
        self.input_range.assign([float(np.mean(self._seen_low)), float(np.mean(self._seen_high))])
        self._seen_low, self._seen_high = [], []
        self.calibrating = False


def _finish(layer, outputs):
    if layer.use_bias:
        outputs = tf.nn.bias_add(outputs, layer.bias)
    return layer.activation(outputs) if layer.activation is not None else outputs


@tf.keras.utils.register_keras_serializable(package="lcefr")
class QuantConv2D(FakeQuant, tf.keras.layers.Conv2D):
    """``Conv2D`` with w{bits} per-channel weights and a{bits} inputs (frozen calibrated range)."""

    def call(self, inputs):
        x = self._quant_input(inputs)
        return _finish(self, self.convolution_op(x, self._quant_kernel()))


@tf.keras.utils.register_keras_serializable(package="lcefr")
class QuantDepthwiseConv2D(FakeQuant, tf.keras.layers.DepthwiseConv2D):
    """``DepthwiseConv2D`` with w{bits} per-channel weights and a{bits} inputs."""

    kernel_attr = "depthwise_kernel"
    channel_axes = (2, 3)

    def call(self, inputs):
        x = self._quant_input(inputs)
        outputs = tf.nn.depthwise_conv2d(x, self._quant_kernel(), strides=(1,) + tuple(self.strides) + (1,),
                                         padding=self.padding.upper(), dilations=self.dilation_rate)
        return _finish(self, outputs)


@tf.keras.utils.register_keras_serializable(package="lcefr")
class QuantDense(FakeQuant, tf.keras.layers.Dense):
    """``Dense`` with w{bits} per-output-unit weights and a{bits} inputs."""

    def call(self, inputs):
        x = self._quant_input(inputs)
        return _finish(self, tf.matmul(x, self._quant_kernel()))


#: The fake-quantized layers of `lcefr quantize` outputs (part of lcefr.keras_graph.CUSTOM_OBJECTS).
QUANT_OBJECTS = {"QuantConv2D": QuantConv2D, "QuantDepthwiseConv2D": QuantDepthwiseConv2D, "QuantDense": QuantDense}
