"""Identity sampling: the fixed appearance of one generated person and its random streams.

:func:`synth_identity` draws an :class:`IdentityParams` from an identity's stream
(:func:`identity_rng`); :func:`lookalike_identity` mixes two people into a look-alike.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Tuple

import numpy as np

from lcefr.preprocess import ARCFACE_TEMPLATE

__all__ = [
    "HAIR_STYLES",
    "BEARD_STYLES",
    "GLASSES_STYLES",
    "IdentityParams",
    "identity_rng",
    "image_rng",
    "synth_identity",
    "LOOKALIKE_SHARED",
    "lookalike_identity",
    "lookalike_pair_identity",
]

RGB = Tuple[float, float, float]

_SKIN_ANCHORS = np.array(
    [
        [0.96, 0.82, 0.72],
        [0.90, 0.72, 0.60],
        [0.80, 0.60, 0.46],
        [0.68, 0.48, 0.34],
        [0.52, 0.35, 0.24],
        [0.38, 0.25, 0.17],
    ]
)
_HAIR_COLORS = np.array(
    [
        [0.06, 0.05, 0.05],
        [0.14, 0.10, 0.07],
        [0.26, 0.17, 0.10],
        [0.42, 0.28, 0.16],
        [0.70, 0.56, 0.34],
        [0.52, 0.24, 0.10],
        [0.55, 0.54, 0.52],
        [0.82, 0.81, 0.78],
    ]
)
_HAIR_WEIGHTS = np.array([0.24, 0.22, 0.16, 0.12, 0.09, 0.05, 0.08, 0.04])
_IRIS_COLORS = np.array(
    [
        [0.22, 0.13, 0.07],
        [0.36, 0.22, 0.11],
        [0.30, 0.45, 0.62],
        [0.33, 0.45, 0.30],
        [0.45, 0.38, 0.20],
        [0.45, 0.48, 0.50],
    ]
)
_IRIS_WEIGHTS = np.array([0.35, 0.25, 0.14, 0.09, 0.10, 0.07])

HAIR_STYLES = ("short", "long", "fringe", "receding", "swept")
BEARD_STYLES = ("none", "stubble", "moustache", "full")
GLASSES_STYLES = ("none", "round", "rectangular")


@dataclass(frozen=True)
class IdentityParams:
    """Fixed appearance of one synthetic person; lengths are pixels of the 112x112 template.

    Colours are RGB triples in [0, 1]. ``hair_style``, ``beard`` and ``glasses`` index
    :data:`HAIR_STYLES`, :data:`BEARD_STYLES` and :data:`GLASSES_STYLES`.
    """

    face_half_width: float  # at the cheekbones
    cheek_y: float  # widest row of the face
    chin_y: float
    jaw_shape: float  # super-ellipse exponent of the lower face: ~1.6 pointed, ~3 square
    ear_size: float  # relative
    eye_spacing: float  # moves each pupil outwards from its template point
    eye_height: float  # moves both pupils down
    eye_width: float  # half-width of the eye opening
    eye_openness: float  # opening half-height / half-width
    eye_tilt: float  # degrees, outer corner up
    eye_peak: float  # where along the lid (0 outer .. 1 inner) the upper lid is highest
    iris_color: RGB
    iris_size: float  # iris radius / eye_width
    brow_thickness: float
    brow_height: float  # above the pupil
    brow_angle: float  # degrees, outer end up
    brow_arch: float
    brow_length: float  # relative
    brow_color: RGB
    nose_length: float  # moves the nose tip down
    nose_width: float  # half-width of the alae
    nose_bridge: float  # strength of the bridge side shading
    mouth_width: float  # moves each mouth corner outwards
    mouth_height: float  # moves both corners down
    upper_lip: float  # thickness
    lower_lip: float  # thickness
    lip_color: RGB
    skin_color: RGB
    blush: float
    hair_color: RGB
    hair_style: int
    hairline: float  # row of the hairline at the centre (negative: above the image)
    hair_volume: float  # how far hair stands off the head
    hair_part: float  # -1..1: side of the parting or sweep
    beard: int
    glasses: int
    glasses_color: RGB
    moles: Tuple[Tuple[float, float, float], ...]  # (x, y, radius)
    texture_seed: int  # hair and beard texture

    def landmarks(self) -> np.ndarray:
        """The five points (template order) of this identity before any per-image nuisance."""
        return _landmarks(self, dx=0.0, nose_dx=0.0, smile=0.0)


def identity_rng(seed: int, identity: int) -> np.random.Generator:
    """The random stream of identity ``identity`` under ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0, int(identity)]))


