"""Fake-quantization layers for quantization-aware training (QAT) of full-precision backbones.

Weights are quantized per output channel, symmetric, to ``2^b - 1`` levels
(``{-q, ..., q} * scale``, ``q = 2^(b-1) - 1``, ``scale = max|w| / q``); the input activations of
every convolution and fully connected layer are quantized uniformly (asymmetric, ``2^b`` levels,
zero exactly representable) inside a range that is calibrated on data first and then frozen, as
in QuantFace (Boutros et al., arXiv:2206.10526) and Ef-QuantFace (seed 002). Both quantizers pass
gradients straight through (STE; the activation one is zero outside the frozen range).

No QAT toolkit is used (tensorflow-model-optimization pulls Keras 3 pieces): the layers below are
ordinary serialisable tf-keras layers (``bits`` in their config, ranges as weights).
"""
from __future__ import annotations

from typing import Iterable, List

import numpy as np
import tensorflow as tf

__all__ = [
    "SUPPORTED_BITS",
    "quantize_weight",
    "quantize_activation",
    "QuantConv2D",
    "QuantDepthwiseConv2D",
    "QuantDense",
    "QUANT_OBJECTS",
    "quant_layers",
    "quantize_model",
    "calibrate",
    "fold_quantized_weights",
]

#: Bit widths the command and the export accept.
SUPPORTED_BITS = (8, 6, 4)


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or int(bits) != bits or not 2 <= int(bits) <= 8:
        raise ValueError(f"bits must be an integer in [2, 8], got {bits!r}")
    return int(bits)


def quantize_weight(kernel, bits: int, *, channel_axes: Iterable[int] = (-1,)):
    """Per-channel symmetric fake quantization with a straight-through gradient.

    Args:
        kernel: float weights.
        bits: bit width ``b``; each channel takes at most ``2^b - 1`` values ``k * max|w_c| / q``,
            ``k`` in ``[-q, q]``, ``q = 2^(b-1) - 1``.
        channel_axes: axes that index a channel (the output axis; (2, 3) for depthwise kernels).

    Returns:
        The quantized kernel, whose gradient w.r.t. ``kernel`` is the identity.
    """
    bits = _check_bits(bits)
    kernel = tf.convert_to_tensor(kernel)
    rank = kernel.shape.rank
    keep = {a % rank for a in channel_axes}
    reduce_axes = [a for a in range(rank) if a not in keep]
    q = float(2 ** (bits - 1) - 1)
    scale = tf.reduce_max(tf.abs(kernel), axis=reduce_axes, keepdims=True) / q
    scale = tf.maximum(scale, 1e-12)
    quantized = tf.clip_by_value(tf.round(kernel / scale), -q, q) * scale
    return kernel + tf.stop_gradient(quantized - kernel)


def activation_grid(low, high, bits: int):
    """``(low', high', step)``: the range nudged so that 0 is a level, as TFLite's asymmetric int8."""
    levels = float(2 ** bits - 1)
    low = tf.minimum(tf.cast(low, tf.float32), 0.0)
    high = tf.maximum(tf.cast(high, tf.float32), low + 1e-6)
    step = (high - low) / levels
    zero = tf.round(-low / step)
    low = -zero * step
    return low, low + levels * step, step


def quantize_activation(x, low, high, bits: int):
    """Uniform ``2^b``-level fake quantization of ``x`` inside ``[low, high]``, clipped STE gradient."""
    bits = _check_bits(bits)
    low, high, step = activation_grid(low, high, bits)
    clipped = tf.clip_by_value(x, low, high)
    quantized = tf.round((clipped - low) / step) * step + low
    return clipped + tf.stop_gradient(quantized - clipped)


class _FakeQuant:
    """Mixin before a Keras layer class: quantizes ``self.<kernel_attr>`` and the layer input; range
    calibration switch. Subclasses only say how to apply the quantized kernel (``call``)."""

    kernel_attr = "kernel"
    channel_axes = (-1,)

    def __init__(self, *args, bits: int = 8, **kwargs):
        super().__init__(*args, **kwargs)
        self.bits = _check_bits(bits)
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
class QuantConv2D(_FakeQuant, tf.keras.layers.Conv2D):
    """``Conv2D`` with w{bits} per-channel weights and a{bits} inputs (frozen calibrated range)."""

    def call(self, inputs):
        x = self._quant_input(inputs)
        return _finish(self, self.convolution_op(x, self._quant_kernel()))


