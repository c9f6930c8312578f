"""Output parity between a Keras model and its converted flatbuffer."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Dict, Optional

import numpy as np

from lcefr.data.synth import synth_faces
from lcefr.preprocess import FACE_SIZE, normalize, preprocess

__all__ = ["ParityResult", "cosine_rows", "check_parity", "probe_inputs", "face_inputs", "PARITY_PROBES"]

#: Number of probe images in every parity check.
PARITY_PROBES = 16


@dataclass
class ParityResult:
    cosine_min: float
    cosine_mean: float
    max_abs_diff: float
    samples: int

    def to_dict(self) -> Dict:
        return asdict(self)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) arrays; zero rows count as cosine 0."""
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(denom > 0, (a * b).sum(axis=1) / np.where(denom > 0, denom, 1.0), 0.0)


def probe_inputs(shape, n: int = 4, seed: int = 0) -> np.ndarray:
    """Uniform-noise images in the input range ((x - 127.5) / 127.5 of random uint8): parity probes.

    Noise, not faces, for float and LCE parity: every pixel is independent, so a value that lands
    next to a sign threshold does so at one position. The flat regions of generated faces repeat
    one value over many pixels, and in a random-weight binary network a one-ulp difference between
    runtimes then flips a whole region at once (measured: ``binary_densenet37_lce`` worst face
    0.913 on generated faces, >= 0.99 on noise, same conversion).
    """
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, *shape)).astype(np.float32)
    return normalize(images)


def face_inputs(shape, n: int = 4, seed: int = 0) -> np.ndarray:
    """Generated aligned faces (``lcefr data synth``), preprocessed: int8 calibration and int8 probes.

    Shapes other than 112x112x3 get :func:`probe_inputs`.
    """
    if tuple(shape) != (FACE_SIZE, FACE_SIZE, 3) or n == 0:
        return probe_inputs(shape, n=n, seed=seed)
    return preprocess(synth_faces(n, seed=seed))



def check_parity(model, run_flatbuffer: Callable[[np.ndarray], np.ndarray], *, inputs: Optional[np.ndarray] = None) -> ParityResult:
    """Compare ``model`` with ``run_flatbuffer`` (one image at a time) on ``inputs``."""
    if inputs is None:
        inputs = probe_inputs(tuple(model.input_shape[1:]))
    reference = model.predict(inputs, verbose=0)
    converted = np.concatenate([np.asarray(run_flatbuffer(x[None])).reshape(1, -1) for x in inputs])
    cos = cosine_rows(reference, converted)
    return ParityResult(
        cosine_min=round(float(cos.min()), 6),
        cosine_mean=round(float(cos.mean()), 6),
        max_abs_diff=float(np.abs(reference.reshape(converted.shape) - converted).max()),
        samples=len(inputs),
    )
