"""Same person or not: flip-fused, L2-normalised embeddings and a cosine threshold, as ``lcefr eval``
computes them."""
from __future__ import annotations

import json
from typing import Optional, Sequence, Tuple

import numpy as np

from lcefr.embed import load_embedder
from lcefr.vocab import DEFAULT_THRESHOLD_COS

__all__ = ["resolve_threshold", "embed_faces"]



def resolve_threshold(calibration: Optional[str], threshold: Optional[float]) -> Tuple[float, str]:
    """(cosine threshold, where it came from: "--threshold", the calibration file or "default").

    Raises:
        ValueError: both given, a threshold outside [-1, 1], or a file without a numeric threshold_cos.
        FileNotFoundError: no such calibration file.
    """
    if calibration and threshold is not None:
        raise ValueError("give either --calibration or --threshold, not both")
    if threshold is not None:
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"--threshold is a cosine in [-1, 1], got {threshold}")
        return float(threshold), "--threshold"
    if not calibration:
        return DEFAULT_THRESHOLD_COS, "default"
    try:
        with open(calibration) as f:
            value = json.load(f)["threshold_cos"]
    except FileNotFoundError:
        raise FileNotFoundError(f"no such calibration file: {calibration}") from None
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{calibration} is not a calibration file from `lcefr eval --calibration-out` "
                         "(needs a numeric threshold_cos)") from None
    if not isinstance(value, (int, float)):
        raise ValueError(f"{calibration}: threshold_cos is not a number")
    return float(value), calibration


def embed_faces(model: str, faces: Sequence[np.ndarray]) -> np.ndarray:
    """Flip-fused, L2-normalised embeddings of aligned uint8 faces by MODEL (file or registry name)."""
    return load_embedder(model).embed(np.stack(faces), flip=True)
