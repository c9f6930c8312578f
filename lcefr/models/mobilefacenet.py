"""MobileFaceNet (Chen et al., arXiv:1804.07573), the full-precision baseline, in insightface's layout.

A 3x3 stride-2 stem and a depthwise 3x3 convolution, inverted-residual bottlenecks (1x1 expand,
depthwise 3x3, linear 1x1 projection; identity shortcut when the stride is 1 and the width is
kept), a 1x1 convolution to 512 channels and the global depthwise convolution (GDC) head: a
linear depthwise convolution over the whole 7x7 map, a linear 1x1 convolution to the embedding
size, BatchNorm and flatten. Every non-linearity is a PReLU shared over H and W.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import tensorflow as tf

from lcefr.layers import HEAD_PREFIX
from lcefr.models import register_model

__all__ = ["mobilefacenet", "test_mobilefacenet", "build_mobilefacenet", "BOTTLENECKS"]

#: (expansion t, output channels c, repeats n, first stride s), arXiv:1804.07573 Table 1.
BOTTLENECKS: Tuple[Tuple[int, int, int, int], ...] = (
    (2, 64, 5, 2),
    (4, 128, 1, 2),
    (2, 128, 6, 1),
    (4, 128, 1, 2),
    (2, 128, 2, 1),
)


def _bn(name: Optional[str] = None):
    return tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def _prelu(name: Optional[str] = None):
    return tf.keras.layers.PReLU(
        alpha_initializer=tf.keras.initializers.Constant(0.25), shared_axes=[1, 2], name=name
    )


def conv_block(x, filters: int, kernel: int, *, strides: int = 1, linear: bool = False, name: str):
    """Conv2D (no bias) -> BatchNorm -> PReLU (no PReLU when ``linear``)."""
    x = tf.keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}conv")(x)
    x = _bn(f"{name}bn")(x)
    return x if linear else _prelu(f"{name}prelu")(x)


def depthwise_block(x, kernel: int, *, strides: int = 1, name: str):
    """DepthwiseConv2D (no bias) -> BatchNorm -> PReLU."""
    x = tf.keras.layers.DepthwiseConv2D(kernel, strides=strides, padding="same", use_bias=False, name=f"{name}dw")(x)
    return _prelu(f"{name}prelu")(_bn(f"{name}bn")(x))


def bottleneck(x, expansion: int, filters: int, strides: int, *, name: str):
    """Inverted residual: 1x1 expand -> depthwise 3x3 -> linear 1x1 projection (+ identity)."""
    y = conv_block(x, x.shape[-1] * expansion, 1, name=f"{name}expand_")
    y = depthwise_block(y, 3, strides=strides, name=f"{name}")
    y = conv_block(y, filters, 1, linear=True, name=f"{name}project_")
    if strides == 1 and x.shape[-1] == filters:
        y = tf.keras.layers.Add(name=f"{name}add")([x, y])
    return y


def gdc_head(x, *, embedding_size: int, dropout: float = 0.0, name: str = HEAD_PREFIX):
    """Global depthwise conv (linear, kernel = the whole map) -> BN -> linear 1x1 conv -> BN -> flatten.

    A positive ``dropout`` inserts a Dropout layer before the 1x1 convolution (insightface's default is 0).
    """
    x = tf.keras.layers.DepthwiseConv2D(
        tuple(x.shape[1:3]), padding="valid", use_bias=False, name=f"{name}gdc"
    )(x)
    x = _bn(f"{name}gdc_bn")(x)
    if dropout:
        x = tf.keras.layers.Dropout(dropout, name=f"{name}dropout")(x)
    x = tf.keras.layers.Conv2D(embedding_size, 1, use_bias=False, name=f"{name}conv")(x)
    x = _bn(f"{name}bn")(x)
    return tf.keras.layers.Flatten(name=f"{name}flatten")(x)


def build_mobilefacenet(
    *,
    input_shape,
    embedding_size: int,
    stem_filters: int = 64,
    bottlenecks: Sequence[Tuple[int, int, int, int]] = BOTTLENECKS,
    last_filters: int = 512,
    dropout: float = 0.0,
):
    """The MobileFaceNet layout with its widths and bottleneck table as arguments.

    The GDC kernel covers the whole last feature map (7x7 at 112x112), so other input sizes
    still give a ``(None, embedding_size)`` output.
    """
    inputs = tf.keras.Input(shape=tuple(input_shape), name="face")
    x = conv_block(inputs, stem_filters, 3, strides=2, name="stem_")
    x = depthwise_block(x, 3, name="stem_dw_")
    for stage, (expansion, filters, repeats, strides) in enumerate(bottlenecks, start=1):
        for i in range(repeats):
            x = bottleneck(x, expansion, filters, strides if i == 0 else 1, name=f"stage{stage}_{i + 1}_")
    x = conv_block(x, last_filters, 1, name="last_")
    outputs = gdc_head(x, embedding_size=embedding_size, dropout=dropout)
    return tf.keras.Model(inputs, outputs)


@register_model(family="mobilefacenet", binary=False)
def mobilefacenet(*, input_shape, embedding_size, dropout: float = 0.0):
    """MobileFaceNet (insightface ``get_mbf``); 512-D by default, the paper's model is 128-D."""
    return build_mobilefacenet(input_shape=input_shape, embedding_size=embedding_size, dropout=dropout)


@register_model(family="mobilefacenet", binary=False, embedding_size=64)
def test_mobilefacenet(*, input_shape, embedding_size, dropout: float = 0.0):
    """A tiny MobileFaceNet for tests: one narrow bottleneck per stage."""
    return build_mobilefacenet(
        input_shape=input_shape,
        embedding_size=embedding_size,
        dropout=dropout,
        stem_filters=16,
        bottlenecks=((2, 16, 1, 2), (2, 32, 1, 2), (2, 32, 1, 1), (2, 32, 1, 2), (2, 32, 1, 1)),
        last_filters=64,
    )
