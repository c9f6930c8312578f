"""The hypernetwork ``h = h_gen o h_bb`` of seed 003 (Rozner et al.) and its run folder.

``h_bb`` is any lcefr backbone (a Keras file, a ``.tflite`` or a registry name), frozen: it turns an
aligned face into an embedding. ``h_gen`` is four linear layers with LayerNorm and GELU that turn the
L2-normalised embedding into the flat weight vector ``theta`` of the personal verifier ``f``. The last
layer's bias starts at a He-initialised ``theta`` (the "average person"); its kernel adds the
person-specific part.

A run folder holds ``personal.json`` (config, verifier spec, backbone), ``h_gen.weights.h5``,
``history.json`` and, when the backbone was a file, a copy of it, so the folder alone enrolls.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from lcefr.embed import load_embedder
from lcefr.personal.verifier import VerifierSpec, count_params, initial_theta

__all__ = ["build_hgen", "Hypernet", "load_hypernet", "META_FILE", "WEIGHTS_FILE"]

META_FILE = "personal.json"
WEIGHTS_FILE = "h_gen.weights.h5"


def build_hgen(embedding_size: int, spec: VerifierSpec, *, hidden: int = 256, seed: int = 0, out_scale: float = 0.01,
               theta0: Optional[np.ndarray] = None):
    """``h_gen``: L2-normalised embedding ``(N, D)`` -> ``theta`` ``(N, P)``; 4 linear layers, LayerNorm + GELU.

    ``theta0`` (default: He-initialised) is the last layer's bias, where every generated network starts.
    The last layer's product is multiplied by ``out_scale``: its ``hidden x P`` kernel would otherwise move
    every generated weight by about ``lr`` per Adam step, whatever the gradient, and scramble ``f``.
    """
    import tf_keras as keras

    if theta0 is None:
        theta0 = initial_theta(spec, np.random.default_rng(seed))
    elif np.size(theta0) != count_params(spec):
        raise ValueError(f"Expected theta0 with {count_params(spec)} values, got {np.size(theta0)}")
    inp = keras.Input((embedding_size,), name="embedding")
    x = inp
    for i in range(3):
        x = keras.layers.Dense(hidden, name=f"fc{i}",
                               kernel_initializer=keras.initializers.GlorotUniform(seed=seed + i))(x)
        x = keras.layers.LayerNormalization(name=f"ln{i}")(x)
        x = keras.layers.Activation("gelu", name=f"gelu{i}")(x)
    out = ThetaLayer(count_params(spec), theta0=theta0, scale=out_scale, seed=seed + 3, name="theta")(x)
    return keras.Model(inp, out, name="h_gen")


_THETA_LAYER = None


def ThetaLayer(units: int, *, theta0, scale: float, seed: int, name: str):  # noqa: N802 (a layer, built lazily)
    """``scale * x @ kernel + theta0``: the last linear layer of ``h_gen``."""
    global _THETA_LAYER
    if _THETA_LAYER is None:
        import tf_keras as keras

        class _Theta(keras.layers.Layer):
            def __init__(self, units, theta0, scale, seed, **kwargs):
                super().__init__(**kwargs)
                self.units, self.scale, self.seed = int(units), float(scale), int(seed)
                self._theta0 = np.asarray(theta0, np.float32)

            def build(self, input_shape):
                fan_in = int(input_shape[-1])
                self.kernel = self.add_weight(
                    name="kernel", shape=(fan_in, self.units),
                    initializer=keras.initializers.RandomNormal(stddev=fan_in ** -0.5, seed=self.seed))
                self.bias = self.add_weight(name="bias", shape=(self.units,),
                                            initializer=keras.initializers.Constant(self._theta0))
                super().build(input_shape)

            def call(self, x):
                return self.scale * (x @ self.kernel) + self.bias

        _THETA_LAYER = _Theta
    return _THETA_LAYER(units, theta0, scale, seed, name=name)


@dataclass
class Hypernet:
    """A loaded run folder: ``generate(embeddings)`` gives ``theta``; ``backbone`` names ``h_bb``."""

    path: str
    meta: Dict
    spec: VerifierSpec
    model: object

    @property
    def backbone(self) -> str:
        b = self.meta["backbone"]
        return os.path.join(self.path, b["copy"]) if b.get("copy") else b["source"]

    def generate(self, embeddings: np.ndarray) -> np.ndarray:
        """``theta`` (N, P) for L2-normalised embeddings (N, D)."""
        emb = np.asarray(embeddings, np.float32)
        want = self.meta["embedding_size"]
        if emb.ndim != 2 or emb.shape[1] != want:
            raise ValueError(f"Expected embeddings (N, {want}), got {emb.shape}")
        return np.asarray(self.model(emb, training=False), np.float32)

    def embedder(self):
        return load_embedder(self.backbone, seed=int(self.meta["backbone"].get("seed", 0)))


def read_meta(path: str) -> Optional[Dict]:
    meta_path = os.path.join(path, META_FILE)
    if not os.path.exists(meta_path):
        return None
    with open(meta_path) as f:
        return json.load(f)


def load_hypernet(path: str) -> Hypernet:
    """Load a trained run folder.

    Raises:
        FileNotFoundError: not a folder from ``lcefr personal train`` (or training never finished a checkpoint).
    """
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no such hypernetwork folder: {path}")
    meta = read_meta(path)
    weights = os.path.join(path, WEIGHTS_FILE)
    if meta is None or not os.path.exists(weights):
        raise FileNotFoundError(f"{path} is not a trained hypernetwork folder (needs {META_FILE} and {WEIGHTS_FILE} "
                                "from `lcefr personal train`)")
    spec = VerifierSpec.from_dict(meta["verifier"])
    model = build_hgen(int(meta["embedding_size"]), spec, hidden=int(meta["config"]["hidden"]))
    model.load_weights(weights)
    return Hypernet(path=path, meta=meta, spec=spec, model=model)
