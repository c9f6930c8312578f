"""Face parts and scene pieces: face outline, eyes, brows, nose, mouth, hair, glasses, occluders, background."""
from __future__ import annotations

import functools
import math
from typing import Tuple

import numpy as np

from lcefr.data.synth.canvas import _ellipse, _hsv, _Painter, _superellipse
from lcefr.data.synth.identity import IdentityParams


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
