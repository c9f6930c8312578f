"""Margin softmax heads: insightface's combined margin (ArcFace, CosFace) and AdaFace.

Every head holds a class-centre kernel of shape ``(embedding_size, num_classes)``, normalises
its columns inside ``call`` and is called as ``head(embeddings, norms, labels, training=...)``
with L2-normalised ``embeddings`` (B, D), their pre-normalisation ``norms`` (B,) or (B, 1)
and integer ``labels`` (B,). The result is a (B, num_classes) tensor of logits for softmax
cross-entropy with ``from_logits=True``. A label outside ``[0, num_classes)`` gets no margin
(its one-hot row is empty).

The margins themselves are pure functions of the cosine matrix
(:func:`combined_margin_logits`, :func:`adaface_logits`), so they can be tested and
differentiated without a layer. Heads compute in float32 (``dtype="float32"`` unless given),
so a mixed-precision backbone still gets full-precision logits.

Papers: ArcFace (Deng et al., arXiv:1801.07698), CosFace (Wang et al., arXiv:1801.09414),
AdaFace (Kim, Jain, Liu, arXiv:2204.00964).
"""
from __future__ import annotations

import math
from typing import List

import tensorflow as tf

from lcefr.registry import Registry, UnknownNameError
from lcefr.vocab import HEAD_NAMES

__all__ = [
    "CombinedMargin",
    "ArcFace",
    "CosFace",
    "AdaFace",
    "combined_margin_logits",
    "adaface_logits",
    "HEADS",
    "make_head",
    "list_heads",
]

HEADS = Registry("head")


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_float(name: str, value, *, low: float, high: float = math.inf, low_open: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    below = number <= low if low_open else number < low
    if below or number > high or math.isnan(number):
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be in {bracket}{low}, {high}], got {value!r}")
    return number


def _target_mask(labels, num_classes: int):
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    return tf.one_hot(labels, num_classes, on_value=True, off_value=False, dtype=tf.bool)


def _target_cos(cos, mask):
    return tf.reduce_sum(tf.where(mask, cos, tf.zeros_like(cos)), axis=1, keepdims=True)


def combined_margin_logits(
    cos,
    labels,
    *,
    m1: float = 1.0,
    m2: float = 0.5,
    m3: float = 0.0,
    s: float = 64.0,
    eps: float = 1e-7,
    straight_through: bool = False,
):
    """insightface's combined margin on a cosine matrix (ArcFace arXiv:1801.07698, CosFace arXiv:1801.09414).

    The target logit is ``s * (cos(m1 * theta_y + m2) - m3)`` with ``theta_y = acos(clip(cos_y,
    -1 + eps, 1 - eps))``; every other logit is ``s * cos``. As in insightface, ``m1*theta + m2``
    is not clipped at pi (it wraps through the cosine). With ``m1 == 1`` and ``m2 == 0`` (CosFace)
    no arccos is taken: the target is ``cos_y - m3`` exactly.

    Gradient (reference/face.md 2.4): insightface computes ``arccos_``/``cos_`` in place under
    ``torch.no_grad()``, so autograd sees the margin as the identity and
    ``d logit_y / d cos_y = s`` (a straight-through margin). ``straight_through=True``
    reproduces that: the target logit is ``s * cos_y + stop_gradient(margin_logit - s * cos_y)``.
    The default, ``straight_through=False``, differentiates the margin exactly through ``acos``
    and ``cos``: ``d logit_y / d cos_y = s * m1 * sin(m1 theta + m2) / sin(theta)``, which is why
    the cosine is clipped away from +-1 first. The values are identical either way.

    Args:
        cos: (B, C) cosines between normalised embeddings and normalised class centres.
        labels: (B,) or (B, 1) integer class indices.
        m1, m2, m3: multiplicative angular, additive angular and additive cosine margins.
        s: logit scale.
        eps: clip of the cosine before ``acos``.
        straight_through: use insightface's identity gradient for the margin.

    Returns:
        (B, C) logits.
    """
    cos = tf.convert_to_tensor(cos)
    mask = _target_mask(labels, cos.shape[-1] if cos.shape[-1] is not None else tf.shape(cos)[-1])
    cos_y = _target_cos(cos, mask)
    if m1 == 1.0 and m2 == 0.0:
        target = cos_y - m3
    else:
        theta = tf.acos(tf.clip_by_value(cos_y, -1.0 + eps, 1.0 - eps))
        target = tf.cos(m1 * theta + m2) - m3
    if straight_through:
        target = cos_y + tf.stop_gradient(target - cos_y)
    return s * tf.where(mask, target, cos)