@tf.keras.utils.register_keras_serializable(package="lcefr")
class QuantDepthwiseConv2D(_FakeQuant, tf.keras.layers.DepthwiseConv2D):
    """``DepthwiseConv2D`` with w{bits} per-channel weights and a{bits} inputs."""

    kernel_attr = "depthwise_kernel"
    channel_axes = (2, 3)

    def call(self, inputs):
        x = self._quant_input(inputs)
        outputs = tf.nn.depthwise_conv2d(x, self._quant_kernel(), strides=(1,) + tuple(self.strides) + (1,),
                                         padding=self.padding.upper(), dilations=self.dilation_rate)
        return _finish(self, outputs)


@tf.keras.utils.register_keras_serializable(package="lcefr")
class QuantDense(_FakeQuant, tf.keras.layers.Dense):
    """``Dense`` with w{bits} per-output-unit weights and a{bits} inputs."""

    def call(self, inputs):
        x = self._quant_input(inputs)
        return _finish(self, tf.matmul(x, self._quant_kernel()))


#: Custom objects for loading a quantized model (part of lcefr.layers.CUSTOM_OBJECTS).
QUANT_OBJECTS = {"QuantConv2D": QuantConv2D, "QuantDepthwiseConv2D": QuantDepthwiseConv2D, "QuantDense": QuantDense}

_REPLACE = {
    tf.keras.layers.Conv2D: QuantConv2D,
    tf.keras.layers.DepthwiseConv2D: QuantDepthwiseConv2D,
    tf.keras.layers.Dense: QuantDense,
}


def quant_layers(model) -> List:
    """The fake-quantized layers of ``model``, in layer order."""
    return [layer for layer in model.layers if isinstance(layer, _FakeQuant)]


def quantize_model(model, *, bits: int):
    """A copy of the float functional ``model`` whose Conv2D / DepthwiseConv2D / Dense layers are
    fake-quantized to w{bits}a{bits}; the copy starts from ``model``'s weights (same layer names).

    Raises:
        ValueError: ``model`` has no quantizable layer, or bits out of range.
    """
    bits = _check_bits(bits)

    def clone(layer):
        target = _REPLACE.get(type(layer))
        if target is None:
            return layer.__class__.from_config(layer.get_config())
        return target(bits=bits, **layer.get_config())

    student = tf.keras.models.clone_model(model, clone_function=clone)
    student.trainable = True
    layers = quant_layers(student)
    if not layers:
        raise ValueError(f"{model.name} has no Conv2D, DepthwiseConv2D or Dense layer to quantize")
    for source, target in zip(model.layers, student.layers):
        weights = source.get_weights()
        if isinstance(target, _FakeQuant):
            weights = weights + [target.input_range.numpy()]
        target.set_weights(weights)
    return student


def calibrate(model, batches) -> int:
    """Set every quantized layer's input range from float activations on ``batches``, then freeze.

    Args:
        model: a model from :func:`quantize_model`.
        batches: iterable of preprocessed float32 ``(N, H, W, 3)`` arrays.

    Returns:
        The number of batches seen.
    """
    layers = quant_layers(model)
    for layer in layers:
        layer.calibrating = True
    count = 0
    try:
        for batch in batches:
            model(tf.convert_to_tensor(batch, tf.float32), training=False)
            count += 1
        if count == 0:
            raise ValueError("calibration needs at least one batch")
        for layer in layers:
            layer.finish_calibration()
    finally:
        for layer in layers:
            layer.calibrating = False
    return count


def fold_quantized_weights(student, float_model):
    """Copy ``student``'s quantized kernels and its other weights into ``float_model`` (same architecture).

    The result is a plain float graph whose kernels lie on the b-bit grid, what the TFLite int8
    converter then quantizes (for 8 bits exactly, up to its BatchNorm folding).
    """
    by_name = {layer.name: layer for layer in student.layers}
    for target in float_model.layers:
        source = by_name.get(target.name)
        if source is None:
            raise ValueError(f"layer {target.name} of {float_model.name} is missing from the quantized model")
        if isinstance(source, _FakeQuant):
            weights = {w.name: w.numpy() for w in source.weights}
            kernel = getattr(source, source.kernel_attr)
            weights[kernel.name] = source.quantized_kernel()
            target.set_weights([weights[w.name] for w in source.weights if w is not source.input_range])
        else:
            target.set_weights(source.get_weights())
    return float_model
