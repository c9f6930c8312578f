"""Training augmentation as tf.data functions: flip, crop, photometric and low resolution.

The crop, photometric and low-resolution steps follow AdaFace's augmenter (Kim et al., CVPR 2022,
arXiv:2204.00964), each applied with its own probability: a random resized crop (area 0.2-1,
aspect 0.75-1.33) pasted back at the same place on a black canvas, so the face stays aligned;
colour jitter (brightness, contrast, saturation 0.5); a downscale by a side ratio U(0.2, 1) and
an upscale back with a random interpolation. Images are uint8 RGB in and out.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AugmentConfig", "random_flip", "random_crop_paste", "photometric", "low_resolution", "augmenter"]

_METHODS = ("bilinear", "nearest", "bicubic", "area")


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities of each step (AdaFace's recipe uses 0.2 for the last three)."""

    flip: float = 0.5
    crop: float = 0.2
    photometric: float = 0.2
    low_res: float = 0.2


def _coin(p: float):
    import tensorflow as tf

    return tf.random.uniform([]) < p


def random_flip(image, p: float = 0.5):
    import tensorflow as tf

    return tf.cond(_coin(p), lambda: tf.reverse(image, axis=[1]), lambda: image)


def random_crop_paste(image, p: float = 0.2, *, scale=(0.2, 1.0), ratio=(0.75, 4.0 / 3.0)):
    """Keep a random rectangle of the face and black out the rest (no resize, alignment kept)."""
    import tensorflow as tf

    def crop():
        h = tf.cast(tf.shape(image)[0], tf.float32)
        w = tf.cast(tf.shape(image)[1], tf.float32)
        area = tf.random.uniform([], scale[0], scale[1]) * h * w
        log_ratio = tf.random.uniform([], tf.math.log(ratio[0]), tf.math.log(ratio[1]))
        aspect = tf.exp(log_ratio)
        ch = tf.clip_by_value(tf.round(tf.sqrt(area / aspect)), 1.0, h)
        cw = tf.clip_by_value(tf.round(tf.sqrt(area * aspect)), 1.0, w)
        y0 = tf.floor(tf.random.uniform([], 0.0, h - ch + 1.0))
        x0 = tf.floor(tf.random.uniform([], 0.0, w - cw + 1.0))
        ys = tf.range(h)[:, None]
        xs = tf.range(w)[None, :]
        inside = (ys >= y0) & (ys < y0 + ch) & (xs >= x0) & (xs < x0 + cw)
        return tf.where(inside[..., None], image, tf.zeros_like(image))

    return tf.cond(_coin(p), crop, lambda: image)


def photometric(image, p: float = 0.2, *, brightness: float = 0.5, contrast: float = 0.5, saturation: float = 0.5):
    """Colour jitter with torchvision's factor ranges ``[1 - v, 1 + v]``, in random order-free sequence."""
    import tensorflow as tf

    def jitter():
        x = tf.cast(image, tf.float32) / 255.0
        x = x * tf.random.uniform([], 1 - brightness, 1 + brightness)
        mean = tf.reduce_mean(tf.image.rgb_to_grayscale(x))
        x = (x - mean) * tf.random.uniform([], 1 - contrast, 1 + contrast) + mean
        grey = tf.image.rgb_to_grayscale(x)
        x = (x - grey) * tf.random.uniform([], 1 - saturation, 1 + saturation) + grey
        return tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), image.dtype)

    return tf.cond(_coin(p), jitter, lambda: image)


def low_resolution(image, p: float = 0.2, *, min_ratio: float = 0.2):
    """Down- then up-scale by a random side ratio with a random interpolation (AdaFace's low-res step)."""
    import tensorflow as tf

    def degrade():
        size = tf.shape(image)[:2]
        ratio = tf.random.uniform([], min_ratio, 1.0)
        small = tf.maximum(tf.cast(tf.round(tf.cast(size, tf.float32) * ratio), tf.int32), 1)
        x = tf.cast(image, tf.float32)
        branch = tf.random.uniform([], 0, len(_METHODS), dtype=tf.int32)
        resized = tf.switch_case(branch, [
            (lambda m=m: tf.image.resize(tf.image.resize(x, small, method=m), size, method=m)) for m in _METHODS
        ])
        return tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), image.dtype)

    return tf.cond(_coin(p), degrade, lambda: image)


def augmenter(config: AugmentConfig = AugmentConfig()):
    """A ``(image, label) -> (image, label)`` function for ``Dataset.map``."""

    def apply(image, label):
        image = random_flip(image, config.flip)
        image = random_crop_paste(image, config.crop)
        image = photometric(image, config.photometric)
        image = low_resolution(image, config.low_res)
        return image, label

    return apply
