"""Distillation losses between a student and a teacher embedding network.

* :func:`embedding_mse`: QuantFace's label-free loss (Boutros, Damer, Kuijper, arXiv:2206.10526),
  the mean squared error between the L2-normalised embeddings.
* :class:`EKDLoss`: Evaluation-oriented Knowledge Distillation (Huang, Wu, Xu, Ding, CVPR 2022,
  arXiv:2206.02325), in the form of Tencent/TFace ``recognition/tasks/ekd/distillation/ekd.py``.
"""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf

__all__ = ["embedding_mse", "soft_rank", "EKDLoss", "EKD_ANCHORS"]

#: Inverse false-positive rates at which EKD places its similarity thresholds (FPR 1e-1 ... 1e-6).
EKD_ANCHORS = (10, 100, 1000, 10000, 100000, 1000000)


def embedding_mse(student, teacher):
    """``mean((n(student) - n(teacher))^2)`` over all B x D elements, teacher without gradient.

    QuantFace (arXiv:2206.10526) fine-tunes a quantised student with
    ``MSELoss(normalize(student(x)), normalize(teacher(x)))`` and no labels.

    Args:
        student: (B, D) student embeddings (not necessarily normalised).
        teacher: (B, D) teacher embeddings of the same images.

    Returns:
        A float32 scalar.
    """
    s = tf.math.l2_normalize(tf.cast(student, tf.float32), axis=-1)
    t = tf.stop_gradient(tf.math.l2_normalize(tf.cast(teacher, tf.float32), axis=-1))
    return tf.reduce_mean(tf.square(s - t))


def soft_rank(similarities, thresholds, *, temperature: float = 0.01):
    """EKD's differentiable count of thresholds below each similarity.

    ``rank(x) = sum_k sigmoid((x - tau_k) / temperature)`` with the sigmoid's exponent clamped to
    [-50, 50], as TFace's temperature-controlled sigmoid.

    Args:
        similarities: (P,) similarities.
        thresholds: (K,) thresholds ``tau``.
        temperature: sigmoid temperature.

    Returns:
        (P,) soft ranks in [0, K].
    """
    distance = tf.expand_dims(similarities, 1) - tf.expand_dims(thresholds, 0)
    exponent = tf.clip_by_value(-distance / temperature, -50.0, 50.0)
    return tf.reduce_sum(1.0 / (1.0 + tf.exp(exponent)), axis=1)


def _mse_or_zero(a, b):
    count = tf.cast(tf.size(a), a.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(tf.square(a - b)), count)


