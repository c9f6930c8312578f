"""Rendering: one aligned face of an identity with per-image nuisances (pose, expression, light, blur, noise)."""
from __future__ import annotations

import math

import numpy as np

from lcefr.data.synth.canvas import _ellipse, _hsv, _Painter
from lcefr.data.synth.identity import IdentityParams, _landmarks
from lcefr.data.synth.parts import (
    _background,
    _draw_brow,
    _draw_eye,
    _draw_glasses,
    _draw_hair_cap,
    _draw_mouth,
    _draw_nose,
    _draw_occlusion,
    _face_outline,
    _noise_texture,
)
from lcefr.preprocess import FACE_SIZE

__all__ = ["render_face"]

_SUPERSAMPLE_PX = 336


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
