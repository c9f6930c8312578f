"""Turn a SOURCE (registry name or saved model file) into a Keras model ready to convert."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
import tensorflow as tf

from lcefr.eval.parity import PARITY_PROBES, probe_inputs
from lcefr.keras_graph import CUSTOM_OBJECTS, is_sign_quantizer, iter_layers
from lcefr.layers import AdaBinConv2D
from lcefr.models import create_model, list_models, model_info

__all__ = ["Source", "load_source", "randomize_batchnorm"]


@dataclass
class Source:
    model: object
    name: str
    lce_native: bool
    from_registry: bool
    random_init: bool = False


def _has_threshold_ties(model) -> bool:
    """DoReFa resolves an exact 0 differently from a 1-ulp neighbour, see randomize_batchnorm."""
    import larq as lq

    return any(
        isinstance(getattr(layer, attr, None), lq.quantizers.DoReFa)
        for layer in iter_layers(model)
        for attr in ("input_quantizer", "kernel_quantizer", "depthwise_quantizer", "pointwise_quantizer")
    )


def randomize_batchnorm(model, seed: int = 0, *, passes: int = 2, exact: bool = True) -> None:
    """Give a freshly initialised model trained-looking inference constants for parity probes.

    A fresh BatchNorm is the identity, so binary convolutions pass raw integer counts (and exact
    zeros) to the next binarizer. ``exact=True`` (sign binarizers) keeps BatchNorm's scale at 1
    (``gamma = 1``, ``moving_variance = 1 - eps``) and gives it an offset that is an odd multiple
    of 1/16, and zero-initialised biases odd multiples of 1/64: an integer count then never lands
    exactly on a sign threshold, Keras computes these layers exactly, and TFLite's BatchNorm
    folding, one ulp off (measured), cannot move a value across zero. (Continuous random
    statistics make the two runtimes round differently everywhere, and a binary network turns
    one flipped sign into a different embedding: the check would measure float rounding instead
    of the conversion.)

    ``exact=False`` draws continuous offsets and scales every BatchNorm by the power of two
    nearest its input's standard deviation on generated faces, for models whose binarizers read
    sums of parallel branches (BinaryFaceNet): there dyadic values cancel to an exact 0, where
    TFLite's one-ulp BatchNorm leaves 1e-7 of either sign, and unscaled counts saturate its
    squeeze-excitation sigmoid.
    """
    rng = np.random.default_rng(seed)
    for layer in iter_layers(model):
        bias = getattr(layer, "bias", None)
        if bias is not None and not isinstance(layer, tf.keras.layers.BatchNormalization) and not np.any(bias.numpy()):
            shape = tuple(bias.shape)
            magnitude = (2 * rng.integers(0, 8, shape) + 1) / 64 if exact else rng.uniform(0.01, 0.1, shape)
            bias.assign((magnitude * rng.choice([-1, 1], shape)).astype(np.float32))
    _randomize_adabin(model, rng)
    norms = [l for l in iter_layers(model) if isinstance(l, tf.keras.layers.BatchNormalization)]
    if not norms:
        return
    faces = probe_inputs(tuple(model.input_shape[1:]), n=8, seed=seed + 1000)
    probe = tf.keras.Model(model.inputs, [bn.input for bn in norms])
    branch = {id(bn) for bn in norms if _follows_adabin_conv(bn)}
    for _ in range(passes):
        activations = probe(faces, training=False)
        activations = activations if isinstance(activations, (list, tuple)) else [activations]
        for bn, act in zip(norms, activations):
            _set_dyadic_statistics(bn, np.asarray(act, np.float64), rng, exact,
                                   shrink=BRANCH_SHRINK if id(bn) in branch else 0)
    if exact:
        keep_signs_off_thresholds(model, rng)


#: Smallest distance, in standard deviations of its channel, between a sign input and its
#: threshold on the parity probes (see keep_signs_off_thresholds). Float rounding differences
#: between runtimes are about 1e-7 of the summed magnitudes (a few 1e-6 of a channel's spread).
SIGN_MARGIN = 2e-5


def _sign_input_norms(model):
    """BatchNorms of ``model`` (top level) whose output a sign-type input quantizer reads, in graph order."""
    norms = []
    for layer in model.layers:
        if not is_sign_quantizer(getattr(layer, "input_quantizer", None)):
            continue
        for node in getattr(layer, "_inbound_nodes", None) or []:
            for producer in _flatten(node.inbound_layers):
                if isinstance(producer, tf.keras.layers.BatchNormalization) and producer not in norms:
                    norms.append(producer)
    order = {id(layer): i for i, layer in enumerate(model.layers)}
    return sorted(norms, key=lambda bn: order[id(bn)])


def keep_signs_off_thresholds(model, rng, probes=None, *, max_rounds: int = 200) -> int:
    """Move sign-feeding BatchNorm offsets until no sign input on the parity probes sits within
    SIGN_MARGIN of its threshold; returns how many BatchNorms were changed.

    Dyadic constants (randomize_batchnorm) make integer counts exact, but float convolutions that
    feed signs (BinaryDenseNet's stem and transitions; three float stages in a row cannot stay
    exact in 24 mantissa bits) give continuous values, and a value within rounding distance of
    zero flips between runtimes. Then every later sign sees different counts in a random-weight
    network. Here each channel whose margin is too small on the probes gets a new offset (an odd
    multiple of 1/16 plus a random fraction of it), in graph order, so on the probes every sign
    agrees between any two correct runtimes and a wrong conversion (different values) still
    fails. The probes must be the ones the parity check uses (``probe_inputs(shape,
    PARITY_PROBES)``).
    """
    norms = _sign_input_norms(model)
    if not norms:
        return 0
    if probes is None:
        probes = probe_inputs(tuple(model.input_shape[1:]), n=PARITY_PROBES)
    probe = tf.keras.Model(model.inputs, [bn.input for bn in norms])
    changed, start = set(), 0
    for _ in range(max_rounds):
        values = probe(probes, training=False)
        values = values if isinstance(values, (list, tuple)) else [values]
        for index in range(start, len(norms)):
            if _widen_sign_margin(norms[index], np.asarray(values[index], np.float64), rng):
                changed.add(id(norms[index]))
                start = index + 1
                break
        else:
            return len(changed)
    raise RuntimeError("could not keep sign inputs off their thresholds on the parity probes")


def _widen_sign_margin(bn, x: np.ndarray, rng) -> bool:
    """New offsets for the channels of ``bn`` whose output comes within SIGN_MARGIN of zero."""
    x = x.reshape(-1, x.shape[-1])
    weights = {w.name.split("/")[-1].split(":")[0]: w for w in bn.weights}
    gamma = weights["gamma"].numpy().astype(np.float64) if "gamma" in weights else 1.0
    scale = gamma / np.sqrt(weights["moving_variance"].numpy().astype(np.float64) + bn.epsilon)
    centred = (x - weights["moving_mean"].numpy()) * scale
    margin = SIGN_MARGIN * np.maximum(centred.std(axis=0), 1e-3)
    beta = weights["beta"].numpy().astype(np.float64)
    bad = np.flatnonzero(np.abs(centred + beta).min(axis=0) < margin)
    if not len(bad):
        return False
    for c in bad:
        for _ in range(1000):
            candidate = (2 * rng.integers(0, 8) + 1) / 16 * rng.choice([-1, 1]) * rng.uniform(0.5, 1.5)
            if np.abs(centred[:, c] + candidate).min() >= margin[c]:
                beta[c] = candidate
                break
        else:
            raise RuntimeError(f"{bn.name}: no offset keeps channel {c} off the sign threshold")
    weights["beta"].assign(beta.astype(np.float32))
    return True


#: log2 of how much smaller than the float residual path a binary branch starts in probe models
#: (AdaBin ResNets). With unit BatchNorm scale the branch (alpha_w * count, std ~1 at Glorot
#: init) dominates the path, so one sign flipped by float rounding re-routes the rest of the
#: network: measured on adabin_r18 seed 0, 3 of 16 faces at cosine 0.972-0.9994. A branch at 1/8
#: of its raw size, what the BatchNorm after a binary conv learns to do in Bi-Real style blocks,
#: keeps every face >= 0.9999 while a wrong deploy graph still fails (tests/convert).
BRANCH_SHRINK = 3


def _randomize_adabin(model, rng) -> None:
    """Trained-looking AdaBin parameters, so probes exercise every term of the deploy graph.

    At init ``beta_a = 0`` (no activation-offset term), ``alpha_a = 1`` and the weight centre
    ``beta_w`` is a tiny accident of the random kernel: a conversion that dropped either term
    would still match. Each channel's kernel is shifted by up to half its spread, ``alpha_a``
    drawn from [0.5, 1.5] and ``beta_a`` from [-0.25, 0.25].
    """
    for layer in iter_layers(model):
        if not isinstance(layer, AdaBinConv2D):
            continue
        kernel = layer.kernel.numpy()
        spread = kernel.reshape(-1, kernel.shape[-1]).std(axis=0)
        shift = rng.uniform(-0.5, 0.5, kernel.shape[-1]) * spread
        layer.kernel.assign((kernel + shift).astype(np.float32))
        layer.act_alpha.assign(np.float32(rng.uniform(0.5, 1.5)))
        layer.act_beta.assign(np.float32(rng.uniform(-0.25, 0.25)))


def _follows_adabin_conv(bn) -> bool:
    nodes = getattr(bn, "_inbound_nodes", None) or []
    return any(isinstance(layer, AdaBinConv2D) for node in nodes for layer in _flatten(node.inbound_layers))


def _flatten(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _set_dyadic_statistics(bn, act: np.ndarray, rng, exact: bool, shrink: int = 0) -> None:
    axes = tuple(range(act.ndim - 1))
    std = act.std(axis=axes)
    # Exact constants keep the scale at 1: a power-of-two scale would let an integer count hit
    # -beta * 2^k exactly. Continuous offsets can afford it (and need it against saturation).
    # AdaBin branches are continuous already (alpha_w, beta_w are channel statistics).
    k = np.zeros_like(std) if exact else np.clip(np.round(np.log2(np.maximum(std, 1.0))), 0, 12)
    k = k + shrink
    magnitude = (2 * rng.integers(0, 8, size=k.shape) + 1) / 16 if exact else rng.uniform(0.05, 0.5, size=k.shape)
    beta = (magnitude * rng.choice([-1, 1], size=k.shape)).astype(np.float32)
    eps = np.float32(bn.epsilon)
    for weight in bn.weights:
        kind = weight.name.split("/")[-1].split(":")[0]
        value = {
            "gamma": 2.0 ** -k,
            "beta": beta,
            "moving_mean": np.zeros_like(k),
            "moving_variance": np.full_like(k, np.float32(1.0) - eps),
        }.get(kind)
        if value is not None:
            weight.assign(np.asarray(value, np.float32))


def load_source(source: str, *, weights: Optional[str] = None, seed: int = 0) -> Source:
    """A registry name (random init, or ``weights``) or a ``.keras``/``.h5``/SavedModel path.

    Raises:
        FileNotFoundError: neither a registry name nor an existing path.
        ValueError: the file is not a Keras model, or its input is not HxWx3.
    """
    if source in list_models():
        tf.keras.utils.set_random_seed(seed)
        model = create_model(source)
        if weights:
            if not os.path.exists(weights):
                raise FileNotFoundError(f"weights file not found: {weights}")
            try:
                model.load_weights(weights)
            except Exception as err:
                raise ValueError(f"cannot load weights {weights} into {source}: {err}") from None
        else:
            randomize_batchnorm(model, seed, exact=model_info(source).exact_probe and not _has_threshold_ties(model))
        return Source(model, source, model_info(source).lce_native, True, random_init=not weights)
    if not os.path.exists(source):
        raise FileNotFoundError(f"{source!r} is neither a registered model (see `lcefr models list`) nor a file")
    try:
        model = tf.keras.models.load_model(source, custom_objects=CUSTOM_OBJECTS, compile=False)
    except Exception as err:
        raise ValueError(f"{source} is not a Keras model file ({type(err).__name__})") from None
    if not isinstance(model, tf.keras.Model):
        raise ValueError(f"{source} did not load as a Keras model")
    shape = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if shape is None or len(shape) != 3 or shape[-1] != 3:
        raise ValueError(f"Expected a model with one HxWx3 image input, got input shape {model.input_shape}")
    stem = os.path.splitext(os.path.basename(source.rstrip("/")))[0]
    base = next((n for n in (model.name, stem) if n in list_models()), None)
    return Source(model, base or stem, model_info(base).lce_native if base else True, False)
