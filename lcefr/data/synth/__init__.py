"""Procedural synthetic faces, already aligned to the ArcFace 112x112 five-point template.

A face is drawn with OpenCV (filled polygons, anti-aliased strokes, soft masks) on a 4x
supersampled float canvas and downsampled. Two random streams keep the roles apart:

* :func:`synth_identity` draws the fixed parameters of one person (face shape, eyes, brows,
  nose, mouth, colours, hair, glasses, beard, moles) as an :class:`IdentityParams`;
* :func:`render_face` draws the per-image nuisances (in-plane rotation, scale, shift, yaw-like
  feature shift, expression, illumination, colour cast, blur, noise, occlusion, background)
  and returns one uint8 RGB image.

Before nuisances the pupils, the nose tip and the mouth corners sit within 2.2 px (per
coordinate) of ``arcface_dst`` (insightface ``face_align.py``); identity shape offsets are
that small on purpose, so the images look like the output of a five-point alignment. The images are meant
as fixtures and smoke-test data: an identity is recognisable across its images, while every
image of it differs.

Determinism: identity ``i`` of seed ``s`` uses the stream ``SeedSequence([s, 0, i])`` and its
image ``k`` uses ``SeedSequence([s, 1, i, k])``, so any subset of a dataset is generated
identically on its own and the same seed gives byte-identical files.

The package: :mod:`.identity` (identity sampling), :mod:`.canvas` (drawing primitives),
:mod:`.parts` (face parts and scene pieces), :mod:`.render` (:func:`render_face`) and
:mod:`.datasets` (:func:`synth_faces`, :func:`synth_dataset`, :func:`synthetic_folder`).
"""
from lcefr.data.synth.datasets import synth_dataset, synth_faces, synthetic_folder
from lcefr.data.synth.identity import (
    BEARD_STYLES,
    GLASSES_STYLES,
    HAIR_STYLES,
    LOOKALIKE_SHARED,
    IdentityParams,
    identity_rng,
    image_rng,
    lookalike_identity,
    lookalike_pair_identity,
    synth_identity,
)
from lcefr.data.synth.render import render_face

__all__ = [
    "HAIR_STYLES",
    "BEARD_STYLES",
    "GLASSES_STYLES",
    "IdentityParams",
    "synth_identity",
    "lookalike_identity",
    "lookalike_pair_identity",
    "LOOKALIKE_SHARED",
    "render_face",
    "identity_rng",
    "image_rng",
    "synth_faces",
    "synth_dataset",
    "synthetic_folder",
]