def adaface_logits(cos, norms, labels, *, mean, std, m: float = 0.4, h: float = 0.333, s: float = 64.0, eps: float = 1e-3):
    """AdaFace logits (arXiv:2204.00964) for given norm statistics, as the official ``head.py``.

    With ``c = clip(cos, -1 + eps, 1 - eps)``, ``n = stop_gradient(clip(norms, 0.001, 100))`` and
    ``g = clip(h * (n - mean) / (std + eps), -1, 1)`` per sample, the target logit is
    ``s * (cos(clip(acos(c_y) - m * g, eps, pi - eps)) - (m + m * g))`` and every other logit is
    ``s * c``. The gradient is the exact one through ``acos``/``cos`` (as the official code).

    Args:
        cos: (B, C) cosines.
        norms: (B,) or (B, 1) pre-normalisation embedding norms.
        labels: (B,) or (B, 1) integer class indices.
        mean, std: the norm statistics (the head's EMA ``batch_mean``/``batch_std``).
        m, h, s, eps: AdaFace margin, concentration, scale and clip epsilon.

    Returns:
        (B, C) logits.
    """
    cos = tf.clip_by_value(tf.convert_to_tensor(cos), -1.0 + eps, 1.0 - eps)
    n = _safe_norms(norms, cos.dtype)
    g = tf.clip_by_value((n - mean) / (std + eps) * h, -1.0, 1.0)
    mask = _target_mask(labels, cos.shape[-1] if cos.shape[-1] is not None else tf.shape(cos)[-1])
    theta = tf.acos(_target_cos(cos, mask))
    target = tf.cos(tf.clip_by_value(theta - m * g, eps, math.pi - eps)) - (m + m * g)
    return s * tf.where(mask, target, cos)


def _safe_norms(norms, dtype):
    n = tf.reshape(tf.cast(norms, dtype), [-1, 1])
    return tf.stop_gradient(tf.clip_by_value(n, 0.001, 100.0))


class _MarginHead(tf.keras.layers.Layer):
    """Shared part of the heads: the kernel, its column normalisation and the cosine matrix."""

    def __init__(self, num_classes: int, embedding_size: int, *, s: float = 64.0, kernel_initializer=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_classes = _check_positive_int("num_classes", num_classes)
        self.embedding_size = _check_positive_int("embedding_size", embedding_size)
        self.s = _check_float("s", s, low=0.0, low_open=True)
        if kernel_initializer is None:
            kernel_initializer = self._default_initializer()
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)

    @staticmethod
    def _default_initializer():
        return tf.keras.initializers.RandomNormal(stddev=0.01)

    def build(self, input_shape):
        last = tf.TensorShape(input_shape)[-1]
        if last is not None and last != self.embedding_size:
            raise ValueError(
                f"{type(self).__name__} expects embeddings of size {self.embedding_size}, "
                f"got input shape {tuple(tf.TensorShape(input_shape).as_list())}"
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.embedding_size, self.num_classes),
            initializer=self.kernel_initializer,
            trainable=True,
        )
        super().build(input_shape)

    def cosine(self, embeddings):
        """(B, C) cosines of already-normalised ``embeddings`` with the normalised kernel columns."""
        kernel = tf.math.l2_normalize(tf.cast(self.kernel, self.compute_dtype), axis=0)
        return tf.matmul(tf.cast(embeddings, self.compute_dtype), kernel)

    def _check_labels(self, labels):
        if labels is None:
            raise ValueError(f"{type(self).__name__} needs integer labels (B,), got None")

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "embedding_size": self.embedding_size,
            "s": self.s,
            "kernel_initializer": tf.keras.initializers.serialize(self.kernel_initializer),
        }


