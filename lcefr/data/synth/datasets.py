"""Generated datasets: faces in memory (:func:`synth_faces`), image folders on disk (:func:`synth_dataset`) and
the cached training folders `lcefr train` and `lcefr quantize` read (:func:`synthetic_folder`)."""
from __future__ import annotations

import os
import time
from typing import Callable, Dict, Iterable, Optional, Union

import numpy as np

from lcefr.data.synth.identity import IdentityParams, identity_rng, image_rng, lookalike_pair_identity, synth_identity
from lcefr.data.synth.render import render_face
from lcefr.fileio import write_atomic
from lcefr.preprocess import FACE_SIZE

__all__ = ["synth_faces", "synth_dataset", "synthetic_folder"]


def _identity_list(identities) -> list:
    if isinstance(identities, (int, np.integer)):
        if identities < 1:
            raise ValueError(f"identities must be >= 1, got {identities}")
        return list(range(int(identities)))
    ids = [int(i) for i in identities]
    if not ids or min(ids) < 0:
        raise ValueError(f"identities must be a positive count or non-negative indices, got {identities!r}")
    return ids


def _dataset_person(seed: int, identity: int, lookalikes: bool) -> IdentityParams:
    """Person ``identity`` of a generated training set: the one rule :func:`synth_faces` and
    :func:`synth_dataset` share, so both give the same images."""
    return lookalike_pair_identity(seed, identity) if lookalikes else synth_identity(identity_rng(seed, identity))


def synth_faces(n: int, *, seed: int = 0, per_identity: int = 1, lookalikes: bool = False) -> np.ndarray:
    """``n`` faces in memory, identity-major: ``per_identity`` consecutive images per person.

    Image ``j`` is image ``j % per_identity`` of identity ``j // per_identity``, the same image
    :func:`synth_dataset` writes for that seed. ``lookalikes=True`` makes identities ``2m`` and
    ``2m + 1`` look-alikes (:func:`lookalike_pair_identity`): training data with hard negatives.

    Returns:
        uint8 RGB array ``(n, 112, 112, 3)``.
    """
    if n < 0 or per_identity < 1:
        raise ValueError(f"need n >= 0 and per_identity >= 1, got n={n}, per_identity={per_identity}")
    out = np.empty((n, FACE_SIZE, FACE_SIZE, 3), np.uint8)
    person = None
    for j in range(n):
        i, kk = divmod(j, per_identity)
        if kk == 0 or person is None:
            person = _dataset_person(seed, i, lookalikes)
        out[j] = render_face(person, image_rng(seed, i, kk))
    return out


def synth_dataset(
    out_dir: str,
    *,
    identities: Union[int, Iterable[int]],
    per_identity: int,
    seed: int = 0,
    image_format: str = "png",
    progress: Optional[Callable[[int, int], None]] = None,
    lookalikes: bool = False,
) -> Dict:
    """Write an image folder ``out_dir/id_NNNNN/K.png`` of synthetic aligned faces.

    Every file is written atomically and depends only on ``(seed, identity, k)``, so the same
    seed gives byte-identical files and a subset (``identities=[3, 7]``) reproduces the same
    images as the full set. PNG (default) is lossless; ``image_format="jpg"`` writes JPEG at
    quality 95 (about a fifth of the size).

    Args:
        out_dir: destination folder, created if missing; existing files are overwritten.
        identities: a count (identities ``0..n-1``) or explicit identity indices.
        per_identity: images per identity.
        seed: the dataset seed.
        image_format: ``"png"`` or ``"jpg"``.
        progress: called as ``progress(done, total)`` after every image.
        lookalikes: identities ``2m`` and ``2m + 1`` are look-alikes (:func:`lookalike_pair_identity`),
            so training sees hard negatives; the same images as :func:`synth_faces` with ``lookalikes=True``.

    Returns:
        A summary dict: out_dir, seed, identities, per_identity, images, format, bytes, seconds, lookalikes.
    """
    import cv2

    ids = _identity_list(identities)
    if per_identity < 1:
        raise ValueError(f"per_identity must be >= 1, got {per_identity}")
    fmt = image_format.lower().lstrip(".")
    if fmt == "jpeg":
        fmt = "jpg"
    if fmt not in ("png", "jpg"):
        raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
    params = [cv2.IMWRITE_PNG_COMPRESSION, 6] if fmt == "png" else [cv2.IMWRITE_JPEG_QUALITY, 95]
    total = len(ids) * per_identity
    done = 0
    nbytes = 0
    start = time.perf_counter()
    for i in ids:
        person = _dataset_person(seed, i, lookalikes)
        folder = os.path.join(out_dir, f"id_{i:05d}")
        os.makedirs(folder, exist_ok=True)
        for kk in range(per_identity):
            rgb = render_face(person, image_rng(seed, i, kk))
            ok, buf = cv2.imencode(f".{fmt}", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
            if not ok:
                raise RuntimeError(f"OpenCV could not encode {fmt}")
            data = buf.tobytes()
            write_atomic(os.path.join(folder, f"{kk}.{fmt}"), data)
            nbytes += len(data)
            done += 1
            if progress is not None:
                progress(done, total)
    return {
        "out_dir": os.path.abspath(out_dir),
        "seed": int(seed),
        "identities": len(ids),
        "per_identity": int(per_identity),
        "images": done,
        "format": fmt,
        "bytes": nbytes,
        "seconds": round(time.perf_counter() - start, 3),
        "lookalikes": bool(lookalikes),
    }


def synthetic_folder(*, identities: int, per_identity: int, seed: int, progress=None, lookalikes: bool = False) -> str:
    """The generated training set for ``(seed, identities, per_identity, lookalikes)``, rendered once into a cache.

    The cache lives in ``$LCEFR_CACHE`` (default ``~/.cache/lcefr``); a ``complete`` marker is written
    last, so an interrupted render is redone.
    """
    root = os.environ.get("LCEFR_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "lcefr")
    folder = os.path.join(root, "synth", f"seed{seed}-{identities}x{per_identity}" + ("-lookalikes" if lookalikes else ""))
    marker = os.path.join(folder, "complete")
    if not os.path.exists(marker):
        synth_dataset(folder, identities=identities, per_identity=per_identity, seed=seed, progress=progress,
                      lookalikes=lookalikes)
        write_atomic(marker, b"ok\n")
    return folder
