"""insightface IResNet (Deng et al., ArcFace, arXiv:1801.07698), full precision.

Stem conv3x3/s1 -> BN -> PReLU; improved basic blocks BN -> conv3x3 -> BN -> PReLU ->
conv3x3(stride) -> BN plus a shortcut (1x1 conv + BN when the shape changes); four stages of
64/128/256/512 channels, each starting with stride 2; the BN-Dropout-Flatten-FC-BN head.
3x3 convolutions pad explicitly by one pixel, as PyTorch does, so PyTorch checkpoints map
one to one.
"""
from __future__ import annotations

import functools

import tensorflow as tf

from lcefr.layers import staged_backbone
from lcefr.models import register_model

__all__ = ["torch_padding", "iresnet", "ir18", "ir34", "ir50", "test_iresnet"]

_BN = dict(momentum=0.9, epsilon=1e-5)


def prelu(x):
    return tf.keras.layers.PReLU(shared_axes=[1, 2], alpha_initializer=tf.keras.initializers.Constant(0.25))(x)


def torch_padding(x, stride: int):
    """PyTorch's one-pixel padding for a 3x3 conv, as ``ZeroPadding2D`` pads.

    At stride 2 on an even side the last padded row/column is never read, so it is left out:
    the result is identical, and it keeps LCE's converter (0.16.0) from fusing the pad into a
    "SAME" convolution, which pads (0, 1) instead of (1, 1) there and shifts the sampling grid.
    """
    pads = []
    for size in x.shape[1:3]:
        after = 0 if stride == 2 and size is not None and size % 2 == 0 else 1
        pads.append((1, after))
    return tf.keras.layers.ZeroPadding2D(tuple(pads))(x)


def conv3x3(x, filters: int, stride: int = 1):
    return tf.keras.layers.Conv2D(filters, 3, strides=stride, use_bias=False)(torch_padding(x, stride))


def stem(x, filters: int = 64):
    return prelu(tf.keras.layers.BatchNormalization(**_BN)(conv3x3(x, filters)))


def residual_block(x, filters: int, stride: int):
    y = tf.keras.layers.BatchNormalization(**_BN)(x)
    y = prelu(tf.keras.layers.BatchNormalization(**_BN)(conv3x3(y, filters)))
    y = tf.keras.layers.BatchNormalization(**_BN)(conv3x3(y, filters, stride))
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = tf.keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False)(x)
        shortcut = tf.keras.layers.BatchNormalization(**_BN)(shortcut)
    return tf.keras.layers.Add()([y, shortcut])


#: The one IResNet builder; variants pass their stage depths.
iresnet = functools.partial(staged_backbone, stem=stem, block=residual_block, widths=(64, 128, 256, 512))


@register_model(family="iresnet", binary=False)
def ir18(*, input_shape, embedding_size, dropout: float = 0.0):
    return iresnet(input_shape=input_shape, embedding_size=embedding_size, depths=(2, 2, 2, 2), dropout=dropout)


@register_model(family="iresnet", binary=False)
def ir34(*, input_shape, embedding_size, dropout: float = 0.0):
    return iresnet(input_shape=input_shape, embedding_size=embedding_size, depths=(3, 4, 6, 3), dropout=dropout)


@register_model(family="iresnet", binary=False)
def ir50(*, input_shape, embedding_size, dropout: float = 0.0):
    return iresnet(input_shape=input_shape, embedding_size=embedding_size, depths=(3, 4, 14, 3), dropout=dropout)


@register_model(family="iresnet", binary=False, embedding_size=64)
def test_iresnet(*, input_shape, embedding_size, dropout: float = 0.0):
    """A tiny IResNet for tests (one block per stage, narrow)."""
    return iresnet(
        input_shape=input_shape,
        embedding_size=embedding_size,
        depths=(1, 1, 1, 1),
        widths=(16, 32, 32, 64),
        dropout=dropout,
    )