@tf.keras.utils.register_keras_serializable(package="lcefr")
class CombinedMargin(_MarginHead):
    """insightface ``CombinedMarginLoss`` head: target ``s*(cos(m1*theta + m2) - m3)``, others ``s*cos``.

    ArcFace (arXiv:1801.07698) is ``(1, 0.5, 0)``, CosFace (arXiv:1801.09414) ``(1, 0, 0.4)``;
    insightface hard-codes ``s = 64``. The margin is applied whenever labels are given (training
    or not); ``norms`` are accepted for a uniform call signature and ignored. See
    :func:`combined_margin_logits` for the gradient choice (``straight_through``).

    Args:
        num_classes: number of identities.
        embedding_size: embedding width D.
        m1, m2, m3: multiplicative angular, additive angular and additive cosine margins.
        s: logit scale.
        eps: clip of the cosine before ``acos``.
        straight_through: insightface's identity gradient for the margin (default: exact).
        kernel_initializer: initializer of the (D, C) kernel (default N(0, 0.01) as insightface).
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        *,
        m1: float = 1.0,
        m2: float = 0.5,
        m3: float = 0.0,
        s: float = 64.0,
        eps: float = 1e-7,
        straight_through: bool = False,
        kernel_initializer=None,
        **kwargs,
    ):
        super().__init__(num_classes, embedding_size, s=s, kernel_initializer=kernel_initializer, **kwargs)
        self.m1 = _check_float("m1", m1, low=0.0, low_open=True)
        self.m2 = _check_float("m2", m2, low=-math.pi, high=math.pi)
        self.m3 = _check_float("m3", m3, low=-2.0, high=2.0)
        self.eps = _check_float("eps", eps, low=0.0, high=0.5, low_open=True)
        if not isinstance(straight_through, bool):
            raise ValueError(f"straight_through must be a bool, got {straight_through!r}")
        self.straight_through = straight_through

    def call(self, embeddings, norms=None, labels=None, training=None):
        self._check_labels(labels)
        return combined_margin_logits(
            self.cosine(embeddings),
            labels,
            m1=self.m1,
            m2=self.m2,
            m3=self.m3,
            s=self.s,
            eps=self.eps,
            straight_through=self.straight_through,
        )

    def _margin_config(self):
        return {"m1": self.m1, "m2": self.m2, "m3": self.m3}

    def get_config(self):
        return {
            **super().get_config(),
            **self._margin_config(),
            "eps": self.eps,
            "straight_through": self.straight_through,
        }


@tf.keras.utils.register_keras_serializable(package="lcefr")
class ArcFace(CombinedMargin):
    """ArcFace head (Deng et al., arXiv:1801.07698): target logit ``s * cos(theta_y + m)``.

    The combined margin with ``(m1, m2, m3) = (1, m, 0)``; other arguments as :class:`CombinedMargin`.
    """

    def __init__(self, num_classes: int, embedding_size: int, *, m: float = 0.5, s: float = 64.0, **kwargs):
        super().__init__(num_classes, embedding_size, m1=1.0, m2=m, m3=0.0, s=s, **kwargs)
        self.m = self.m2

    def _margin_config(self):
        return {"m": self.m}


@tf.keras.utils.register_keras_serializable(package="lcefr")
class CosFace(CombinedMargin):
    """CosFace head (Wang et al., arXiv:1801.09414): target logit ``s * (cos theta_y - m)``.

    The combined margin with ``(m1, m2, m3) = (1, 0, m)``; its gradient is the ordinary one (no
    arccos is taken, so ``straight_through`` makes no difference).
    """

    def __init__(self, num_classes: int, embedding_size: int, *, m: float = 0.4, s: float = 64.0, **kwargs):
        super().__init__(num_classes, embedding_size, m1=1.0, m2=0.0, m3=m, s=s, **kwargs)
        self.m = self.m3

    def _margin_config(self):
        return {"m": self.m}


@tf.keras.utils.register_keras_serializable(package="lcefr")
class AdaFace(_MarginHead):
    """AdaFace head (Kim, Jain, Liu, arXiv:2204.00964), the equations of the official ``head.py``.

    The feature norm ``n = stop_gradient(clip(norms, 0.001, 100))`` is an image-quality proxy;
    its batch mean and unbiased (N-1) standard deviation are tracked by exponential moving
    averages ``mu <- t_alpha * mean(n) + (1 - t_alpha) * mu`` and
    ``sigma <- t_alpha * std(n) + (1 - t_alpha) * sigma`` (initial 20 and 100). In a training
    call the averages are updated first and the updated values are used; with
    ``training=False`` (or None) the stored values are used and nothing changes. The margin is
    then :func:`adaface_logits`. A batch of one sample (undefined N-1 std) leaves ``sigma``
    unchanged.

    ``batch_mean`` and ``batch_std`` are non-trainable weights, so they are saved and restored
    with the model. They are ``ON_READ`` variables with ``MEAN`` aggregation (as Keras'
    BatchNormalization moving statistics): under ``tf.distribute`` each replica updates its own
    copy from its local batch without cross-replica communication, and reading them outside
    the replica context (saving, ``get_weights``) gives the mean over replicas.

    Args:
        num_classes: number of identities.
        embedding_size: embedding width D.
        m: margin (recipe 0.4).
        h: concentration of the norm-dependent margin scaler (recipe 0.333).
        s: logit scale.
        t_alpha: EMA weight of the current batch (recipe 0.01; the class default upstream is 1.0).
        eps: cosine clip and std epsilon.
        kernel_initializer: initializer of the (D, C) kernel (default uniform(-1, 1); the
            columns are normalised in ``call``, so only directions matter).
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        *,
        m: float = 0.4,
        h: float = 0.333,
        s: float = 64.0,
        t_alpha: float = 0.01,
        eps: float = 1e-3,
        kernel_initializer=None,
        **kwargs,
    ):
        super().__init__(num_classes, embedding_size, s=s, kernel_initializer=kernel_initializer, **kwargs)
        self.m = _check_float("m", m, low=0.0, high=math.pi)
        self.h = _check_float("h", h, low=0.0)
        self.t_alpha = _check_float("t_alpha", t_alpha, low=0.0, high=1.0)
        self.eps = _check_float("eps", eps, low=0.0, high=0.5, low_open=True)

    @staticmethod
    def _default_initializer():
        return tf.keras.initializers.RandomUniform(-1.0, 1.0)

    def build(self, input_shape):
        for name, value in (("batch_mean", 20.0), ("batch_std", 100.0)):
            setattr(
                self,
                name,
                self.add_weight(
                    name=name,
                    shape=(),
                    initializer=tf.keras.initializers.Constant(value),
                    trainable=False,
                    synchronization=tf.VariableSynchronization.ON_READ,
                    aggregation=tf.VariableAggregation.MEAN,
                ),
            )
        super().build(input_shape)

    def _updated_stats(self, n):
        count = tf.shape(n)[0]
        mean = tf.reduce_mean(n)
        dof = tf.cast(tf.maximum(count - 1, 1), n.dtype)
        std = tf.sqrt(tf.reduce_sum(tf.square(n - mean)) / dof)
        mu = self.t_alpha * mean + (1.0 - self.t_alpha) * self.batch_mean
        sigma = self.t_alpha * std + (1.0 - self.t_alpha) * self.batch_std
        sigma = tf.where(count > 1, sigma, tf.identity(self.batch_std))
        self.batch_mean.assign(mu)
        self.batch_std.assign(sigma)
        return mu, sigma

    def _stored_stats(self):
        return tf.identity(self.batch_mean), tf.identity(self.batch_std)

    def call(self, embeddings, norms=None, labels=None, training=None):
        self._check_labels(labels)
        if norms is None:
            raise ValueError("AdaFace needs the pre-normalisation embedding norms (B,) or (B, 1), got None")
        cos = self.cosine(embeddings)
        n = _safe_norms(norms, cos.dtype)
        if training is None:
            training = False
        mu, sigma = tf.__internal__.smart_cond.smart_cond(
            training, lambda: self._updated_stats(n), self._stored_stats
        )
        return adaface_logits(cos, n, labels, mean=mu, std=sigma, m=self.m, h=self.h, s=self.s, eps=self.eps)

    def get_config(self):
        return {
            **super().get_config(),
            "m": self.m,
            "h": self.h,
            "t_alpha": self.t_alpha,
            "eps": self.eps,
        }


for _name, _cls in zip(HEAD_NAMES, (ArcFace, CosFace, AdaFace)):
    HEADS.register(_cls, name=_name)


def list_heads(pattern: str = "*") -> List[str]:
    """Names accepted by :func:`make_head`, optionally filtered by a glob ``pattern``."""
    return HEADS.list(pattern)


def make_head(name: str, *, num_classes: int, embedding_size: int, **kwargs) -> tf.keras.layers.Layer:
    """Build the margin head registered as ``name`` ('arcface', 'cosface', 'adaface').

    Raises:
        ValueError: ``name`` is not registered; the message lists the known names.
    """
    try:
        cls = HEADS.get(name)
    except UnknownNameError as error:
        raise ValueError(str(error)) from None
    return cls(num_classes, embedding_size, **kwargs)
