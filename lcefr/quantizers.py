"""Binarizers beyond larq's built-ins, as serialisable larq quantizers.

``AdaBinWeight`` is the AdaBin weight binarizer (Tu et al., "AdaBin: Improving Binary Neural
Networks with Adaptive Binary Sets", arXiv:2208.08084) in the form of its released code: per
output channel, ``W_hat = alpha_w * sign((W - beta_w) / alpha_w) + beta_w`` with ``beta_w`` the
mean and ``alpha_w`` the population standard deviation of the channel's weights, and the
IR-Net EDE surrogate gradient ``k * t * (1 - tanh(t * w)^2)`` for the sign.

The fake quantizers of quantization-aware training (``quantize_weight``, ``quantize_activation``)
follow QuantFace (Boutros et al., arXiv:2206.10526) and Ef-QuantFace (seed 002): weights per output
channel, symmetric, ``2^b - 1`` levels (``{-q, ..., q} * scale``, ``q = 2^(b-1) - 1``,
``scale = max|w| / q``); activations uniform and asymmetric, ``2^b`` levels with zero exactly
representable, inside a calibrated range; straight-through gradients (zero outside the range for
activations).
"""
from __future__ import annotations

from typing import Iterable

import larq as lq
import tensorflow as tf

__all__ = ["AdaBinWeight", "ede_sign", "adabin_weight_stats", "check_bits", "quantize_weight", "activation_grid",
           "quantize_activation"]


def ede_sign(x, k: float, t: float):
    """``sign(x)`` (+1 at 0, as larq) with the EDE gradient ``k * t * (1 - tanh(t x)^2)``."""

    @tf.custom_gradient
    def _sign(v):
        def grad(dy):
            return dy * (k * t) * (1.0 - tf.square(tf.tanh(t * v)))

        return lq.math.sign(v), grad

    return _sign(x)


def adabin_weight_stats(kernel, eps: float = 1e-8):
    """Per-output-channel ``(beta_w, alpha_w)`` of a Keras conv kernel ``(kh, kw, cin, cout)``."""
    axes = list(range(len(kernel.shape) - 1))
    beta = tf.reduce_mean(kernel, axis=axes)
    alpha = tf.sqrt(tf.reduce_mean(tf.square(kernel - beta), axis=axes) + eps)
    return beta, alpha


@lq.utils.register_alias("adabin_weight")
@lq.utils.register_keras_custom_object
class AdaBinWeight(lq.quantizers.Quantizer):
    """AdaBin weight binarizer: the kernel takes the two values ``beta_w[o] +- alpha_w[o]``.

    Args:
        k: EDE gradient gain (the released code's schedule ends at ``k=1, t=10``).
        t: EDE gradient sharpness.
    """

    precision = 1

    def __init__(self, k: float = 1.0, t: float = 1.0, **kwargs):
        self.k = float(k)
        self.t = float(t)
        super().__init__(**kwargs)

    def call(self, kernel):
        beta, alpha = adabin_weight_stats(kernel)
        return ede_sign((kernel - beta) / alpha, self.k, self.t) * alpha + beta

    def get_config(self):
        return {**super().get_config(), "k": self.k, "t": self.t}


def check_bits(bits) -> int:
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
    bits = check_bits(bits)
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
    bits = check_bits(bits)
    low, high, step = activation_grid(low, high, bits)
    clipped = tf.clip_by_value(x, low, high)
    quantized = tf.round((clipped - low) / step) * step + low
    return clipped + tf.stop_gradient(quantized - clipped)
