"""Enrollment (face images -> a standalone personal ``.tflite``) and verification with it.

Images that already are 112x112x3 are taken as aligned faces; others are detected with MTCNN and aligned
by :mod:`lcefr.face` (largest face). Several enrollment images are averaged in embedding space (seed 003,
section VI), and the averaged, re-normalised embedding is given to ``h_gen``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np

from lcefr.convert.tflite import convert_float, convert_int8
from lcefr.data.synth import synth_faces
from lcefr.eval.verification import l2_normalize
from lcefr.personal.verifier import build_verifier, count_macs, count_params
from lcefr.preprocess import preprocess
from lcefr.runtime import check_tflite, tflite_interpreter

__all__ = ["enroll", "Enrollment", "export_tflite", "TFLiteVerifier", "DEFAULT_THRESHOLD"]

#: Decision threshold on the verifier's probability.
DEFAULT_THRESHOLD = 0.5


@dataclass
class Enrollment:
    theta: np.ndarray
    model: object  # the Keras f
    params: int
    macs: int


def enroll(hypernet, faces: Sequence[np.ndarray], *, name: str = "personal_verifier") -> Enrollment:
    """Generate ``f`` for the person in ``faces`` (aligned uint8 faces, embeddings averaged)."""
    if not len(faces):
        raise ValueError("enrollment needs at least one face")
    emb = l2_normalize(hypernet.embedder().raw(np.stack(faces)))
    mean = l2_normalize(emb.mean(0, keepdims=True))
    theta = hypernet.generate(mean)[0]
    model = build_verifier(theta, hypernet.spec, name=_keras_name(name))
    return Enrollment(theta=theta, model=model, params=count_params(hypernet.spec), macs=count_macs(hypernet.spec))


def _keras_name(name: str) -> str:
    clean = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return f"verifier_{clean}" if clean else "personal_verifier"


def calibration_faces(faces: Sequence[np.ndarray], *, count: int = 64, seed: int = 0) -> np.ndarray:
    """Preprocessed faces for int8 calibration: the enrollment faces, their mirrors and generated faces."""
    own = np.stack(faces)
    return preprocess(np.concatenate([own, own[:, :, ::-1], synth_faces(count, seed=seed)]))


def export_tflite(model, *, int8: bool = False, representative: Optional[np.ndarray] = None) -> bytes:
    """``f`` as a ``.tflite`` flatbuffer: float, or int8 weights and activations with float input and output."""
    if not int8:
        return convert_float(model)
    if representative is None:
        raise ValueError("int8 export needs representative faces")
    return convert_int8(model, representative)


class TFLiteVerifier:
    """A personal ``.tflite``: ``score(faces)`` gives the probability per aligned uint8 face."""

    def __init__(self, path_or_bytes, *, threads: int = 1):
        if isinstance(path_or_bytes, (bytes, bytearray)):
            buffer = bytes(path_or_bytes)
        else:
            import os

            if not os.path.isfile(path_or_bytes):
                raise FileNotFoundError(f"no such model file: {path_or_bytes}")
            with open(path_or_bytes, "rb") as f:
                buffer = f.read()
        name = path_or_bytes if isinstance(path_or_bytes, str) else "buffer"
        check_tflite(buffer, name=name)
        self.size = len(buffer)
        try:
            self.interpreter = tflite_interpreter(buffer, threads=threads)
        except (RuntimeError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"{name} is not a personal verifier from `lcefr personal enroll` ({first})") from None
        inp = self.interpreter.get_input_details()[0]
        out = self.interpreter.get_output_details()[0]
        if tuple(inp["shape"][1:]) != (112, 112, 3) or int(np.prod(out["shape"][1:])) != 1:
            raise ValueError(f"{name} is not a personal verifier: expected 112x112x3 faces in and one score out, "
                             f"got {tuple(inp['shape'])} -> {tuple(out['shape'])}")
        self._in = inp["index"]
        self._out = out["index"]

    def score_preprocessed(self, x: np.ndarray) -> np.ndarray:
        out = []
        for row in np.asarray(x, np.float32):
            self.interpreter.set_tensor(self._in, row[None])
            self.interpreter.invoke()
            out.append(float(np.asarray(self.interpreter.get_tensor(self._out)).reshape(-1)[0]))
        return np.asarray(out)

    def score(self, faces) -> np.ndarray:
        return self.score_preprocessed(preprocess(faces))


def summary(enrollment: Enrollment, *, size: int) -> Dict:
    return {"params": enrollment.params, "macs": enrollment.macs, "bytes": int(size)}
