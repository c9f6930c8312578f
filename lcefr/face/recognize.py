"""Photographs to decisions as functions: verify two images, enrol a person, identify a face.

Each reads its images with :class:`lcefr.face.photos.FaceReader` (aligned 112x112 crops as they
are, photographs detected and aligned), embeds them with the flip-test exactly as ``lcefr eval``
does (:func:`lcefr.face.decide.embed_faces`) and returns the report that ``lcefr verify``,
``lcefr gallery add`` and ``lcefr identify`` print with ``--json``. Nothing is printed.
"""
from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple

from lcefr.face.decide import embed_faces
from lcefr.face.gallery import Gallery, model_identity
from lcefr.face.photos import FaceReader

__all__ = ["EnrolError", "check_gallery_model", "enrol", "identify_image", "verify_pair"]


class EnrolError(ValueError):
    """An enrolment that cannot start: an empty name, or a new gallery without a model."""


def verify_pair(*, model: str, image_a: str, image_b: str, threshold: Tuple[float, str], no_align: bool = False,
                min_face: int = 20) -> Dict:
    """Are ``image_a`` and ``image_b`` the same person? The cosine of their embeddings by ``model`` vs a threshold.

    ``threshold`` is ``(cosine, where it came from)``, e.g. from :func:`lcefr.face.decide.resolve_threshold`.
    Returns ``same``, ``score_cos``, ``distance_sqL2``, ``threshold_cos``, ``threshold_from`` and an info
    dict per image (``faces``: how many were found, ``None`` for an aligned input).
    """
    thr, thr_source = threshold
    reader = FaceReader(no_align=no_align, min_face=min_face)
    face_a, info_a = reader.one(image_a)
    face_b, info_b = reader.one(image_b)
    emb = embed_faces(model, [face_a, face_b])
    score = float(emb[0] @ emb[1])
    return {"model": model, "same": bool(score >= thr), "score_cos": score, "distance_sqL2": 2.0 - 2.0 * score,
            "threshold_cos": thr, "threshold_from": thr_source, "image_a": info_a, "image_b": info_b}


def enrol(*, db: str, name: str, images: Sequence[str], model: Optional[str] = None, no_align: bool = False,
          min_face: int = 20) -> Dict:
    """Add ``images`` of person ``name`` to the gallery file ``db``, in one transaction (all images or none).

    ``model`` (file or registry name) is required for a new gallery; later adds reuse the gallery's
    model and refuse a different one. Returns ``added``, ``people``, ``embeddings``, ``model_id`` and
    an info dict per image.

    Raises:
        EnrolError: an empty name, or a new gallery without ``model``. ValueError: another model than
        the gallery's, an image without a face. FileNotFoundError: a missing image.
    """
    if not name.strip():
        raise EnrolError("NAME must not be empty")
    meta = {}
    if os.path.exists(db):
        with Gallery.open(db) as g:
            meta = g.meta()
    if not meta and not model:
        raise EnrolError(f"{db} is a new gallery: the first `gallery add` needs --model MODEL")
    model = model or meta["model"]
    model_id = model_identity(model)
    if meta:
        with Gallery.open(db) as g:
            g.check_model(model_id)
    reader = FaceReader(no_align=no_align, min_face=min_face)
    faces, infos = zip(*[reader.one(p) for p in images])
    emb = embed_faces(model, list(faces))
    recorded = os.path.abspath(model) if os.path.exists(model) else model
    with Gallery.open_or_create(db) as g:
        n = g.add(name, list(images), emb, model_id=model_id, model=recorded)
        people = g.people()
    return {"db": db, "name": name.strip(), "added": n, "people": len(people),
            "embeddings": sum(c for _, c in people), "model_id": model_id, "images": list(infos)}


def check_gallery_model(*, model: str, db: str) -> str:
    """The model identity of ``model`` after checking it is the gallery's (ValueError when not)."""
    model_id = model_identity(model)
    with Gallery.open(db) as g:
        g.check_model(model_id)
    return model_id


def identify_image(*, model: str, image: str, db: str, threshold: Tuple[float, str], top: int = 5,
                   no_align: bool = False, min_face: int = 20) -> Dict:
    """Who in the gallery ``db`` is in ``image``? People ranked by the cosine of their closest image.

    ``identity`` is the best match's name when its cosine reaches ``threshold`` (``(cosine, source)``),
    else ``None``. ``model`` must be the gallery's model.
    """
    thr, thr_source = threshold
    model_id = check_gallery_model(model=model, db=db)
    face, info = FaceReader(no_align=no_align, min_face=min_face).one(image)
    emb = embed_faces(model, [face])[0]
    with Gallery.open(db) as g:
        g.check_model(model_id, emb.shape[0])
        matches = g.identify(emb, top=top)
    best = matches[0] if matches and matches[0].score >= thr else None
    return {"model": model, "db": db, "image": info, "identity": best.name if best else None,
            "threshold_cos": thr, "threshold_from": thr_source,
            "matches": [{"name": m.name, "score_cos": m.score, "images": m.images, "source": m.source} for m in matches]}
