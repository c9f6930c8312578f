"""BinaryDenseNet (Bethge et al., arXiv:1906.08637) as face embedding networks.

The faithful variants reproduce larq-zoo's BinaryDenseNet28/37/45 layer for layer (zero
padding, as published); the ``*_lce`` variants differ only in padding with +1 ("same-one"),
which LCE runs with fused, bitpacked-friendly kernels.
"""
from __future__ import annotations

from typing import Sequence

import larq as lq
import tensorflow as tf

from lcefr.layers import embedding_head
from lcefr.models import register_model

__all__ = [
    "binary_densenet",
    "binary_densenet28",
    "binary_densenet37",
    "binary_densenet45",
    "binary_densenet28_lce",
    "binary_densenet37_lce",
    "binary_densenet45_lce",
    "test_binary_densenet",
]

_CLIP = 1.3


def _bn(x):
    return tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)


def stem(x, filters: int):
    x = tf.keras.layers.Conv2D(filters, 7, strides=2, padding="same", use_bias=False, kernel_initializer="he_normal")(x)
    x = tf.keras.layers.Activation("relu")(_bn(x))
    return tf.keras.layers.MaxPool2D(3, strides=2, padding="same")(x)


def dense_layer(x, growth_rate: int, pad_value: float):
    """BN -> binary 3x3 conv with ``growth_rate`` filters -> concatenate to the input."""
    y = lq.layers.QuantConv2D(
        growth_rate,
        3,
        padding="same",
        pad_values=pad_value,
        input_quantizer=lq.quantizers.SteSign(clip_value=_CLIP),
        kernel_quantizer=lq.quantizers.SteSign(clip_value=_CLIP),
        kernel_constraint=lq.constraints.WeightClip(clip_value=_CLIP),
        kernel_initializer="glorot_normal",
        use_bias=False,
    )(_bn(x))
    return tf.keras.layers.Concatenate()([x, y])


def transition_block(x, reduction: float):
    """BN -> 2x2 max-pool -> ReLU -> full-precision 1x1 conv to a multiple of 32 channels."""
    x = tf.keras.layers.MaxPool2D(2, strides=2)(_bn(x))
    x = tf.keras.layers.Activation("relu")(x)
    filters = round(x.shape[-1] // reduction / 32) * 32
    return tf.keras.layers.Conv2D(filters, 1, use_bias=False, kernel_initializer="he_normal")(x)


def binary_densenet(
    *,
    input_shape,
    embedding_size: int,
    layers: Sequence[int],
    reduction: Sequence[float],
    initial_filters: int = 64,
    growth_rate: int = 64,
    pad_value: float = 0.0,
    dropout: float = 0.0,
):
    """The one BinaryDenseNet builder; variants pass their numbers."""
    inputs = tf.keras.Input(shape=input_shape, name="face")
    x = stem(inputs, initial_filters)
    for section, n_layers in enumerate(layers):
        for _ in range(n_layers):
            x = dense_layer(x, growth_rate, pad_value)
        if section < len(layers) - 1:
            x = transition_block(x, reduction[section])
    x = tf.keras.layers.Activation("relu")(_bn(x))
    outputs = embedding_head(x, embedding_size=embedding_size, dropout=dropout)
    return tf.keras.Model(inputs, outputs)


_VARIANTS = {
    28: dict(layers=(6, 6, 6, 5), reduction=(2.7, 2.7, 2.2)),
    37: dict(layers=(6, 8, 12, 6), reduction=(3.3, 3.3, 4.0)),
    45: dict(layers=(6, 12, 14, 8), reduction=(2.7, 3.3, 4.0)),
}


def _variant(depth: int, pad_value: float, lce: bool):
    def build(*, input_shape, embedding_size, dropout: float = 0.0):
        return binary_densenet(
            input_shape=input_shape,
            embedding_size=embedding_size,
            dropout=dropout,
            pad_value=pad_value,
            **_VARIANTS[depth],
        )

    build.__name__ = f"binary_densenet{depth}{'_lce' if lce else ''}"
    build.__doc__ = (
        f"BinaryDenseNet{depth}, {'one-padded for LCE' if lce else 'zero-padded as published (larq-zoo layout)'}."
    )
    return register_model(family="binary_densenet", binary=True)(build)


binary_densenet28 = _variant(28, 0.0, False)
binary_densenet37 = _variant(37, 0.0, False)
binary_densenet45 = _variant(45, 0.0, False)
binary_densenet28_lce = _variant(28, 1.0, True)
binary_densenet37_lce = _variant(37, 1.0, True)
binary_densenet45_lce = _variant(45, 1.0, True)


@register_model(family="binary_densenet", binary=True, embedding_size=64)
def test_binary_densenet(*, input_shape, embedding_size, dropout: float = 0.0):
    """A tiny one-padded BinaryDenseNet for tests."""
    return binary_densenet(
        input_shape=input_shape,
        embedding_size=embedding_size,
        dropout=dropout,
        layers=(1, 1, 1, 1),
        reduction=(2.0, 2.0, 2.0),
        initial_filters=32,
        growth_rate=32,
        pad_value=1.0,
    )
