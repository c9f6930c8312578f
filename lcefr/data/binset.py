"""insightface ``.bin`` verification sets (LFW, CFP-FP, AgeDB-30, CALFW, CPLFW, ...): read and write.

A ``.bin`` is a pickle of ``(bins, issame_list)``: ``bins`` holds ``2 * len(issame_list)``
encoded images (pair ``i`` = ``bins[2i], bins[2i+1]``), each either raw file bytes (insightface's
packers, Python 2 ``str`` read back as ``bytes``) or a uint8 array of encoded bytes
(``cv2.imencode`` output); ``issame_list`` holds one bool per pair.

Reading never runs code from the file: the unpickler only accepts the numpy types that such
files use (a plain ``pickle.load`` of a downloaded file would execute whatever it names).
"""
from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Union

import numpy as np

from lcefr.fileio import write_atomic
from lcefr.preprocess import FACE_SIZE

__all__ = ["BinFormatError", "VerificationSet", "read_bin", "write_bin", "decode_element", "encode_image"]

Element = Union[bytes, np.ndarray]


class BinFormatError(ValueError):
    """A ``.bin`` file that is not a verification set, or holds an image that does not decode."""


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "bytearray"),
    ("__builtin__", "bytearray"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a .bin verification set")


@dataclass
class VerificationSet:
    """Decoded pairs: ``images`` uint8 RGB (2N, 112, 112, 3), pair i = rows 2i, 2i+1."""

    name: str
    images: np.ndarray
    issame: np.ndarray

    @property
    def pairs(self) -> int:
        return len(self.issame)


def _unpickle(path: str):
    with open(path, "rb") as f:
        data = f.read()
    errors = []
    for kwargs in ({}, {"encoding": "bytes"}):
        try:
            return _SafeUnpickler(io.BytesIO(data), **kwargs).load()
        except UnicodeDecodeError as err:
            errors.append(err)
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as err:
            raise BinFormatError(f"{path}: not a .bin verification set ({err})") from None
    raise BinFormatError(f"{path}: not a .bin verification set ({errors[-1]})")


def _quiet_opencv(cv2) -> None:
    """A corrupt element is reported by our error, not by OpenCV's own warning lines on stderr."""
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:
        pass


def decode_element(element: Element, *, size: int = FACE_SIZE) -> np.ndarray:
    """One ``.bin`` element (bytes or uint8 array of encoded bytes) as uint8 RGB ``size`` x ``size``.

    Images of another size are resized (insightface resizes too); a grey image gets three channels.

    Raises:
        ValueError: the bytes are not an image OpenCV can decode.
    """
    import cv2

    _quiet_opencv(cv2)
    buffer = np.frombuffer(bytes(np.asarray(element, dtype=np.uint8).ravel()) if isinstance(element, np.ndarray) else bytes(element), np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    if image is None:
        raise ValueError("not a decodable image")
    if image.shape[:2] != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode_image(rgb: np.ndarray, *, fmt: str = ".jpg", quality: int = 95) -> bytes:
    """uint8 RGB image as encoded bytes (``.jpg`` or ``.png``)."""
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt in (".jpg", ".jpeg") else []
    ok, buffer = cv2.imencode(fmt, cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"cannot encode image as {fmt}")
    return buffer.tobytes()


def read_bin(path: str, *, size: int = FACE_SIZE, progress: Optional[Callable[[int], None]] = None) -> VerificationSet:
    """Read and decode a ``.bin`` verification set.

    Args:
        path: the ``.bin`` file.
        size: output image side (112 for every model here).
        progress: called with the number of images decoded since the last call.

    Raises:
        FileNotFoundError: no such file.
        BinFormatError: not a pickle of ``(bins, issame_list)`` with ``len(bins) == 2 * len(issame)``,
            or an element that does not decode (the message names its index).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such .bin file: {path}")
    payload = _unpickle(path)
    if not (isinstance(payload, (tuple, list)) and len(payload) == 2):
        raise BinFormatError(f"{path}: expected a pickled (bins, issame_list) pair, got {type(payload).__name__}")
    bins, issame = payload
    try:
        issame = np.asarray(issame, dtype=bool).ravel()
        count = len(bins)
    except (TypeError, ValueError) as err:
        raise BinFormatError(f"{path}: malformed (bins, issame_list): {err}") from None
    if count != 2 * len(issame) or count == 0:
        raise BinFormatError(f"{path}: {count} images for {len(issame)} pairs (expected two images per pair)")
    images = np.empty((count, size, size, 3), np.uint8)
    for i, element in enumerate(bins):
        if not isinstance(element, (bytes, bytearray, np.ndarray)):
            raise BinFormatError(f"{path}: element {i} is a {type(element).__name__}, not encoded image bytes")
        try:
            images[i] = decode_element(element, size=size)
        except ValueError:
            raise BinFormatError(f"{path}: image {i} (pair {i // 2}) is corrupt: it does not decode") from None
        if progress is not None and (i + 1) % 256 == 0:
            progress(256)
    if progress is not None and count % 256:
        progress(count % 256)
    name = os.path.splitext(os.path.basename(path))[0]
    return VerificationSet(name=name, images=images, issame=issame)


def write_bin(
    path: str,
    elements: Sequence[Element],
    issame: Sequence[bool],
    *,
    as_arrays: bool = False,
) -> None:
    """Write a ``.bin`` (atomically) from encoded images, pair i = elements 2i, 2i+1.

    Args:
        elements: encoded image bytes (or uint8 arrays of them).
        issame: one bool per pair.
        as_arrays: store elements as uint8 ``(n, 1)`` arrays (``cv2.imencode`` style) instead of bytes.
    """
    issame_list: List[bool] = [bool(s) for s in issame]
    if len(elements) != 2 * len(issame_list):
        raise ValueError(f"expected two images per pair, got {len(elements)} images for {len(issame_list)} pairs")
    stored = [
        np.frombuffer(bytes(np.asarray(e, np.uint8).ravel()) if isinstance(e, np.ndarray) else bytes(e), np.uint8).reshape(-1, 1)
        if as_arrays
        else (bytes(np.asarray(e, np.uint8).ravel()) if isinstance(e, np.ndarray) else bytes(e))
        for e in elements
    ]
    write_atomic(path, pickle.dumps((stored, issame_list), protocol=pickle.HIGHEST_PROTOCOL))
