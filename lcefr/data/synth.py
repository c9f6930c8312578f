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
"""
from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Optional, Tuple, Union

import numpy as np

from lcefr.fileio import write_atomic
from lcefr.preprocess import FACE_SIZE

__all__ = [
    "ARCFACE_TEMPLATE",
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
]

#: insightface ``arcface_dst``: image-left eye, image-right eye, nose tip, left and right mouth corner.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)

RGB = Tuple[float, float, float]

_SUPERSAMPLE_PX = 336
_SHIFT = 4
_ONE = 1 << _SHIFT

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
    from dataclasses import fields, replace

    return replace(base, **{f.name: getattr(donor, f.name) for f in fields(IdentityParams)
                            if f.name not in LOOKALIKE_SHARED})


# ----------------------------------------------------------------------------- drawing


@functools.lru_cache(maxsize=64)
def _arc(a0: float, a1: float, n: int) -> Tuple[np.ndarray, np.ndarray]:
    t = np.radians(np.linspace(a0, a1, n))
    return np.cos(t), np.sin(t)


def _ellipse(cx, cy, ax, ay, angle=0.0, a0=0.0, a1=360.0, n=40) -> np.ndarray:
    cos_t, sin_t = _arc(float(a0), float(a1), int(n))
    x, y = ax * cos_t, ay * sin_t
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], 1)


def _superellipse(cx, cy, ax, ay, p=4.0, n=48) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    return np.stack([cx + ax * np.sign(c) * np.abs(c) ** (2 / p), cy + ay * np.sign(s) * np.abs(s) ** (2 / p)], 1)


class _Painter:
    """Soft-mask compositing on a float RGB canvas; coordinates in template pixels.

    The canvas is kept as three contiguous colour planes: blending one plane with a scalar
    is several times faster than broadcasting a mask over an HxWx3 array.
    """

    def __init__(self, img: np.ndarray, k: float):
        self.planes = [np.ascontiguousarray(img[..., c]) for c in range(3)]
        self.k = k
        self.h, self.w = img.shape[:2]

    def image(self) -> np.ndarray:
        import cv2

        return cv2.merge(self.planes)

    def multiply(self, factor: np.ndarray) -> None:
        for plane in self.planes:
            plane *= factor

    def _roi(self, pts: np.ndarray, pad: float):
        x0 = max(int(math.floor(pts[:, 0].min() * self.k - pad)), 0)
        y0 = max(int(math.floor(pts[:, 1].min() * self.k - pad)), 0)
        x1 = min(int(math.ceil(pts[:, 0].max() * self.k + pad)) + 1, self.w)
        y1 = min(int(math.ceil(pts[:, 1].max() * self.k + pad)) + 1, self.h)
        return x0, y0, x1, y1

    def _draw(self, shape, polys, width, closed, x0, y0):
        import cv2

        mask = np.zeros(shape, np.uint8)
        off = np.array([x0, y0], np.float64)
        fixed = [np.round((p * self.k - off) * _ONE).astype(np.int32) for p in polys]
        if width is None:
            cv2.fillPoly(mask, fixed, 255, cv2.LINE_AA, _SHIFT)
        else:
            cv2.polylines(mask, fixed, closed, 255, max(1, int(round(width * self.k))), cv2.LINE_AA, _SHIFT)
        return mask

    def mask(self, polys, *, width=None, closed=False, blur=0.0) -> np.ndarray:
        """A full-canvas float mask in [0, 1] (for clipping other layers)."""
        import cv2

        polys = [np.asarray(p, np.float64) for p in polys]
        m = self._draw((self.h, self.w), polys, width, closed, 0, 0).astype(np.float32) / 255
        if blur > 0:
            sigma = blur * self.k
            if sigma > 8:
                small = cv2.resize(m, (self.w // 4, self.h // 4), interpolation=cv2.INTER_AREA)
                small = cv2.GaussianBlur(small, (0, 0), sigma / 4)
                m = cv2.resize(small, (self.w, self.h), interpolation=cv2.INTER_LINEAR)
            else:
                m = cv2.GaussianBlur(m, (0, 0), sigma)
        return m

    def paint(
        self,
        polys,
        color,
        *,
        alpha=1.0,
        blur=0.0,
        width=None,
        closed=False,
        mode="over",
        clip: Optional[np.ndarray] = None,
        texture: Optional[np.ndarray] = None,
    ) -> None:
        """Composite ``color`` through the (blurred) shape of ``polys``.

        ``mode``: ``over`` blends towards the colour, ``mul`` multiplies by it (shading),
        ``add`` adds it (highlights).
        """
        import cv2

        if alpha <= 0:
            return
        polys = [np.asarray(p, np.float64) for p in polys]
        pts = np.concatenate(polys)
        pad = (3 * blur + (width or 0)) * self.k + 2
        x0, y0, x1, y1 = self._roi(pts, pad)
        if x1 <= x0 or y1 <= y0:
            return
        a = self._draw((y1 - y0, x1 - x0), polys, width, closed, x0, y0).astype(np.float32)
        a *= alpha / 255
        sigma = blur * self.k
        if sigma > 5 and min(a.shape) >= 16:
            small = cv2.resize(a, (a.shape[1] // 4, a.shape[0] // 4), interpolation=cv2.INTER_AREA)
            small = cv2.GaussianBlur(small, (0, 0), sigma / 4)
            a = cv2.resize(small, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_LINEAR)
        elif sigma > 0:
            a = cv2.GaussianBlur(a, (0, 0), sigma)
        if clip is not None:
            a *= clip[y0:y1, x0:x1]
        if texture is not None:
            a *= texture[y0:y1, x0:x1]
        for plane, c in zip(self.planes, np.asarray(color, np.float64)):
            region = plane[y0:y1, x0:x1]
            if mode == "over":
                tmp = np.subtract(np.float32(c), region)
                tmp *= a
                region += tmp
            elif mode == "mul":
                tmp = a * np.float32(c - 1)
                tmp += 1
                region *= tmp
            else:
                region += a * np.float32(c)


# ----------------------------------------------------------------------------- geometry


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


def _face_outline(cx, half_left, half_right, top, cheek_y, chin_y, jaw, n=40) -> np.ndarray:
    a = np.linspace(np.pi, 2 * np.pi, n)
    upper_l = np.stack([cx + half_left * np.cos(a[: n // 2]), cheek_y + (cheek_y - top) * np.sin(a[: n // 2])], 1)
    upper_r = np.stack([cx + half_right * np.cos(a[n // 2 :]), cheek_y + (cheek_y - top) * np.sin(a[n // 2 :])], 1)
    u = np.linspace(0, 1, n)
    frac = (1 - u**jaw) ** (1 / jaw)
    frac = 0.82 * frac + 0.18 * np.sqrt(np.clip(1 - u**2, 0, 1))
    ys = cheek_y + (chin_y - cheek_y) * u
    lower_r = np.stack([cx + half_right * frac, ys], 1)
    lower_l = np.stack([cx - half_left * frac, ys], 1)[::-1]
    return np.concatenate([upper_l, upper_r, lower_r, lower_l])


def _eye_shape(c, ew, open_, tilt, peak, inner_dir, squint, n=24):
    """Upper and lower lid curves from the outer to the inner corner."""
    tilt_px = ew * math.tan(math.radians(tilt))
    outer = np.array([c[0] - inner_dir * ew, c[1] - tilt_px * 0.5 + 0.4])
    inner = np.array([c[0] + inner_dir * ew * 0.95, c[1] + tilt_px * 0.5 + 0.4])
    t = np.linspace(0, 1, n)
    base = outer[None] + t[:, None] * (inner - outer)[None]
    skew = np.clip(t, 1e-6, 1) ** (math.log(0.5) / math.log(np.clip(1 - peak if inner_dir > 0 else peak, 0.2, 0.8)))
    hu = ew * open_ * 1.15 * (1 - squint)
    hl = ew * open_ * 0.75 * (1 - 0.45 * squint)
    upper = base.copy()
    upper[:, 1] -= hu * np.sin(np.pi * skew)
    lower = base.copy()
    lower[:, 1] += hl * np.sin(np.pi * t) ** 0.9
    return upper, lower


# ----------------------------------------------------------------------------- scene parts


def _background(rng, size_px: int) -> np.ndarray:
    import cv2

    n = 56
    hsv_sat = rng.uniform(0.05, 0.5)
    base = np.empty((2, 3))
    for j in range(2):
        hue = rng.uniform(0, 1)
        val = rng.uniform(0.15, 0.95)
        base[j] = _hsv(hue, hsv_sat * rng.uniform(0.5, 1.2), val)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:n, 0:n] / (n - 1) - 0.5
    g = np.clip(0.5 + xx * math.cos(angle) + yy * math.sin(angle), 0, 1)[..., None]
    bg = (base[0] * (1 - g) + base[1] * g).astype(np.float32)
    for _ in range(int(rng.integers(3, 11))):
        color = tuple(float(v) for v in _hsv(rng.uniform(0, 1), rng.uniform(0, 0.7), rng.uniform(0.05, 1)))
        kind = rng.integers(0, 4)
        p = rng.uniform(-5, n + 5, 2)
        if kind == 0:
            q = p + rng.uniform(4, 30, 2) * rng.choice([-1, 1], 2)
            cv2.rectangle(bg, tuple(int(v) for v in p), tuple(int(v) for v in q), color, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.circle(bg, tuple(int(v) for v in p), int(rng.uniform(2, 14)), color, -1, cv2.LINE_AA)
        elif kind == 2:
            q = p + rng.uniform(-40, 40, 2)
            cv2.line(bg, tuple(int(v) for v in p), tuple(int(v) for v in q), color, int(rng.integers(1, 4)), cv2.LINE_AA)
        else:
            pts = (p + rng.uniform(-12, 12, (int(rng.integers(3, 6)), 2))).astype(np.int32)
            cv2.fillPoly(bg, [pts], color, cv2.LINE_AA)
    bg = cv2.GaussianBlur(bg, (0, 0), rng.uniform(0.4, 2.2))
    return cv2.resize(bg, (size_px, size_px), interpolation=cv2.INTER_LINEAR)


def _hsv(h, s, v) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


@functools.lru_cache(maxsize=16)
def _noise_texture(seed: int, shape_small: Tuple[int, int], size_px: int, mean: float, amp: float) -> np.ndarray:
    """Smooth noise ``mean + amp * N(0, 1)`` clipped to >= 0, fixed per identity (cached)."""
    import cv2

    small = np.random.default_rng(seed).normal(0, 1, shape_small).astype(np.float32)
    out = cv2.resize(small, (size_px, size_px), interpolation=cv2.INTER_CUBIC)
    out = np.maximum(out * amp + mean, 0)
    out.flags.writeable = False
    return out


def _draw_hair_cap(pt: _Painter, p: IdentityParams, cx, half_l, half_r, top, color, texture, yaw):
    vol = p.hair_volume
    side_y = p.cheek_y - 6 + (4 if p.hair_style == 1 else 0)
    outer = _ellipse(cx + 0.15 * yaw, p.cheek_y, (half_l + half_r) / 2 + vol, p.cheek_y - top + vol, 0, 180, 360, 48)
    outer = np.concatenate([[[cx - half_l - vol, side_y - 3]], outer, [[cx + half_r + vol, side_y - 3]]])
    t = np.linspace(1, -1, 41)
    half = np.where(t > 0, half_r, half_l)
    xs = cx + yaw + t * (half - 2.5)
    shape = {0: 3.0, 1: 2.5, 2: 6.0, 3: 1.6, 4: 3.0}[p.hair_style]
    ys = p.hairline + (side_y + 3 - p.hairline) * np.abs(t) ** shape
    if p.hair_style == 3:
        ys -= 12 * np.exp(-((np.abs(t) - 0.5) / 0.2) ** 2)
    if p.hair_style == 4:
        ys += 7 * p.hair_part * t + 3 * abs(p.hair_part)
    if p.hair_style == 2:
        r = np.random.default_rng(p.texture_seed + 7)
        ys[(np.abs(t) < 0.8)] += r.uniform(-2.5, 2.5, int((np.abs(t) < 0.8).sum()))
    inner = np.stack([xs, ys], 1)
    poly = np.concatenate([outer, inner])
    pt.paint([poly], color, alpha=1.0, blur=0.35, texture=texture)
    part_x = cx + yaw + p.hair_part * (half_r - 8)
    if p.hair_style in (0, 4):
        pt.paint([[[part_x, p.hairline + 2], [part_x - 2 * p.hair_part, top]]], color * 0.55, width=0.8, blur=0.5)


def _draw_eye(pt: _Painter, p: IdentityParams, c, inner_dir, squint, gaze, skin):
    upper, lower = _eye_shape(c, p.eye_width, p.eye_openness, p.eye_tilt, p.eye_peak, inner_dir, squint)
    almond = np.concatenate([upper, lower[::-1]])
    ew = p.eye_width
    sclera = 0.78 * np.array([0.93, 0.91, 0.89]) + 0.22 * skin
    pt.paint([almond], sclera, blur=0.15)
    clip = pt.mask([almond])
    ic = (c[0] + gaze[0], c[1] + gaze[1])
    r = ew * p.iris_size
    iris = np.asarray(p.iris_color)
    pt.paint([_ellipse(ic[0], ic[1], r, r)], iris, clip=clip)
    pt.paint([_ellipse(ic[0], ic[1], r * 0.95, r * 0.95)], iris * 0.45, width=r * 0.22, closed=True, clip=clip)
    pt.paint([_ellipse(ic[0], ic[1], r * 0.42, r * 0.42)], (0.02, 0.02, 0.02), clip=clip)
    pt.paint([_ellipse(ic[0] - 0.35 * r, ic[1] - 0.35 * r, r * 0.18, r * 0.18)], (1, 1, 1), alpha=0.85, clip=clip)
    # shadow of the upper lid on the eyeball
    pt.paint([upper], (0.35, 0.3, 0.3), width=1.6, alpha=0.45, blur=0.5, mode="mul", clip=clip)
    pt.paint([upper], (0.05, 0.04, 0.04), width=0.9 + 0.25 * ew / 8, alpha=0.95, blur=0.12)
    pt.paint([lower], skin * 0.45, width=0.5, alpha=0.5, blur=0.25)
    crease = upper.copy()
    crease[:, 1] -= 1.6 + 1.2 * p.eye_openness
    crease[:, 0] = c[0] + (crease[:, 0] - c[0]) * 1.05
    pt.paint([crease], (0.55, 0.45, 0.42), width=0.7, alpha=0.55, blur=0.45, mode="mul")


def _draw_brow(pt: _Painter, p: IdentityParams, eye, inner_dir, raise_, angle_jitter):
    ew = p.eye_width
    inner_x = eye[0] + inner_dir * (ew + 1.2)
    outer_x = eye[0] - inner_dir * ew * 1.3 * p.brow_length
    base_y = eye[1] - p.brow_height - raise_
    t = np.linspace(0, 1, 20)
    xs = inner_x + (outer_x - inner_x) * t
    tilt = math.tan(math.radians(p.brow_angle + angle_jitter)) * abs(outer_x - inner_x)
    ys = base_y - tilt * t - p.brow_arch * np.sin(np.pi * np.clip(t * 1.15, 0, 1)) + 1.0 * t**2
    th = p.brow_thickness * (1.0 - 0.55 * t**1.5)
    top = np.stack([xs, ys - th * 0.5], 1)
    bottom = np.stack([xs, ys + th * 0.5], 1)
    poly = np.concatenate([top, bottom[::-1]])
    pt.paint([poly], p.brow_color, alpha=0.92, blur=0.35)
    # the brow ridge throws a soft shadow on the upper lid
    pt.paint([poly], (0.7, 0.62, 0.6), alpha=0.35, blur=2.2, mode="mul")


def _draw_nose(pt: _Painter, p: IdentityParams, tip, light_dx):
    nw = p.nose_width
    bridge_top = (tip[0] * 0.35 + 56.0 * 0.65, 50.0)
    shade = (0.62, 0.52, 0.5)
    for side in (-1, 1):
        strength = p.nose_bridge * (1.25 if side * light_dx < 0 else 0.75)
        line = np.array(
            [
                [bridge_top[0] + side * 3.6, bridge_top[1] + 2],
                [tip[0] + side * 3.4, tip[1] - 10],
                [tip[0] + side * (nw * 0.7), tip[1] - 3],
            ]
        )
        pt.paint([line], shade, width=1.4, alpha=strength, blur=1.1, mode="mul")
        wing = _ellipse(tip[0] + side * (nw * 0.72), tip[1] + 0.6, nw * 0.32, 2.9, 0, 90 - side * 90 - 60, 90 - side * 90 + 200, 16)
        pt.paint([wing], (0.5, 0.4, 0.38), width=0.8, alpha=0.55, blur=0.45, mode="mul")
        nostril = _ellipse(tip[0] + side * nw * 0.42, tip[1] + 2.1, nw * 0.2, 1.0, side * 14)
        pt.paint([nostril], (0.16, 0.08, 0.07), alpha=0.85, blur=0.35, mode="mul")
    pt.paint([_ellipse(tip[0], tip[1] + 4.0, nw * 0.85, 1.8)], (0.68, 0.58, 0.56), alpha=0.6, blur=1.0, mode="mul")
    pt.paint([_ellipse(tip[0], tip[1] - 1.5, 2.2, 2.0)], (1, 1, 1), alpha=0.14, blur=0.9, mode="add")
    pt.paint([_ellipse(tip[0], bridge_top[1] + 7, 1.2, 5)], (1, 1, 1), alpha=0.08, blur=1.0, mode="add")


def _draw_mouth(pt: _Painter, p: IdentityParams, left, right, smile, open_, teeth):
    t = np.linspace(0, 1, 30)
    base = left[None] + t[:, None] * (right - left)[None]
    sag = 0.4 + 2.4 * smile
    line = base.copy()
    line[:, 1] += sag * np.sin(np.pi * t)
    bow = 1 - 0.32 * np.exp(-(((t - 0.5) / 0.07) ** 2))
    upper = line.copy()
    upper[:, 1] -= p.upper_lip * (1 - 0.25 * smile) * np.sin(np.pi * t) ** 0.55 * bow
    gap = 4.2 * open_
    lower_in = line.copy()
    lower_in[:, 1] += gap * np.sin(np.pi * t) ** 0.8
    lower = lower_in.copy()
    lower[:, 1] += p.lower_lip * np.sin(np.pi * t) ** 0.65
    lip = np.asarray(p.lip_color)
    # shadow under the lower lip and the philtrum
    pt.paint([_ellipse((left[0] + right[0]) / 2, lower[15, 1] + 2.2, (right[0] - left[0]) * 0.28, 1.6)],
             (0.7, 0.6, 0.58), alpha=0.6, blur=1.1, mode="mul")
    mid = upper[15]
    pt.paint([[[mid[0] - 1.3, mid[1] + 0.4], [mid[0] - 0.9, mid[1] - 8]], [[mid[0] + 1.3, mid[1] + 0.4], [mid[0] + 0.9, mid[1] - 8]]],
             (0.8, 0.72, 0.7), width=0.7, alpha=0.45, blur=0.6, mode="mul")
    pt.paint([np.concatenate([upper, line[::-1]])], lip * 0.88, blur=0.25)
    pt.paint([np.concatenate([lower_in, lower[::-1]])], lip, blur=0.3)
    if open_ > 0.05:
        hole = np.concatenate([line, lower_in[::-1]])
        pt.paint([hole], (0.18, 0.06, 0.06), blur=0.15)
        if teeth:
            tooth_band = np.concatenate([line[5:25], line[24:4:-1] + np.array([0, min(gap * 0.45, 1.8)])])
            pt.paint([tooth_band], (0.88, 0.85, 0.78), alpha=0.9, blur=0.15)
    pt.paint([line], (0.22, 0.08, 0.08), width=0.7, alpha=0.75, blur=0.25)
    pt.paint([_ellipse(lower[15, 0], (lower_in[15, 1] + lower[15, 1]) / 2, (right[0] - left[0]) * 0.14, 0.8)],
             (1, 1, 1), alpha=0.12, blur=0.7, mode="add")
    for c, d in ((left, 1), (right, -1)):
        pt.paint([_ellipse(c[0] - d * 0.3, c[1] - 0.2 * smile, 1.3, 1.0)], (0.45, 0.35, 0.33), alpha=0.5, blur=0.6, mode="mul")


def _draw_glasses(pt: _Painter, p: IdentityParams, eyes, half_l, half_r, cx):
    col = np.asarray(p.glasses_color)
    ew = p.eye_width
    th = 0.9 if p.glasses == 1 else 1.2
    rims = []
    for e in eyes:
        ax, ay = ew + 4.8, ew * 0.62 + 3.6
        rim = _ellipse(e[0], e[1] + 0.8, ax, ay, 0, 0, 360, 40) if p.glasses == 1 else _superellipse(e[0], e[1] + 0.8, ax, ay, 5.0)
        rims.append(rim)
        pt.paint([rim], (0.85, 0.9, 0.95), alpha=0.12, mode="mul")
    pt.paint(rims, col, width=th, closed=True, alpha=0.95, blur=0.15)
    bridge = _ellipse((eyes[0][0] + eyes[1][0]) / 2, eyes[0][1] + 0.5, (eyes[1][0] - eyes[0][0]) / 2 - ew - 4.5, 2.2, 0, 190, 350, 12)
    pt.paint([bridge], col, width=th, alpha=0.95, blur=0.15)
    for e, d, half in ((eyes[0], -1, half_l), (eyes[1], 1, half_r)):
        pt.paint([[[e[0] + d * (ew + 4.8), e[1] - 1.0], [cx + d * (half - 0.5), e[1] - 1.5]]], col, width=th, alpha=0.9, blur=0.15)


def _draw_occlusion(pt: _Painter, rng, skin, kind: str, eyes):
    if kind == "rect":
        col = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.8), rng.uniform(0.1, 0.95))
        w, h = rng.uniform(14, 36), rng.uniform(16, 40)
        side = rng.choice(["left", "right", "bottom"])
        if side == "bottom":
            c = (rng.uniform(28, 84), rng.uniform(96, 108) + h / 2 - 6)
        else:
            sx = -1 if side == "left" else 1
            c = (56 + sx * (rng.uniform(26, 36) + w / 2 - 7), rng.uniform(55, 100))
        rect = _superellipse(c[0], c[1], w / 2, h / 2, 10)
        ang = math.radians(rng.uniform(-25, 25))
        rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
        rect = (rect - np.array(c)) @ rot.T + np.array(c)
        pt.paint([rect], col, blur=0.2)
        pt.paint([rect], (0.6, 0.6, 0.6), alpha=0.25, blur=1.5, mode="mul")
    elif kind == "hand":
        col = skin * rng.uniform(0.85, 1.1, 3)
        sx = rng.choice([-1, 1])
        palm_c = np.array([56 + sx * rng.uniform(22, 38), rng.uniform(92, 110)])
        ang = rng.uniform(-30, 30) - sx * 35
        palm = _ellipse(palm_c[0], palm_c[1], 13, 10, ang)
        pt.paint([palm], col, blur=0.4)
        direction = np.array([math.sin(math.radians(-ang)), -math.cos(math.radians(ang))])
        direction = direction / np.linalg.norm(direction)
        normal = np.array([-direction[1], direction[0]])
        fingers = []
        for j, length in enumerate(rng.uniform(9, 15, 4)):
            start = palm_c + normal * (j - 1.5) * 4.2 + direction * 6
            fingers.append(np.array([start, start + direction * length]))
        pt.paint(fingers, col, width=3.8, blur=0.3)
        pt.paint(fingers, (0.6, 0.5, 0.48), width=0.5, alpha=0.5, blur=0.6, mode="mul")
        pt.paint([palm], (0.75, 0.68, 0.65), alpha=0.25, blur=3.0, mode="mul")
    else:
        shade = rng.uniform(0.02, 0.25)
        alpha = rng.uniform(0.55, 0.85)
        lenses = [_superellipse(e[0], e[1] + 1.5, rng.uniform(10.5, 13), rng.uniform(7, 9.5), 3.0) for e in eyes]
        pt.paint(lenses, (shade, shade, shade * 1.1), alpha=alpha, blur=0.2)
        pt.paint([lenses[0]], (1, 1, 1), alpha=0.15, blur=2.0, mode="add")
        pt.paint(lenses, (0.05, 0.05, 0.05), width=1.0, closed=True, alpha=0.9, blur=0.15)
        pt.paint([[[eyes[0][0] + 10, eyes[0][1]], [eyes[1][0] - 10, eyes[1][1]]]], (0.05, 0.05, 0.05), width=1.2, blur=0.15)
        for e, d in ((eyes[0], -1), (eyes[1], 1)):
            pt.paint([[[e[0] + d * 11, e[1]], [e[0] + d * 30, e[1] - 1]]], (0.05, 0.05, 0.05), width=1.4, blur=0.15)


# ----------------------------------------------------------------------------- render


def render_face(
    identity: IdentityParams, rng: np.random.Generator, *, size: int = FACE_SIZE, nuisances: bool = True
) -> np.ndarray:
    """One aligned face of ``identity`` with per-image nuisances drawn from ``rng``.

    Nuisances: in-plane rotation (sd 4.5 deg, at most 11), scale 0.93-1.07, shift up to 2.5 px,
    yaw-like horizontal shift of the features (up to 3 px, nose 1.7x), small pitch of the nose;
    expression (smile, open mouth, squint, brow raise); directional light, ambient level,
    contrast, colour cast, gamma; Gaussian or motion blur; sensor noise; an occluder on 20% of
    images (rectangle, hand or sunglasses); cluttered background and clothing colour.

    Args:
        identity: the person, from :func:`synth_identity`.
        rng: the image's random stream (e.g. :func:`image_rng`).
        size: output side in pixels; the template is scaled by ``size / 112``.
        nuisances: ``False`` renders the identity's neutral, frontal, evenly lit,
            unoccluded face (landmarks exactly at :meth:`IdentityParams.landmarks`).

    Returns:
        uint8 RGB array ``(size, size, 3)``.
    """
    import cv2

    if not isinstance(identity, IdentityParams):
        raise TypeError(f"identity must be an IdentityParams, got {type(identity).__name__}")
    if int(size) != size or size < 32:
        raise ValueError(f"size must be an integer >= 32, got {size!r}")
    size = int(size)
    ss = max(1, int(math.ceil(_SUPERSAMPLE_PX / size)))
    n = size * ss
    k = n / FACE_SIZE
    p = identity
    nz = nuisances

    # per-image draws (always drawn in the same order, so `nuisances` only switches them off)
    yaw = rng.uniform(-3, 3)
    pitch = rng.uniform(-1.2, 1.2)
    angle = float(np.clip(rng.normal(0, 4.5), -11, 11))
    scale = rng.uniform(0.93, 1.07)
    shift = rng.uniform(-2.5, 2.5, 2)
    smile = rng.uniform(0, 1) if rng.random() < 0.45 else 0.0
    open_ = rng.uniform(0.1, 1) if rng.random() < 0.3 else 0.0
    teeth = rng.random() < 0.6
    squint = rng.uniform(0, 0.45) if rng.random() < 0.3 else 0.0
    brow_raise = rng.uniform(-1.5, 2.5)
    brow_jitter = rng.uniform(-3, 3)
    gaze = rng.uniform(-1.0, 1.0, 2) * np.array([1.0, 0.4])
    tan = rng.normal(1, 0.03, 3)
    light_angle = rng.uniform(0, 2 * np.pi)
    light = rng.uniform(0, 0.55)
    ambient = rng.uniform(0.72, 1.18)
    contrast = rng.uniform(0.75, 1.15)
    cast = rng.normal(1, 0.06, 3)
    gamma = rng.uniform(0.85, 1.2)
    blur = rng.uniform(0.3, 1.1) if rng.random() < 0.45 else 0.0
    motion = int(rng.integers(3, 6)) if rng.random() < 0.08 else 0
    motion_angle = rng.uniform(0, 180)
    noise = rng.uniform(0, 7)
    occlusion = rng.choice(["none", "rect", "hand", "sunglasses"], p=[0.8, 0.08, 0.07, 0.05])
    shirt = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.8), rng.uniform(0.08, 0.9))
    if not nz:
        yaw = pitch = angle = smile = open_ = squint = brow_raise = brow_jitter = light = noise = 0.0
        blur = 0.0
        motion = 0
        scale, shift, gaze, tan = 1.0, np.zeros(2), np.zeros(2), np.ones(3)
        ambient = contrast = gamma = 1.0
        cast = np.ones(3)
        occlusion = "none"
        shirt = np.array([0.3, 0.35, 0.45])

    img = _background(rng, n) if nz else np.full((n, n, 3), 0.5, np.float32)
    pt = _Painter(img, k)
    skin = np.asarray(p.skin_color) * tan
    hair = np.asarray(p.hair_color)
    lm = _landmarks(p, dx=yaw, nose_dx=0.7 * yaw, smile=smile, nose_dy=pitch)
    eyes = lm[:2]
    cx = 56.0 + 0.2 * yaw
    half_l = p.face_half_width + 0.25 * yaw
    half_r = p.face_half_width - 0.25 * yaw
    top = -22.0
    light_dx = math.cos(light_angle) * light
    hair_tex = _noise_texture(p.texture_seed, (6, 64), n, 1.0, 0.12)

    # body, hair behind the head, ears
    pt.paint([_ellipse(cx, 150, 78, 42)], shirt, blur=0.5)
    neck_w = p.face_half_width * 0.62
    neck = np.array([[cx - neck_w, 80], [cx + neck_w, 80], [cx + neck_w + 3, 135], [cx - neck_w - 3, 135]])
    pt.paint([neck], skin * 0.78, blur=0.6)
    if p.hair_style == 1:
        back = np.concatenate(
            [
                _ellipse(cx, p.cheek_y, p.face_half_width + p.hair_volume + 3, p.cheek_y - top + p.hair_volume, 0, 180, 360, 32),
                [[cx + p.face_half_width + p.hair_volume + 6, 135], [cx - p.face_half_width - p.hair_volume - 6, 135]],
            ]
        )
        pt.paint([back], hair * 0.8, blur=0.6, texture=hair_tex)
    ear_y = (eyes[0][1] + lm[2][1]) / 2 + 1
    for side, half in ((-1, half_l), (1, half_r)):
        es = p.ear_size * (1 - 0.06 * side * yaw)
        ear = _ellipse(cx + side * (half - 1.5), ear_y, 5.2 * es, 12.5 * es, side * 8)
        pt.paint([ear], skin * 0.93, blur=0.4)
        pt.paint([_ellipse(cx + side * (half + 0.8), ear_y, 2.6 * es, 8 * es, side * 8)], (0.65, 0.52, 0.5),
                 width=0.9, closed=True, alpha=0.5, blur=0.8, mode="mul")

    # face skin with soft 3-D shading
    outline = _face_outline(cx, half_l, half_r, top, p.cheek_y, p.chin_y, p.jaw_shape)
    pt.paint([_face_outline(cx, half_l * 0.9, half_r * 0.9, top, p.cheek_y, p.chin_y + 6, p.jaw_shape)],
             (0.55, 0.47, 0.45), alpha=0.7, blur=3.0, mode="mul")
    face_mask = pt.mask([outline], blur=0.3)
    pt.paint([outline], skin, blur=0.3)
    inner = pt.mask([outline], blur=7.0)
    shading = np.clip(1.0 - 0.42 * face_mask * (1 - np.clip(inner * 1.6 - 0.6, 0, 1)), 0, 1)
    pt.multiply(shading)
    for side, half in ((-1, half_l), (1, half_r)):
        pt.paint([_ellipse(cx + side * half * 0.55, p.cheek_y + 16, 9, 6)], (1.0, 0.75, 0.7), alpha=p.blush + 0.1 * smile,
                 blur=3.5, mode="mul")
        pt.paint([_ellipse(cx + side * half * 0.62, p.cheek_y + 4, 9, 5)], (1, 1, 1), alpha=0.07, blur=3.0, mode="add")
    pt.paint([_ellipse(cx, lm[2][1] - 36, 16, 9)], (1, 1, 1), alpha=0.06, blur=4.0, mode="add")
    pt.paint([_ellipse(cx, p.chin_y - 6, 10, 5)], (1, 1, 1), alpha=0.05, blur=2.5, mode="add")

    # beard below the features, then the hair framing the face
    beard_tex = None
    beard_color = np.minimum(hair * 0.9, skin * 0.6)
    if p.beard:
        fine = p.beard == 1
        beard_tex = _noise_texture(p.texture_seed + 3, (100, 100) if fine else (64, 64), n, 0.8, 0.5 if fine else 0.2)
    left_m, right_m = lm[3], lm[4]
    if p.beard in (1, 3):
        top_y = lm[2][1] + 4
        beard_poly = np.concatenate(
            [
                [[cx - half_l - 2, p.cheek_y + 4], [left_m[0] - 5, top_y + 4], [cx, top_y], [right_m[0] + 5, top_y + 4],
                 [cx + half_r + 2, p.cheek_y + 4]],
                [[cx + half_r + 5, p.chin_y + 8], [cx - half_l - 5, p.chin_y + 8]],
            ]
        )
        alpha = 0.35 if p.beard == 1 else 0.85
        pt.paint([beard_poly], beard_color, alpha=alpha, blur=2.0, clip=face_mask, texture=beard_tex)
    _draw_hair_cap(pt, p, cx, half_l, half_r, top, hair, hair_tex, yaw)

    # eye sockets, brows, eyes
    for e, d in ((eyes[0], 1), (eyes[1], -1)):
        pt.paint([_ellipse(e[0] + d * 1.0, e[1] - 1.5, p.eye_width * 1.55, p.eye_width * 1.05)], (0.7, 0.6, 0.58),
                 alpha=0.75, blur=2.2, mode="mul")
        pt.paint([_ellipse(e[0] + d * 2.0, e[1] + 4.5, p.eye_width * 1.0, 2.0)], (0.8, 0.7, 0.7), alpha=0.5, blur=1.2,
                 mode="mul")
    for e, d in ((eyes[0], 1), (eyes[1], -1)):
        _draw_brow(pt, p, e, d, brow_raise, d * brow_jitter * 0.5)
    for e, d in ((eyes[0], 1), (eyes[1], -1)):
        _draw_eye(pt, p, e, d, squint + 0.25 * smile, gaze, skin)

    # nose, folds, mouth, moustache
    _draw_nose(pt, p, lm[2], light_dx + 0.15 * yaw)
    for c, d in ((left_m, -1), (right_m, 1)):
        fold = np.array([[lm[2][0] + d * (p.nose_width + 0.5), lm[2][1] - 1], [c[0] + d * 3.2, c[1] - 5], [c[0] + d * 3.6, c[1] + 1.5]])
        pt.paint([fold], (0.6, 0.5, 0.48), width=1.0, alpha=0.25 + 0.35 * smile, blur=1.0, mode="mul")
    _draw_mouth(pt, p, left_m, right_m, smile, open_, teeth)
    if p.beard in (2, 3):
        t = np.linspace(0, 1, 24)
        xs = left_m[0] - 1.5 + (right_m[0] - left_m[0] + 3) * t
        ys = left_m[1] + (right_m[1] - left_m[1]) * t - 0.6 * p.upper_lip * np.sin(np.pi * t) ** 0.5
        top_y = np.maximum(ys - 1.2 - 4.0 * np.sin(np.pi * t) ** 0.6, lm[2][1] + 4.2)
        stache = np.concatenate([np.stack([xs, ys], 1), np.stack([xs, top_y], 1)[::-1]])
        pt.paint([stache], beard_color, alpha=0.9, blur=0.6, texture=beard_tex)
    for mx, my, mr in p.moles:
        pt.paint([_ellipse(mx + yaw, my, mr, mr)], (0.25, 0.15, 0.1), alpha=0.8, blur=0.3, clip=face_mask)
    if p.glasses:
        _draw_glasses(pt, p, eyes, half_l, half_r, cx)
    if occlusion != "none":
        _draw_occlusion(pt, rng, skin, str(occlusion), eyes)

    # geometric nuisance: rotation and scale about the face centre, shift
    img = pt.image()
    if nz:
        centre = (56.0 * k, 66.0 * k)
        m = cv2.getRotationMatrix2D(centre, angle, scale)
        m[:, 2] += shift * k
        img = cv2.warpAffine(img, m, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)

    # illumination: directional gradient, ambient, contrast, colour cast, gamma
    if nz:
        yy, xx = np.mgrid[0:n:ss, 0:n:ss].astype(np.float32) / n - 0.5
        grad = 1 + light * (xx * math.cos(light_angle) + yy * math.sin(light_angle)) * 1.6
        grad = cv2.resize(grad, (n, n), interpolation=cv2.INTER_LINEAR)
        img *= grad[..., None]
    out = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA) if ss > 1 else img
    if nz:
        out = out * (ambient * cast).astype(np.float32)
        mean = float(out.mean())
        out = (out - mean) * contrast + mean
        out = np.clip(out, 0, 1) ** gamma
        if blur > 0:
            out = cv2.GaussianBlur(out, (0, 0), blur * size / FACE_SIZE)
        if motion:
            kern = np.zeros((motion, motion), np.float32)
            kern[motion // 2] = 1.0 / motion
            kern = cv2.warpAffine(kern, cv2.getRotationMatrix2D(((motion - 1) / 2, (motion - 1) / 2), motion_angle, 1.0),
                                  (motion, motion))
            out = cv2.filter2D(out, -1, kern / max(float(kern.sum()), 1e-6))
        if noise > 0:
            out = out + rng.normal(0, noise / 255, out.shape).astype(np.float32)
    return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- datasets


def _identity_list(identities) -> list:
    if isinstance(identities, (int, np.integer)):
        if identities < 1:
            raise ValueError(f"identities must be >= 1, got {identities}")
        return list(range(int(identities)))
    ids = [int(i) for i in identities]
    if not ids or min(ids) < 0:
        raise ValueError(f"identities must be a positive count or non-negative indices, got {identities!r}")
    return ids


def lookalike_pair_identity(seed: int, identity: int) -> IdentityParams:
    """Identity ``identity`` of a set made of look-alike pairs: even ones are drawn as usual, odd
    ones are look-alikes of the even one before them (its colouring and hair, their own geometry)."""
    own = synth_identity(identity_rng(seed, identity))
    if identity % 2 == 0:
        return own
    return lookalike_identity(synth_identity(identity_rng(seed, identity - 1)), own)


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
