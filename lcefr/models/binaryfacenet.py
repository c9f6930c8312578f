"""BinaryFaceNet (Luevano et al., "BinaryFaceNet: A Binarized Approach for Real-Time Very Low
Resolution Face Recognition in Video Surveillance Scenarios", HAL hal-04393666), as published.

A 112x112x3 face goes through a full-precision 1x1 stem, a squeeze-and-excitation block whose
squeeze is a stack of strided binary convolutions (no pooling), a binary 3x3 stride-2
downsample, one global feature block (binary 1x1 and binary depthwise 1x1 convolutions with
residual adds), two local feature blocks (binary 3x3 stride 2, binary separable 1x1 and 1x1
convolutions with residual adds) and a full-precision convolutional embedding (14 -> 4 -> 1)
giving a 128-D vector. Every binary layer uses larq's ``DoReFa(k_bit=1, mode="weights")`` as
input and weight quantizer with ``weight_clip``.

The layout is not LCE-native: DoReFa is not lowered to LCE binary ops, the grouped binary
convolutions have 16 input channels per group (LCE needs multiples of 32), binary depthwise
and separable convolutions have no LCE kernel, and PReLUs sit between binary layers.

Where the description leaves a choice, the one matching the published totals is taken
(larq's profile at 112x112: 505,928 parameters, 184.99M binary and 3.85M float MACs, 1.32 MiB;
the paper: 506K, 184.9M, 3.8M, 1.3 MB): only the first binary 1x1 convolution of the global
feature block has a bias, the second has none; the binary depthwise and separable
convolutions keep Keras' default bias; the 1x1xE output of the last embedding convolution is
flattened with ``Flatten`` (no pooling, no extra layer).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import larq as lq
import tensorflow as tf

from lcefr.layers import HEAD_PREFIX
from lcefr.models import register_model

__all__ = ["binaryfacenet", "binaryfacenet_lce", "test_binaryfacenet", "test_binaryfacenet_lce", "build_binaryfacenet", "Binarization"]


def _prelu(name: Optional[str] = None):
    return tf.keras.layers.PReLU(
        alpha_initializer=tf.keras.initializers.Constant(0.25), shared_axes=[1, 2], name=name
    )


def _bn(name: Optional[str] = None):
    return tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


@dataclass(frozen=True)
class Binarization:
    """How binary layers are built: as published (DoReFa, 16-channel groups, binary depthwise and
    separable convs) or LCE-native (sign quantizers, one-padding, 32k channels per group, binary
    depthwise/separable 1x1 convs replaced by grouped/full binary 1x1 convs)."""

    lce: bool = False

    def quantizer(self):
        if self.lce:
            return lq.quantizers.SteSign(clip_value=1.0)
        return lq.quantizers.DoReFa(k_bit=1, mode="weights")

    def groups(self, channels: int, groups: int) -> int:
        if not self.lce:
            return groups
        return max(1, min(groups, channels // 32))

    def conv(self, filters: int, kernel: int, *, channels: int, strides: int = 1, padding: str = "same",
             groups: int = 1, use_bias: bool = False, name: str):
        """Binary QuantConv2D, weights clipped to [-1, 1]."""
        extra = {"pad_values": 1.0} if self.lce and padding == "same" else {}
        return lq.layers.QuantConv2D(
            filters,
            kernel,
            strides=strides,
            padding=padding,
            groups=self.groups(channels, groups),
            use_bias=use_bias,
            input_quantizer=self.quantizer(),
            kernel_quantizer=self.quantizer(),
            kernel_constraint="weight_clip",
            name=name,
            **extra,
        )

    def depthwise(self, channels: int, *, name: str):
        """Binary 1x1 depthwise conv with bias (LCE-native: a grouped binary 1x1 conv with bias)."""
        if self.lce:
            return self.conv(channels, 1, channels=channels, groups=channels, use_bias=True, name=name)
        return lq.layers.QuantDepthwiseConv2D(
            1,
            padding="same",
            input_quantizer=self.quantizer(),
            depthwise_quantizer=self.quantizer(),
            depthwise_constraint="weight_clip",
            bias_constraint="weight_clip",
            name=name,
        )

    def separable(self, filters: int, *, channels: int, name: str):
        """Binary 1x1 separable conv with bias (LCE-native: one binary 1x1 conv with bias)."""
        if self.lce:
            return self.conv(filters, 1, channels=channels, use_bias=True, name=name)
        return lq.layers.QuantSeparableConv2D(
            filters,
            1,
            padding="same",
            input_quantizer=self.quantizer(),
            depthwise_quantizer=self.quantizer(),
            pointwise_quantizer=self.quantizer(),
            depthwise_constraint="weight_clip",
            pointwise_constraint="weight_clip",
            name=name,
        )


def fp_block(x, filters: int, kernel: int, *, strides: int = 1, padding: str = "same", groups: int = 1, name: str):
    """``fp``: full-precision Conv2D (no bias) -> BatchNorm -> PReLU."""
    x = tf.keras.layers.Conv2D(
        filters, kernel, strides=strides, padding=padding, groups=groups, use_bias=False, name=f"{name}conv"
    )(x)
    return _prelu(f"{name}prelu")(_bn(f"{name}bn")(x))


def bin_block(x, q: Binarization, filters: int, kernel: int, *, strides: int = 1, padding: str = "same",
              groups: int = 1, act: bool = True, name: str):
    """``bin``: binary QuantConv2D (no bias) -> BatchNorm -> PReLU (unless ``act`` is off)."""
    x = q.conv(filters, kernel, channels=x.shape[-1], strides=strides, padding=padding, groups=groups,
               name=f"{name}conv")(x)
    x = _bn(f"{name}bn")(x)
    return _prelu(f"{name}prelu")(x) if act else x


def se_block(x, q: Binarization, *, name: str = "se_"):
    """Squeeze-and-excitation whose squeeze is four strided binary convolutions (112 -> 54 -> 18 -> 5 -> 1)."""
    filters = x.shape[-1]
    s = bin_block(x, q, filters, 5, strides=2, padding="valid", groups=4, name=f"{name}squeeze1_")
    s = bin_block(s, q, filters, 3, strides=3, padding="valid", groups=4, name=f"{name}squeeze2_")
    s = bin_block(s, q, filters, 1, strides=4, padding="valid", groups=2, name=f"{name}squeeze3_")
    s = bin_block(s, q, filters, 1, strides=5, padding="valid", name=f"{name}squeeze4_")
    s = tf.keras.layers.Reshape((1, 1, filters), name=f"{name}reshape")(s)
    s = tf.keras.layers.Conv2D(max(1, filters // 16), 1, name=f"{name}reduce")(s)
    s = _prelu(f"{name}reduce_prelu")(s)
    s = tf.keras.layers.Conv2D(filters, 1, activation="sigmoid", name=f"{name}expand")(s)
    return tf.keras.layers.Multiply(name=f"{name}scale")([x, s])


def global_feature_block(x, q: Binarization, *, name: str = "gfe_"):
    """Binary 1x1 convolutions and binary depthwise 1x1 convolutions with alternating residual adds."""
    filters = x.shape[-1]
    a = q.conv(filters, 1, channels=filters, use_bias=True, name=f"{name}a_conv")(x)
    a = _prelu(f"{name}a_prelu")(a)
    b = q.depthwise(filters, name=f"{name}b_dw")(a)
    c = _prelu(f"{name}c_prelu")(tf.keras.layers.Add(name=f"{name}c_add")([x, b]))
    d = q.conv(filters, 1, channels=filters, name=f"{name}d_conv")(c)
    e = _prelu(f"{name}e_prelu")(tf.keras.layers.Add(name=f"{name}e_add")([d, a]))
    f = q.depthwise(filters, name=f"{name}f_dw")(e)
    return _prelu(f"{name}out_prelu")(tf.keras.layers.Add(name=f"{name}out_add")([e, f, x]))


def local_feature_block(x, q: Binarization, filters: int, *, name: str):
    """Binary 3x3 stride-2 convolution, binary separable and 1x1 convolutions with residual adds."""
    a = bin_block(x, q, filters, 3, strides=2, name=f"{name}a_")
    b = _prelu(f"{name}b_prelu")(q.separable(filters, channels=filters, name=f"{name}b_sep")(a))
    c = bin_block(b, q, filters, 1, padding="valid", act=False, name=f"{name}c_")
    d = _prelu(f"{name}d_prelu")(tf.keras.layers.Add(name=f"{name}d_add")([a, c]))
    e = bin_block(d, q, filters, 1, padding="valid", name=f"{name}e_")
    f = q.separable(filters, channels=filters, name=f"{name}f_sep")(e)
    return _prelu(f"{name}out_prelu")(tf.keras.layers.Add(name=f"{name}out_add")([b, f]))


def embedding(x, *, filters: int, embedding_size: int, dropout: float = 0.0, name: str = HEAD_PREFIX):
    """Full-precision ``fp(filters, 3x3, s3, valid)`` -> ``fp(embedding_size, 4x4, s1, valid)`` -> flatten.

    A positive ``dropout`` inserts a Dropout layer before the first convolution (not published).
    """
    if dropout:
        x = tf.keras.layers.Dropout(dropout, name=f"{name}dropout")(x)
    x = fp_block(x, filters, 3, strides=3, padding="valid", name=f"{name}conv1_")
    x = fp_block(x, embedding_size, 4, padding="valid", name=f"{name}conv2_")
    return tf.keras.layers.Flatten(name=f"{name}flatten")(x)


def _valid(size: int, kernel: int, strides: int) -> int:
    return (size - kernel) // strides + 1 if size >= kernel else 0


def _check_input_size(input_shape, local_blocks: int) -> None:
    """The fixed strides must bring the SE squeeze and the embedding to exactly 1x1."""
    for size in input_shape[:2]:
        squeeze = size
        for kernel, strides in ((5, 2), (3, 3), (1, 4), (1, 5)):
            squeeze = _valid(squeeze, kernel, strides)
        head = -(-size // 2 ** (local_blocks + 1))
        head = _valid(_valid(head, 3, 3), 4, 1)
        if squeeze != 1 or head != 1:
            raise ValueError(
                f"BinaryFaceNet's fixed strides reduce {tuple(input_shape[:2])} to {squeeze}x{squeeze} in the SE "
                f"squeeze and {head}x{head} in the embedding instead of 1x1; use a 112x112 input"
            )


def build_binaryfacenet(
    *,
    input_shape,
    embedding_size: int,
    filters: int = 64,
    local_blocks: int = 2,
    embedding_filters: int = 128,
    dropout: float = 0.0,
    lce: bool = False,
):
    """The BinaryFaceNet layout with its widths as arguments.

    Args:
        input_shape: ``(112, 112, 3)``; with the published two local blocks only sides of 89 to
            112 pixels bring the SE squeeze and the embedding to 1x1.
        embedding_size: channels of the last embedding convolution, i.e. the output size.
        filters: width of every backbone layer (64 as published; a multiple of 4 for the groups).
        local_blocks: number of local feature blocks, each halving the resolution (2 as published).
        embedding_filters: channels of the first embedding convolution (128 as published).
        dropout: rate of a Dropout layer in front of the embedding convolutions; the published
            model has none (0).
        lce: build the LCE-native variant (see :class:`Binarization`).

    Raises:
        ValueError: the input size does not reduce to 1x1 where the layout needs it.
    """
    if filters % 4:
        raise ValueError(f"filters must be a multiple of 4 (grouped convolutions), got {filters}")
    _check_input_size(tuple(input_shape), local_blocks)
    inputs = tf.keras.Input(shape=tuple(input_shape), name="face")
    q = Binarization(lce=lce)
    x = fp_block(inputs, filters, 1, name="stem_")
    x = se_block(x, q)
    x = bin_block(x, q, filters, 3, strides=2, groups=4, name="down_")
    x = global_feature_block(x, q)
    for i in range(local_blocks):
        x = local_feature_block(x, q, filters, name=f"lfe{i + 1}_")
    outputs = embedding(x, filters=embedding_filters, embedding_size=embedding_size, dropout=dropout)
    return tf.keras.Model(inputs, outputs)


@register_model(family="binaryfacenet", binary=True, embedding_size=128, lce_native=False, exact_probe=False)
def binaryfacenet(*, input_shape, embedding_size, dropout: float = 0.0):
    """BinaryFaceNet as published: about 508K parameters, 185.0M binary and 3.85M float MACs at 112x112."""
    return build_binaryfacenet(input_shape=input_shape, embedding_size=embedding_size, dropout=dropout)


@register_model(family="binaryfacenet", binary=True, embedding_size=128, lce_native=False, exact_probe=False)
def test_binaryfacenet(*, input_shape, embedding_size, dropout: float = 0.0):
    """A narrow BinaryFaceNet for tests: same layers, 16 channels, 32-channel first embedding conv."""
    return build_binaryfacenet(
        input_shape=input_shape,
        embedding_size=embedding_size,
        dropout=dropout,
        filters=16,
        embedding_filters=32,
    )


@register_model(family="binaryfacenet", binary=True, embedding_size=128, exact_probe=False)
def binaryfacenet_lce(*, input_shape, embedding_size, dropout: float = 0.0):
    """BinaryFaceNet's layout and size class with every binary layer lowering to LceBconv2d.

    Sign quantizers instead of DoReFa, one-padding, groups of 32 input channels (2 instead of 4
    or 2 groups at 64 channels), the binary depthwise 1x1 convs as 2-group binary 1x1 convs and
    the binary separable 1x1 convs as binary 1x1 convs, all with bias.
    """
    return build_binaryfacenet(input_shape=input_shape, embedding_size=embedding_size, dropout=dropout, lce=True)


@register_model(family="binaryfacenet", binary=True, embedding_size=128, exact_probe=False)
def test_binaryfacenet_lce(*, input_shape, embedding_size, dropout: float = 0.0):
    """A narrow LCE-native BinaryFaceNet for tests (32 channels)."""
    return build_binaryfacenet(
        input_shape=input_shape, embedding_size=embedding_size, dropout=dropout, filters=32, embedding_filters=32, lce=True
    )
