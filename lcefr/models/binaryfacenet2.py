"""BinaryFaceNet2: a binary face embedding network laid out for LCE's default aarch64 kernel.

Designed with ``lcefr estimate --cpu cortex-a57 --per-layer`` (issue 25; docs/binaryfacenet2.md):
a 112x112x3 face goes through

* a full-precision patchify stem (4x4 stride-4 conv -> BatchNorm, 112 -> 28x28),
* a binary 3x3 stride-2 transition (28x28 -> 14x14, ``width`` channels),
* ``blocks`` residual pairs at 14x14: binary 3x3 conv -> BatchNorm -> binary 3x3 conv
  -> BatchNorm, plus the identity (Bi-Real style, no ReLU). The first conv of a pair feeds the second one's sign
  quantizer directly, so LCE writes its output bitpacked and needs no LceQuantize in between,
* a binary 3x3 stride-2 downsample to 7x7 (``out_width`` channels),
* a full-precision global depthwise 7x7 conv (GDC, as in MobileFaceNet), then the 128-D FC.

Every binary conv is larq's ``QuantConv2D`` with ``ste_sign`` input and kernel quantizers,
``pad_values=1.0`` and no groups, so it becomes an ``LceBconv2d`` that LCE's default kernel
(``use_indirect_bgemm=False``) runs.
"""
from __future__ import annotations

import larq as lq
import tensorflow as tf

from lcefr.layers import HEAD_PREFIX
from lcefr.models import register_model

__all__ = ["binaryfacenet2", "test_binaryfacenet2", "build_binaryfacenet2"]


def _bn(name: str, **kw):
    return tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name, **kw)


def _bconv(filters: int, *, strides: int = 1, name: str):
    """Sign-quantized, one-padded, non-grouped binary 3x3 conv (-> LceBconv2d, default kernel)."""
    return lq.layers.QuantConv2D(
        filters,
        3,
        strides=strides,
        padding="same",
        pad_values=1.0,
        use_bias=False,
        input_quantizer=lq.quantizers.SteSign(clip_value=1.25),
        kernel_quantizer=lq.quantizers.SteSign(clip_value=1.25),
        kernel_constraint=lq.constraints.WeightClip(clip_value=1.25),
        kernel_initializer="glorot_normal",
        name=name,
    )


def _residual_pair(x, *, name: str):
    """bconv -> BN -> bconv -> BN, plus the identity (Bi-Real style: the sign is the only nonlinearity;
    a ReLU would make the residual stream non-negative and every sign +1). The first conv's output is
    bitpacked in LCE."""
    filters = int(x.shape[-1])
    y = _bconv(filters, name=f"{name}a_conv")(x)
    y = _bn(f"{name}a_bn")(y)
    y = _bconv(filters, name=f"{name}b_conv")(y)
    y = _bn(f"{name}b_bn")(y)
    return tf.keras.layers.Add(name=f"{name}add")([x, y])


def build_binaryfacenet2(
    *,
    input_shape,
    embedding_size: int,
    stem_filters: int = 32,
    width: int = 128,
    blocks: int = 2,
    out_width: int = 256,
    dropout: float = 0.0,
):
    """The BinaryFaceNet2 layout with its widths as arguments.

    Args:
        input_shape: ``(H, W, 3)``, H and W multiples of 16 (112 as designed).
        embedding_size: output size.
        stem_filters: channels of the float patchify stem (28x28 at 112 input).
        width: channels of the binary 14x14 stage.
        blocks: residual pairs (two binary convs each) at 14x14.
        out_width: channels of the stride-2 binary conv to 7x7 that feeds the head.
        dropout: rate of a Dropout layer before the FC.
    """
    h, w = int(input_shape[0]), int(input_shape[1])
    if h % 16 or w % 16:
        raise ValueError(f"BinaryFaceNet2 needs input sides that are multiples of 16 (112x112), got {(h, w)}")
    inputs = tf.keras.Input(shape=tuple(input_shape), name="face")
    # float stem: one 4x4/4 patchify conv, the cheapest way to 28x28 (XNNPACK ~0.33 instr/MAC); no
    # activation: its only consumer is a sign quantizer (a ReLU there would binarize everything to +1)
    x = tf.keras.layers.Conv2D(stem_filters, 4, strides=4, use_bias=False, kernel_initializer="he_normal",
                               name="stem_conv")(inputs)
    x = _bn("stem_bn")(x)
    # binary downsample 28 -> 14, float output (it is the first residual's identity)
    x = _bconv(width, strides=2, name="down1_conv")(x)
    x = _bn("down1_bn")(x)
    for i in range(blocks):
        x = _residual_pair(x, name=f"block{i + 1}_")
    # binary downsample 14 -> 7
    x = _bconv(out_width, strides=2, name="down2_conv")(x)
    x = _bn("down2_bn")(x)
    # head: global depthwise conv over the whole map, then the embedding FC
    x = tf.keras.layers.DepthwiseConv2D(tuple(x.shape[1:3]), padding="valid", use_bias=False,
                                        name=f"{HEAD_PREFIX}gdc")(x)
    x = _bn(f"{HEAD_PREFIX}gdc_bn")(x)
    x = tf.keras.layers.Flatten(name=f"{HEAD_PREFIX}flatten")(x)
    if dropout:
        x = tf.keras.layers.Dropout(dropout, name=f"{HEAD_PREFIX}dropout")(x)
    x = tf.keras.layers.Dense(embedding_size, name=f"{HEAD_PREFIX}fc")(x)
    outputs = _bn(f"{HEAD_PREFIX}bn_out", scale=False)(x)
    return tf.keras.Model(inputs, outputs)


@register_model(family="binaryfacenet2", binary=True, embedding_size=128)
def binaryfacenet2(*, input_shape, embedding_size, dropout: float = 0.0):
    """LCE-native face model for the A57: < 1 M parameters, < 1 MB, <= 7 M instructions (estimate)."""
    return build_binaryfacenet2(input_shape=input_shape, embedding_size=embedding_size, dropout=dropout)


@register_model(family="binaryfacenet2", binary=True, embedding_size=128)
def test_binaryfacenet2(*, input_shape, embedding_size, dropout: float = 0.0):
    """A narrow BinaryFaceNet2 for tests: same layers, 32/64 channels, one residual pair."""
    return build_binaryfacenet2(input_shape=input_shape, embedding_size=embedding_size, dropout=dropout,
                                stem_filters=16, width=32, blocks=1, out_width=64)
