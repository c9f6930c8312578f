"""Turn a SOURCE (registry name or saved model file) into a Keras model ready to convert."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["Source", "load_source", "randomize_batchnorm", "iter_layers"]


@dataclass
class Source:
    model: object
    name: str
    lce_native: bool
    from_registry: bool


def iter_layers(model):
    """Every layer, descending into nested models."""
    import tensorflow as tf

    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            yield from iter_layers(layer)
        else:
            yield layer


def randomize_batchnorm(model, seed: int = 0, *, passes: int = 2) -> None:
    """Give a freshly initialised model trained-looking, exactly representable inference constants.

    A fresh BatchNorm is the identity, so binary convolutions pass raw integer counts (tens to
    hundreds, and exact zeros) to the next layer: sigmoids saturate, and sign(0) is where TF and
    TFLite legitimately disagree. Here every BatchNorm is calibrated on generated faces to
    ``(x - mean) / 2^k + beta`` with ``2^k`` the power of two nearest the input's standard
    deviation (never below 1), and ``beta`` an odd multiple of 1/16 so an integer count never lands
    exactly on zero; the scale sits in ``gamma`` and ``moving_variance`` is ``1 - eps``, so that
    ``rsqrt(var + eps)`` is exactly 1 however a runtime computes it. TF and TFLite then compute these layers bit for bit alike
    (a binary network turns one flipped sign into a different embedding, which would make a
    parity check measure float rounding instead of the conversion). Zero-initialised biases get
    small odd multiples of 1/64 for the same reason.
    """
    import tensorflow as tf

    from lcefr.convert.parity import probe_inputs

    rng = np.random.default_rng(seed)
    for layer in iter_layers(model):
        bias = getattr(layer, "bias", None)
        if bias is not None and not isinstance(layer, tf.keras.layers.BatchNormalization) and not np.any(bias.numpy()):
            shape = tuple(bias.shape)
            bias.assign(((2 * rng.integers(0, 8, shape) + 1) * rng.choice([-1, 1], shape) / 64).astype(np.float32))
    norms = [l for l in iter_layers(model) if isinstance(l, tf.keras.layers.BatchNormalization)]
    if not norms:
        return
    faces = probe_inputs(tuple(model.input_shape[1:]), n=8, seed=seed + 1000)
    probe = tf.keras.Model(model.inputs, [bn.input for bn in norms])
    for _ in range(passes):
        activations = probe(faces, training=False)
        activations = activations if isinstance(activations, (list, tuple)) else [activations]
        for bn, act in zip(norms, activations):
            _set_dyadic_statistics(bn, np.asarray(act, np.float64), rng)


def _set_dyadic_statistics(bn, act: np.ndarray, rng) -> None:
    axes = tuple(range(act.ndim - 1))
    std = act.std(axis=axes)
    k = np.clip(np.round(np.log2(np.maximum(std, 1.0))), 0, 12)
    odd = 2 * rng.integers(0, 8, size=k.shape) + 1
    beta = (odd * rng.choice([-1, 1], size=k.shape) / 16).astype(np.float32)
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
    import tensorflow as tf

    from lcefr.layers import CUSTOM_OBJECTS
    from lcefr.models import create_model, list_models, model_info

    if source in list_models():
        model = create_model(source)
        if weights:
            if not os.path.exists(weights):
                raise FileNotFoundError(f"weights file not found: {weights}")
            try:
                model.load_weights(weights)
            except Exception as err:
                raise ValueError(f"cannot load weights {weights} into {source}: {err}") from None
        else:
            randomize_batchnorm(model, seed)
        return Source(model, source, model_info(source).lce_native, True)
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
