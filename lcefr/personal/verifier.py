"""The tiny personal verifier ``f(x; theta)`` of seed 003 ("Efficient Verification-Based Face
Identification", Rozner et al.): group convolutions (depthwise 3x3 and grouped 1x1) with parameter-free
normalisation.

``theta`` is one flat vector per enrolled person. The same architecture exists twice:

* :func:`score_logits`, the *tensorised* functional form used for training: ``nNet`` weight vectors and
  ``nImg`` faces give an ``(nNet, nImg)`` matrix of logits in one pass. The networks are folded into the
  channel axis, so every layer of every network runs as one grouped convolution (no loop over networks).
* :func:`build_verifier`, a standalone Keras model holding one ``theta`` (for export to ``.tflite``).

Inputs are preprocessed faces ``(x - 127.5) / 127.5`` of shape ``(N, 112, 112, 3)``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Tuple

import numpy as np

__all__ = ["VerifierSpec", "param_layout", "count_params", "count_macs", "score_logits", "build_verifier",
           "initial_theta", "ParamFreeNorm", "NORM_EPS"]

NORM_EPS = 1e-3


@dataclass(frozen=True)
class VerifierSpec:
    """Architecture of ``f``: an average pool, convolutions ``(filters, kernel, stride, groups)``, then
    global average pooling, a hidden dense layer with ReLU and one output logit.

    The first convolution is a plain one on the pooled face; the others are either depthwise
    (``groups == filters == input channels``, no bias, no activation) or grouped 1x1 convolutions, each
    followed by parameter-free instance normalisation and ReLU (as is the first).
    """

    input_size: int = 112
    pool: int = 4
    convs: Tuple[Tuple[int, int, int, int], ...] = (
        (24, 3, 2, 1),
        (24, 3, 1, 24), (48, 1, 1, 2),
        (48, 3, 2, 48), (64, 1, 1, 2),
        (64, 3, 1, 64), (96, 1, 1, 4),
        (96, 3, 2, 96), (128, 1, 1, 4),
        (128, 3, 1, 128), (128, 1, 1, 8),
    )
    hidden: int = 64
    extra: Dict = field(default_factory=dict, compare=False)

    def validate(self) -> "VerifierSpec":
        if self.input_size % self.pool:
            raise ValueError(f"input_size {self.input_size} is not divisible by pool {self.pool}")
        cin = 3
        for i, (filters, kernel, stride, groups) in enumerate(self.convs):
            if cin % groups or filters % groups:
                raise ValueError(f"groups {groups} must divide input channels {cin} and filters {filters}")
            if kernel < 1 or stride < 1:
                raise ValueError(f"kernel and stride must be >= 1, got {kernel}, {stride}")
            if i > 0 and not (_depthwise(cin, filters, groups) or (kernel == 1 and stride == 1)):
                raise ValueError(f"layer {i}: after the first convolution only depthwise or 1x1 grouped convolutions "
                                 f"are supported, got filters={filters} kernel={kernel} stride={stride} groups={groups}")
            cin = filters
        return self

    def to_dict(self) -> Dict:
        d = asdict(self)
        d.pop("extra")
        d["convs"] = [list(c) for c in self.convs]
        return d

    @classmethod
    def from_dict(cls, d: Dict) -> "VerifierSpec":
        d = dict(d)
        d["convs"] = tuple(tuple(int(v) for v in c) for c in d.get("convs", cls.convs))
        return cls(**d).validate()

    def feature_size(self) -> int:
        return self.convs[-1][0]


def _depthwise(cin: int, filters: int, groups: int) -> bool:
    return groups == cin == filters and groups > 1


def _sizes(spec: VerifierSpec) -> List[int]:
    """Spatial side after the pool and after every convolution (``same`` padding)."""
    side = spec.input_size // spec.pool
    out = [side]
    for _, _, stride, _ in spec.convs:
        side = -(-side // stride)
        out.append(side)
    return out


def param_layout(spec: VerifierSpec) -> List[Tuple[str, Tuple[int, ...]]]:
    """``(name, shape)`` of every weight in the order they sit in ``theta`` (Keras kernel layouts)."""
    layout = []
    cin = 3
    for i, (filters, kernel, _, groups) in enumerate(spec.convs):
        if i > 0 and _depthwise(cin, filters, groups):
            layout.append((f"conv{i}/depthwise_kernel", (kernel, kernel, cin, 1)))
        else:
            layout += [(f"conv{i}/kernel", (kernel, kernel, cin // groups, filters)), (f"conv{i}/bias", (filters,))]
        cin = filters
    layout += [("hidden/kernel", (cin, spec.hidden)), ("hidden/bias", (spec.hidden,)),
               ("out/kernel", (spec.hidden, 1)), ("out/bias", (1,))]
    return layout


def count_params(spec: VerifierSpec) -> int:
    return int(sum(np.prod(shape) for _, shape in param_layout(spec)))


def count_macs(spec: VerifierSpec) -> int:
    """Multiply-accumulates of one forward pass (convolutions and dense layers; pooling and norms excluded)."""
    sizes = _sizes(spec)
    macs = 0
    cin = 3
    for (filters, kernel, _, groups), side in zip(spec.convs, sizes[1:]):
        macs += side * side * kernel * kernel * (cin // groups) * filters
        cin = filters
    return int(macs + cin * spec.hidden + spec.hidden)


def initial_theta(spec: VerifierSpec, rng: np.random.Generator) -> np.ndarray:
    """He-normal kernels and zero biases, flattened: the starting point of the generated weights."""
    parts = []
    for name, shape in param_layout(spec):
        if name.endswith("bias"):
            parts.append(np.zeros(shape, np.float32))
        else:
            fan_in = int(shape[0] * shape[1]) if name.endswith("depthwise_kernel") else int(np.prod(shape[:-1]))
            parts.append(rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32))
    return np.concatenate([p.ravel() for p in parts])


def _split(theta, spec: VerifierSpec):
    """``theta`` (nNet, P) -> dict of (nNet, *shape) tensors."""
    import tensorflow as tf

    out = {}
    offset = 0
    for name, shape in param_layout(spec):
        size = int(np.prod(shape))
        out[name] = tf.reshape(theta[:, offset:offset + size], (-1,) + tuple(shape))
        offset += size
    return out


def _instance_norm(x, eps: float = NORM_EPS):
    import tensorflow as tf

    mean, var = tf.nn.moments(x, axes=[1, 2], keepdims=True)
    return (x - mean) * tf.math.rsqrt(var + eps)


def score_logits(images, theta, spec: VerifierSpec):
    """Logits of every generated network on every face: ``(nNet, nImg)``, tensorised.

    Args:
        images: preprocessed faces ``(nImg, 112, 112, 3)``.
        theta: weight vectors ``(nNet, P)`` laid out as :func:`param_layout`.
        spec: the architecture.
    """
    import tensorflow as tf

    theta = tf.convert_to_tensor(theta, tf.float32)
    x = tf.convert_to_tensor(images, tf.float32)
    n_net = tf.shape(theta)[0]
    w = _split(theta, spec)
    if spec.pool > 1:
        x = tf.nn.avg_pool2d(x, spec.pool, spec.pool, "VALID")
    cin = 3
    for i, (filters, kernel, stride, groups) in enumerate(spec.convs):
        # activations stay folded as (nImg, H, W, nNet * channels): network n owns channels n*C .. n*C + C-1
        if i == 0:  # the shared input: one plain convolution with the kernels of all networks side by side
            k = tf.reshape(tf.transpose(w["conv0/kernel"], [1, 2, 3, 0, 4]), [kernel, kernel, cin, n_net * filters])
            x = tf.nn.conv2d(x, k, stride, "SAME") + tf.reshape(w["conv0/bias"], [-1])
        elif _depthwise(cin, filters, groups):  # one depthwise convolution over nNet * C channels
            k = tf.reshape(tf.transpose(w[f"conv{i}/depthwise_kernel"], [1, 2, 0, 3, 4]),
                           [kernel, kernel, n_net * cin, 1])
            x = tf.nn.depthwise_conv2d(x, k, [1, stride, stride, 1], "SAME")
            cin = filters
            continue
        else:  # grouped 1x1: a batched matrix product over (network, group)
            shape = tf.shape(x)
            xg = tf.reshape(x, [shape[0], shape[1], shape[2], n_net, groups, cin // groups])
            k = tf.reshape(w[f"conv{i}/kernel"], [n_net, cin // groups, groups, filters // groups])
            x = tf.einsum("ihwngc,ncgo->ihwngo", xg, k)
            x = tf.reshape(x, [shape[0], shape[1], shape[2], n_net * filters]) + tf.reshape(w[f"conv{i}/bias"], [-1])
        x = tf.nn.relu(_instance_norm(x))
        cin = filters
    n_img = tf.shape(x)[0]
    feat = tf.reshape(tf.reduce_mean(x, axis=[1, 2]), [n_img, n_net, spec.feature_size()])
    h = tf.nn.relu(tf.einsum("inc,ncd->ind", feat, w["hidden/kernel"]) + w["hidden/bias"][None])
    logits = tf.einsum("ind,ndo->ino", h, w["out/kernel"])[..., 0] + w["out/bias"][None, :, 0]
    return tf.transpose(logits)


def _norm_layer_class():
    import tf_keras as keras

    @keras.utils.register_keras_serializable(package="lcefr")
    class ParamFreeNorm(keras.layers.Layer):
        """Instance normalisation without scale or offset: each channel standardised over height and width."""

        def __init__(self, epsilon: float = NORM_EPS, **kwargs):
            super().__init__(**kwargs)
            self.epsilon = float(epsilon)

        def call(self, x):
            return _instance_norm(x, self.epsilon)

        def get_config(self):
            return {**super().get_config(), "epsilon": self.epsilon}

    return ParamFreeNorm


_NORM = None


def ParamFreeNorm(*args, **kwargs):  # noqa: N802 (a layer class, built lazily so importing stays cheap)
    global _NORM
    if _NORM is None:
        _NORM = _norm_layer_class()
    return _NORM(*args, **kwargs)


def build_verifier(theta: np.ndarray, spec: VerifierSpec, *, name: str = "personal_verifier", logits: bool = False):
    """A standalone Keras ``f`` holding ``theta``: preprocessed faces ``(N, 112, 112, 3)`` -> probability ``(N, 1)``.

    With ``logits=True`` the last sigmoid is left out (for parity tests against :func:`score_logits`).
    """
    import tf_keras as keras

    theta = np.asarray(theta, np.float32).reshape(-1)
    if theta.size != count_params(spec):
        raise ValueError(f"Expected theta with {count_params(spec)} values for this verifier, got {theta.size}")
    inp = keras.Input((spec.input_size, spec.input_size, 3), name="face")
    x = keras.layers.AveragePooling2D(spec.pool, name="pool")(inp) if spec.pool > 1 else inp
    cin = 3
    for i, (filters, kernel, stride, groups) in enumerate(spec.convs):
        if i > 0 and _depthwise(cin, filters, groups):
            x = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"conv{i}")(x)
        else:
            x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", groups=groups, name=f"conv{i}")(x)
            x = ParamFreeNorm(name=f"norm{i}")(x)
            x = keras.layers.ReLU(name=f"relu{i}")(x)
        cin = filters
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(spec.hidden, activation="relu", name="hidden")(x)
    x = keras.layers.Dense(1, activation=None if logits else "sigmoid", name="out")(x)
    model = keras.Model(inp, x, name=name)
    weights, offset = [], 0
    for _, shape in param_layout(spec):
        size = int(np.prod(shape))
        weights.append(theta[offset:offset + size].reshape(shape))
        offset += size
    model.set_weights(weights)
    return model
