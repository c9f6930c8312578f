"""QuickNet family (Bannink et al., arXiv:2011.09398) as face embedding networks.

The backbone is larq-zoo's QuickNet built flat on a 112x112 input without its classifier; the
insightface embedding head replaces the classifier. Every binary convolution uses sign
quantizers and one-padding, so the whole backbone lowers to LCE binary ops.
"""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf
from larq_zoo.sota.quicknet import QuickNetFactory, QuickNetLargeFactory, QuickNetSmallFactory

from lcefr.layers import embedding_head
from lcefr.models import register_model

__all__ = ["quicknet_small", "quicknet", "quicknet_large", "test_quicknet"]


def _build(factory_cls, *, input_shape, embedding_size, dropout=0.0, **fields):
    backbone = factory_cls(
        input_shape=tuple(input_shape), include_top=False, weights=None, num_classes=1, **fields
    ).build()
    x = tf.keras.layers.Activation("relu", name="backbone_relu")(backbone.output)
    outputs = embedding_head(x, embedding_size=embedding_size, dropout=dropout)
    return tf.keras.Model(backbone.input, outputs)


@register_model(family="quicknet", binary=True)
def quicknet_small(*, input_shape, embedding_size, dropout: float = 0.0):
    return _build(QuickNetSmallFactory, input_shape=input_shape, embedding_size=embedding_size, dropout=dropout)


@register_model(family="quicknet", binary=True)
def quicknet(*, input_shape, embedding_size, dropout: float = 0.0):
    return _build(QuickNetFactory, input_shape=input_shape, embedding_size=embedding_size, dropout=dropout)


@register_model(family="quicknet", binary=True)
def quicknet_large(*, input_shape, embedding_size, dropout: float = 0.0):
    return _build(QuickNetLargeFactory, input_shape=input_shape, embedding_size=embedding_size, dropout=dropout)


@register_model(family="quicknet", binary=True, embedding_size=64)
def test_quicknet(
    *,
    input_shape,
    embedding_size,
    dropout: float = 0.0,
    section_blocks: Sequence[int] = (1, 1, 1, 1),
    section_filters: Sequence[int] = (32, 64, 96, 128),
):
    """A tiny QuickNet for tests: same blocks, one per section, narrow."""
    return _build(
        QuickNetFactory,
        input_shape=input_shape,
        embedding_size=embedding_size,
        dropout=dropout,
        section_blocks=tuple(section_blocks),
        section_filters=tuple(section_filters),
    )
