"""Binarized AdaFace/ArcFace ResNet-18 with AdaBin binarizers and Maxout (EffBin, seed 000).

The ``ir18`` layout with both 3x3 convolutions of every block binarized by
:class:`lcefr.layers.AdaBinConv2D` (AdaBin, arXiv:2208.08084: per-channel centred weights,
learnable activation threshold/scale, ApproxSign gradient, one-padding), Bi-Real style identity
shortcuts around each binary convolution (arXiv:1808.00278) and Maxout in place of PReLU.
Full precision: the stem, the downsampling shortcut (average pool + 1x1 conv + BN, AdaBin's
``avg_down``) and the embedding head.

Block (``C_in -> C``, stride ``s``)::

    h = Maxout(BN(binconv3x3(x, C)) + shortcut1(x))       shortcut1 = x, or [x, x] when C = 2 C_in
    y = Maxout(BN(binconv3x3(h, C, s)) + shortcut2(h))    shortcut2 = h, or avgpool(s) -> 1x1 -> BN
"""
from __future__ import annotations

import functools

import tensorflow as tf

from lcefr.layers import AdaBinConv2D, Maxout, staged_backbone
from lcefr.models import register_model

__all__ = ["adabin_resnet", "adabin_r18", "test_adabin_resnet"]

_BN = dict(momentum=0.9, epsilon=1e-5)


def stem(x, filters: int):
    x = tf.keras.layers.ZeroPadding2D(1)(x)
    x = tf.keras.layers.Conv2D(filters, 3, use_bias=False)(x)
    return Maxout()(tf.keras.layers.BatchNormalization(**_BN)(x))


def shortcut(x, filters: int, stride: int):
    if stride != 1:
        x = tf.keras.layers.AveragePooling2D(stride, strides=stride, padding="same")(x)
        x = tf.keras.layers.Conv2D(filters, 1, use_bias=False)(x)
        return tf.keras.layers.BatchNormalization(**_BN)(x)
    if x.shape[-1] == filters:
        return x
    if filters % x.shape[-1]:
        raise ValueError(f"channel growth must be a whole multiple, got {x.shape[-1]} -> {filters}")
    return tf.keras.layers.Concatenate()([x] * (filters // x.shape[-1]))


def binary_unit(x, filters: int, stride: int = 1):
    """Maxout(BN(AdaBin conv3x3(x)) + shortcut(x)): one binary conv with its own shortcut."""
    y = AdaBinConv2D(filters, 3, strides=stride, kernel_initializer="glorot_normal")(x)
    y = tf.keras.layers.BatchNormalization(**_BN)(y)
    return Maxout()(tf.keras.layers.Add()([y, shortcut(x, filters, stride)]))


def residual_block(x, filters: int, stride: int):
    return binary_unit(binary_unit(x, filters), filters, stride)


#: The one AdaBin ResNet builder; variants pass their stage depths.
adabin_resnet = functools.partial(staged_backbone, stem=stem, block=residual_block, widths=(64, 128, 256, 512))


@register_model(family="adabin_resnet", binary=True)
def adabin_r18(*, input_shape, embedding_size, dropout: float = 0.0):
    return adabin_resnet(input_shape=input_shape, embedding_size=embedding_size, depths=(2, 2, 2, 2), dropout=dropout)


@register_model(family="adabin_resnet", binary=True, embedding_size=64)
def test_adabin_resnet(*, input_shape, embedding_size, dropout: float = 0.0):
    """A tiny AdaBin ResNet for tests (one block per stage)."""
    return adabin_resnet(
        input_shape=input_shape,
        embedding_size=embedding_size,
        depths=(1, 1, 1, 1),
        widths=(32, 32, 64, 64),
        dropout=dropout,
    )