@tf.keras.utils.register_keras_serializable(package="lcefr")
class EKDLoss(tf.keras.layers.Layer):
    """Evaluation-oriented Knowledge Distillation loss (Huang et al., CVPR 2022, arXiv:2206.02325).

    For student and teacher embeddings of one batch, with ``S = n(g_s) n(g_s)^T`` and
    ``T = n(g_t) n(g_t)^T`` (teacher without gradient) over the pairs ``i < j``, positives being
    pairs with equal labels and negatives the rest:

    1. thresholds: for each anchor ``a_k`` in ``anchors`` (inverse FPRs, default 10 ... 1e6),
       ``idx_k = len(neg) // a_k`` (0, the hardest negative, when the batch is small), and
       ``tau_s[k] <- momentum * sort_desc(S_neg)[idx_k] + (1 - momentum) * tau_s[k]``, likewise
       ``tau_t`` from ``T_neg``; both start at 0. This is the convention of TFace's ``ekd.py``
       (``self.s_anchor = self.momentum * s_neg_thresholds + (1 - self.momentum) *
       self.s_anchor`` with ``momentum = 0.01``): the *new* value has weight ``momentum``.
       The update happens before the loss is computed, and the loss uses the updated values;
    2. ``L_pos = MSE(rank(S_pos; tau_s), rank(T_pos; tau_t))`` with :func:`soft_rank`;
    3. ``L_neg`` = the same on the student's ``top_k`` hardest negatives (highest ``S_neg``)
       and the teacher's similarities of the same pairs;
    4. ``L = pos_weight * L_pos + neg_weight * L_neg`` (TFace: 0.02 and 0.01).

    A batch without positive pairs gives ``L_pos = 0`` (TFace would return NaN); without negative
    pairs, ``L_neg = 0`` and the thresholds are not updated. For label-free distillation, give
    two augmentations of an image the same label.

    TFace all-gathers the batch over GPUs before this loss; here the loss sees the batch it is
    given. The thresholds are non-trainable ``ON_READ``/``MEAN`` variables (as Keras'
    BatchNormalization statistics): each ``tf.distribute`` replica updates its own copy, and a
    cross-replica read (saving) gives their mean. ``training=False`` uses them without update.

    Args:
        anchors: inverse false-positive rates of the thresholds.
        temperature: sigmoid temperature of the soft rank (TFace ``t = 0.01``).
        momentum: weight of the current batch in the threshold EMA (TFace 0.01).
        top_k: number of hardest student negatives in ``L_neg`` (TFace 2000).
        pos_weight: weight of ``L_pos`` (TFace 0.02).
        neg_weight: weight of ``L_neg`` (TFace 0.01).
        warm_start: take the first batch's thresholds as they are (weight 1) instead of averaging
            them into zeros. TFace starts from 0 and needs about ``1 / momentum`` steps before the
            thresholds mean anything; a short fine-tuning (:mod:`lcefr.quantize`) has fewer steps than that.

    Call args:
        student: (B, D) student embeddings.
        teacher: (B, D) teacher embeddings of the same images.
        labels: (B,) integer identities.
        training: update the thresholds (default True: the loss is a training-time object).

    Returns:
        A float32 scalar loss.
    """

    def __init__(
        self,
        *,
        anchors: Sequence[int] = EKD_ANCHORS,
        temperature: float = 0.01,
        momentum: float = 0.01,
        top_k: int = 2000,
        pos_weight: float = 0.02,
        neg_weight: float = 0.01,
        warm_start: bool = False,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        anchors = tuple(anchors)
        if not anchors or any(isinstance(a, bool) or int(a) != a or a < 1 for a in anchors):
            raise ValueError(f"anchors must be a non-empty sequence of positive integers, got {anchors!r}")
        self.anchors = tuple(int(a) for a in anchors)
        if not float(temperature) > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        self.temperature = float(temperature)
        self.momentum = float(momentum)
        self.top_k = top_k
        self.pos_weight = float(pos_weight)
        self.neg_weight = float(neg_weight)
        self.warm_start = bool(warm_start)

    def build(self, input_shape):
        for name in ("student_thresholds", "teacher_thresholds"):
            setattr(
                self,
                name,
                self.add_weight(
                    name=name,
                    shape=(len(self.anchors),),
                    initializer="zeros",
                    trainable=False,
                    synchronization=tf.VariableSynchronization.ON_READ,
                    aggregation=tf.VariableAggregation.MEAN,
                ),
            )
        if self.warm_start:  # counts threshold updates, so the first one can take the batch as it is
            self.threshold_updates = self.add_weight(
                name="threshold_updates", shape=(), initializer="zeros", trainable=False,
                synchronization=tf.VariableSynchronization.ON_READ, aggregation=tf.VariableAggregation.MEAN)
        super().build(input_shape)

    def _update(self, variable, sorted_neg, count):
        idx = tf.math.floordiv(count, tf.constant(self.anchors, tf.int32))
        picked = tf.gather(tf.concat([sorted_neg, tf.zeros([1], sorted_neg.dtype)], 0), idx)
        momentum = tf.constant(self.momentum, tf.float32)
        if self.warm_start:
            momentum = tf.where(self.threshold_updates > 0, momentum, 1.0)
        value = momentum * picked + (1.0 - momentum) * variable
        value = tf.where(count > 0, value, tf.identity(variable))
        variable.assign(value)
        return value

    def call(self, student, teacher, labels, training=True):
        g_s = tf.math.l2_normalize(tf.cast(student, tf.float32), axis=1)
        g_t = tf.stop_gradient(tf.math.l2_normalize(tf.cast(teacher, tf.float32), axis=1))
        labels = tf.reshape(labels, [-1])
        sim_s = tf.matmul(g_s, g_s, transpose_b=True)
        sim_t = tf.matmul(g_t, g_t, transpose_b=True)

        ones = tf.ones_like(sim_s)
        upper = tf.cast(tf.linalg.band_part(ones, 0, -1) - tf.linalg.band_part(ones, 0, 0), tf.bool)
        same = tf.equal(tf.expand_dims(labels, 1), tf.expand_dims(labels, 0))
        pos = tf.logical_and(upper, same)
        neg = tf.logical_and(upper, tf.logical_not(same))
        s_pos, t_pos = tf.boolean_mask(sim_s, pos), tf.boolean_mask(sim_t, pos)
        s_neg, t_neg = tf.boolean_mask(sim_s, neg), tf.boolean_mask(sim_t, neg)

        order = tf.argsort(s_neg, direction="DESCENDING", stable=True)
        count = tf.size(s_neg)
        if training is None:
            training = True

        def updated():
            sorted_s = tf.stop_gradient(tf.gather(s_neg, order))
            sorted_t = tf.sort(t_neg, direction="DESCENDING")
            tau = (
                self._update(self.student_thresholds, sorted_s, count),
                self._update(self.teacher_thresholds, sorted_t, count),
            )
            if not self.warm_start:
                return tau
            with tf.control_dependencies(tau):
                self.threshold_updates.assign_add(tf.cast(count > 0, tf.float32))
            return tuple(tf.identity(t) for t in tau)

        def stored():
            return tf.identity(self.student_thresholds), tf.identity(self.teacher_thresholds)

        tau_s, tau_t = tf.__internal__.smart_cond.smart_cond(training, updated, stored)

        def rank_mse(s, t):
            return _mse_or_zero(
                soft_rank(s, tau_s, temperature=self.temperature),
                soft_rank(t, tau_t, temperature=self.temperature),
            )

        hardest = order[: self.top_k]
        loss_pos = rank_mse(s_pos, t_pos)
        loss_neg = rank_mse(tf.gather(s_neg, hardest), tf.gather(t_neg, hardest))
        return self.pos_weight * loss_pos + self.neg_weight * loss_neg

    def get_config(self):
        return {
            **super().get_config(),
            "anchors": list(self.anchors),
            "temperature": self.temperature,
            "momentum": self.momentum,
            "top_k": self.top_k,
            "pos_weight": self.pos_weight,
            "neg_weight": self.neg_weight,
            "warm_start": self.warm_start,
        }
