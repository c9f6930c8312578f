"""One embedding interface for Keras backbones, registry models and ``.tflite`` files (LCE, float, int8).

Images go in as aligned uint8 RGB 112x112 faces; the preprocessing contract
(``(x - 127.5) / 127.5``) is applied here, so every runtime sees the same input. The flip-test of
the verification protocol sums the embeddings of a face and its mirror image, then L2-normalises.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from lcefr.eval.verification import flip_fuse, l2_normalize
from lcefr.preprocess import preprocess
from lcefr.runtime import check_tflite, lce_interpreter

__all__ = ["Embedder", "load_embedder"]


@dataclass
class Embedder:
    """``run(x)`` maps preprocessed float32 ``(N, 112, 112, 3)`` to raw ``(N, D)`` embeddings."""

    name: str
    kind: str
    run: Callable[[np.ndarray], np.ndarray]
    batch_size: int = 32

    def raw(self, images: np.ndarray, *, progress: Optional[Callable[[int], None]] = None) -> np.ndarray:
        """Raw (unnormalised) embeddings of uint8 RGB faces, in batches."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"Expected faces shaped (N, H, W, 3), got {images.shape}")
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            out.append(np.asarray(self.run(preprocess(chunk)), np.float32).reshape(len(chunk), -1))
            if progress is not None:
                progress(len(chunk))
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def embed(self, images: np.ndarray, *, flip: bool = True, progress: Optional[Callable[[int], None]] = None) -> np.ndarray:
        """L2-normalised embeddings; with ``flip`` the sum of the face's and its mirror's embeddings."""
        images = np.asarray(images)
        emb = self.raw(images, progress=progress)
        if not flip:
            return l2_normalize(emb)
        return flip_fuse(emb, self.raw(images[:, :, ::-1], progress=progress))


def _tflite_runner(path: str, threads: int):
    with open(path, "rb") as f:
        buffer = f.read()
    check_tflite(buffer, name=path)
    interpreter = lce_interpreter(buffer, threads=threads, kernel="indirect")

    def run(x: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(interpreter.predict(row[None])).reshape(1, -1) for row in x])

    return run


def load_embedder(model: str, *, threads: int = 1, batch_size: int = 32, seed: int = 0) -> Embedder:
    """An :class:`Embedder` for a ``.tflite`` file, a Keras model file or a registry name (random init).

    Raises:
        FileNotFoundError: neither a file nor a registry name. ValueError: not a usable model.
    """
    if model.endswith(".tflite"):
        if not os.path.isfile(model):
            raise FileNotFoundError(f"no such model file: {model}")
        return Embedder(name=os.path.basename(model), kind="tflite", run=_tflite_runner(model, threads), batch_size=batch_size)
    from lcefr.source import load_source  # TensorFlow: a .tflite embedder runs without it

    src = load_source(model, seed=seed)
    keras_model = src.model

    def run(x: np.ndarray) -> np.ndarray:
        return keras_model(x, training=False).numpy()

    return Embedder(name=src.name, kind="keras", run=run, batch_size=batch_size)