def image_rng(seed: int, identity: int, k: int) -> np.random.Generator:
    """The random stream of image ``k`` of identity ``identity`` under ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 1, int(identity), int(k)]))


def _rgb(values) -> RGB:
    return tuple(float(round(min(max(v, 0.0), 1.0), 4)) for v in values)


def _r(x: float) -> float:
    return float(round(float(x), 4))


def synth_identity(rng: np.random.Generator) -> IdentityParams:
    """Draw the fixed parameters of one synthetic identity from ``rng``."""
    t = rng.uniform(0, len(_SKIN_ANCHORS) - 1)
    i = min(int(t), len(_SKIN_ANCHORS) - 2)
    skin = _SKIN_ANCHORS[i] + (t - i) * (_SKIN_ANCHORS[i + 1] - _SKIN_ANCHORS[i])
    skin = skin * (1 + rng.normal(0, [0.025, 0.03, 0.04]))
    weights = _HAIR_WEIGHTS.copy()
    if t > 2.5:  # darker skin: mostly dark hair
        weights[3:6] *= 0.25
    hair = _HAIR_COLORS[rng.choice(len(_HAIR_COLORS), p=weights / weights.sum())] * rng.uniform(0.85, 1.15)
    if rng.random() < 0.15:
        hair = np.clip(hair + rng.normal(0, 0.05, 3), 0, 1)
    iris = _IRIS_COLORS[rng.choice(len(_IRIS_COLORS), p=_IRIS_WEIGHTS)] * rng.uniform(0.8, 1.15)
    brow = np.minimum(hair * rng.uniform(0.55, 0.9), skin * rng.uniform(0.4, 0.65))
    lip = skin * np.array([0.80, 0.52, 0.52]) + np.array([0.10, 0.0, 0.02]) * rng.uniform(0.3, 1.0)
    hair_style = int(rng.choice(len(HAIR_STYLES), p=[0.34, 0.22, 0.16, 0.12, 0.16]))
    hairline = {0: (12, 24), 1: (12, 24), 2: (24, 33), 3: (2, 14), 4: (14, 26)}[hair_style]
    beard = int(rng.choice(len(BEARD_STYLES), p=[0.66, 0.13, 0.10, 0.11]))
    glasses = int(rng.choice(len(GLASSES_STYLES), p=[0.80, 0.10, 0.10]))
    glasses_color = (
        np.array([0.05, 0.05, 0.05]) + rng.uniform(0, 0.25) * rng.random(3)
        if rng.random() < 0.7
        else np.array([0.65, 0.6, 0.5]) * rng.uniform(0.8, 1.2)
    )
    moles = []
    for _ in range(int(rng.choice(4, p=[0.45, 0.3, 0.17, 0.08]))):
        side = rng.choice([-1, 1])
        moles.append(
            (_r(56 + side * rng.uniform(8, 34)), _r(rng.uniform(30, 105)), _r(rng.uniform(0.6, 1.4)))
        )
    return IdentityParams(
        face_half_width=_r(rng.uniform(38, 45)),
        cheek_y=_r(rng.uniform(54, 64)),
        chin_y=_r(rng.uniform(108, 120)),
        jaw_shape=_r(rng.uniform(1.6, 3.2)),
        ear_size=_r(rng.uniform(0.8, 1.2)),
        eye_spacing=_r(rng.uniform(-1.5, 1.5)),
        eye_height=_r(rng.uniform(-1.5, 1.5)),
        eye_width=_r(rng.uniform(6.6, 8.8)),
        eye_openness=_r(rng.uniform(0.30, 0.52)),
        eye_tilt=_r(rng.uniform(-7, 9)),
        eye_peak=_r(rng.uniform(0.35, 0.65)),
        iris_color=_rgb(iris),
        iris_size=_r(rng.uniform(0.42, 0.54)),
        brow_thickness=_r(rng.uniform(1.3, 3.8)),
        brow_height=_r(rng.uniform(7.0, 11.0)),
        brow_angle=_r(rng.uniform(-10, 14)),
        brow_arch=_r(rng.uniform(0, 3)),
        brow_length=_r(rng.uniform(0.85, 1.2)),
        brow_color=_rgb(brow),
        nose_length=_r(rng.uniform(-2, 2)),
        nose_width=_r(rng.uniform(6.2, 10)),
        nose_bridge=_r(rng.uniform(0.25, 0.6)),
        mouth_width=_r(rng.uniform(-2, 2.2)),
        mouth_height=_r(rng.uniform(-1.5, 1.5)),
        upper_lip=_r(rng.uniform(1.8, 4.0)),
        lower_lip=_r(rng.uniform(2.5, 5.2)),
        lip_color=_rgb(lip),
        skin_color=_rgb(skin),
        blush=_r(rng.uniform(0, 0.25)),
        hair_color=_rgb(hair),
        hair_style=hair_style,
        hairline=_r(rng.uniform(*hairline)),
        hair_volume=_r(rng.uniform(2, 10)),
        hair_part=_r(rng.uniform(-0.6, 0.6)),
        beard=beard,
        glasses=glasses,
        glasses_color=_rgb(glasses_color),
        moles=tuple(moles),
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )


#: What a look-alike keeps of its base person: colouring, hair, beard, glasses and the overall head
#: size. Everything else (eyes, brows' shape, nose, mouth, lips, jaw and chin, moles) comes from the donor.
LOOKALIKE_SHARED = frozenset({
    "face_half_width", "ear_size", "skin_color", "blush", "hair_color", "hair_style", "hairline", "hair_volume",
    "hair_part", "beard", "glasses", "glasses_color", "brow_color", "lip_color", "texture_seed",
})


def lookalike_identity(base: IdentityParams, donor: IdentityParams) -> IdentityParams:
    """A different person who looks like ``base`` at a glance: ``base``'s colouring, hair, beard,
    glasses and head size (:data:`LOOKALIKE_SHARED`) with ``donor``'s facial geometry.

    Used for hard negative pairs, in the spirit of CALFW/CPLFW, whose mismatched pairs are chosen
    among people of the same gender and ethnicity: coarse cues no longer tell the two apart, only
    the shape of eyes, brows, nose, mouth and jaw does.
    """
    return replace(base, **{f.name: getattr(donor, f.name) for f in fields(IdentityParams)
                            if f.name not in LOOKALIKE_SHARED})


def lookalike_pair_identity(seed: int, identity: int) -> IdentityParams:
    """Identity ``identity`` of a set made of look-alike pairs: even ones are drawn as usual, odd
    ones are look-alikes of the even one before them (its colouring and hair, their own geometry)."""
    own = synth_identity(identity_rng(seed, identity))
    if identity % 2 == 0:
        return own
    return lookalike_identity(synth_identity(identity_rng(seed, identity - 1)), own)


def _landmarks(p: IdentityParams, *, dx: float, nose_dx: float, smile: float, nose_dy: float = 0.0) -> np.ndarray:
    t = ARCFACE_TEMPLATE.copy()
    t[0, 0] -= p.eye_spacing
    t[1, 0] += p.eye_spacing
    t[:2, 1] += p.eye_height
    t[2, 1] += p.nose_length + nose_dy
    t[3, 0] -= p.mouth_width + 1.2 * smile
    t[4, 0] += p.mouth_width + 1.2 * smile
    t[3:, 1] += p.mouth_height - 2.2 * smile
    t[:, 0] += dx
    t[2, 0] += nose_dx
    return t
