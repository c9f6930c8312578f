"""Binarizers beyond larq's built-ins, as serialisable larq quantizers.

``AdaBinWeight`` is the AdaBin weight binarizer (Tu et al., "AdaBin: Improving Binary Neural
Networks with Adaptive Binary Sets", arXiv:2208.08084) in the form of its released code: per
output channel, ``W_hat = alpha_w * sign((W - beta_w) / alpha_w) + beta_w`` with ``beta_w`` the
mean and ``alpha_w`` the population standard deviation of the channel's weights, and the
IR-Net EDE surrogate gradient ``k * t * (1 - tanh(t * w)^2)`` for the sign.
"""
from __future__ import annotations

import larq as lq
import tensorflow as tf

__all__ = ["AdaBinWeight", "ede_sign", "adabin_weight_stats"]


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
