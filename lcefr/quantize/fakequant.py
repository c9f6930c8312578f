"""Quantization-aware training (QAT) of full-precision backbones: fake-quantize a model, calibrate.

Weights are quantized per output channel, symmetric, to ``2^b - 1`` levels
(``{-q, ..., q} * scale``, ``q = 2^(b-1) - 1``, ``scale = max|w| / q``); the input activations of
every convolution and fully connected layer are quantized uniformly (asymmetric, ``2^b`` levels,
zero exactly representable) inside a range that is calibrated on data first and then frozen, as
in QuantFace (Boutros et al., arXiv:2206.10526) and Ef-QuantFace (seed 002). Both quantizers pass
gradients straight through (STE; the activation one is zero outside the frozen range).

No QAT toolkit is used (tensorflow-model-optimization pulls Keras 3 pieces): the fake-quantized
layers are ordinary tf-keras layers of :mod:`lcefr.layers`, the quantizers in :mod:`lcefr.quantizers`.
"""
from __future__ import annotations

from typing import List

import tensorflow as tf

from lcefr.layers import FakeQuant, QuantConv2D, QuantDense, QuantDepthwiseConv2D
from lcefr.quantizers import check_bits

__all__ = [
    "SUPPORTED_BITS",
    "quant_layers",
    "quantize_model",
    "calibrate",
    "fold_quantized_weights",
]

#: Bit widths the command and the export accept.
SUPPORTED_BITS = (8, 6, 4)


_REPLACE = {
    tf.keras.layers.Conv2D: QuantConv2D,
    tf.keras.layers.DepthwiseConv2D: QuantDepthwiseConv2D,
    tf.keras.layers.Dense: QuantDense,
}


def quant_layers(model) -> List:
    """The fake-quantized layers of ``model``, in layer order."""
    return [layer for layer in model.layers if isinstance(layer, FakeQuant)]


def quantize_model(model, *, bits: int):
    """A copy of the float functional ``model`` whose Conv2D / DepthwiseConv2D / Dense layers are
    fake-quantized to w{bits}a{bits}; the copy starts from ``model``'s weights (same layer names).

    Raises:
        ValueError: ``model`` has no quantizable layer, or bits out of range.
    """
    bits = check_bits(bits)

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
        if isinstance(target, FakeQuant):
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
        if isinstance(source, FakeQuant):
            weights = {w.name: w.numpy() for w in source.weights}
            kernel = getattr(source, source.kernel_attr)
            weights[kernel.name] = source.quantized_kernel()
            target.set_weights([weights[w.name] for w in source.weights if w is not source.input_range])
        else:
            target.set_weights(source.get_weights())
    return float_model
