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


def randomize_batchnorm(model, seed: int = 0) -> None:
    """Give every BatchNorm trained-looking statistics (random mean, variance, gamma, beta).

    A freshly initialised BN is the identity, so binary convolutions feed exact integers (and
    exact zeros) to the next binarizer; sign(0) is where TF and TFLite kernels may legitimately
    disagree (e.g. DoReFa's round-half). Random statistics also exercise LCE's BN fusion.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for layer in iter_layers(model):
        if not isinstance(layer, tf.keras.layers.BatchNormalization):
            continue
        for weight in layer.weights:
            shape = tuple(weight.shape)
            kind = weight.name.split("/")[-1].split(":")[0]
            if kind == "gamma":
                value = rng.uniform(0.5, 1.5, shape)
            elif kind == "beta":
                value = rng.normal(0.0, 0.3, shape)
            elif kind == "moving_mean":
                value = rng.normal(0.0, 0.3, shape)
            elif kind == "moving_variance":
                value = rng.uniform(0.5, 2.0, shape)
            else:
                continue
            weight.assign(value.astype(np.float32))


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
