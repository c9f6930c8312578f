"""Drawing primitives: arcs, (super-)ellipses and the soft-mask painter the face parts are drawn with."""
from __future__ import annotations

import functools
import math
from typing import Optional, Tuple

import numpy as np

_SHIFT = 4
_ONE = 1 << _SHIFT


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


def _hsv(h, s, v) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])
