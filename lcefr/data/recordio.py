"""Read insightface training sets stored as MXNet RecordIO (``train.rec`` / ``train.idx`` / ``property``).

Pure Python: no MXNet at run time. The file format is dmlc recordio: every frame is a
little-endian ``uint32`` magic word ``0xced7230a``, a ``uint32`` ``lrec`` whose top 3 bits
are the continuation flag (``cflag``) and whose low 29 bits are the payload length, then the
payload padded with zeros to a multiple of 4 bytes. A record whose bytes contain the magic
word at a 4-byte aligned offset is written as several frames (cflag 1 = first, 2 = middle,
3 = last), split where the magic word was; joining the parts puts the magic word back.

Each record starts with an ``IRHeader`` (``<IfQQ``: flag, label, id, id2; 24 bytes). When
``flag > 0``, ``flag`` float32 values follow and are the label; the rest is the encoded image.
In the insightface layout (``face2rec2.py``) record 0 has ``flag = 2`` and label
``[N_img + 1, N_img + 1 + N_ids]``: keys ``1 .. label[0] - 1`` are images, keys
``label[0] .. label[1] - 1`` are identities whose label is ``[first_key, end_key)``.
When record 0 has ``flag = 0`` every key is an image.
"""
from __future__ import annotations

import collections
import itertools
import os
import struct
import threading
from typing import BinaryIO, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "MAGIC",
    "IRHeader",
    "Frame",
    "RecordIOError",
    "RecordIOReader",
    "unpack_header",
    "read_record_at",
    "iter_frames",
    "recordio_dataset",
]

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_FRAME = struct.Struct("<II")
_HEADER = struct.Struct("<IfQQ")
_LENGTH_MASK = (1 << 29) - 1

IRHeader = collections.namedtuple("IRHeader", ["flag", "label", "id", "id2"])
IRHeader.__doc__ = """Record header. ``label`` is a float32 scalar when ``flag == 0``, else a float32 array of ``flag`` values."""


class Frame(NamedTuple):
    """One dmlc recordio frame: where it starts, its continuation flag and its payload length."""

    offset: int
    cflag: int
    length: int


class RecordIOError(ValueError):
    """A RecordIO dataset is missing a file or its bytes do not follow the format."""


def _name(fileobj) -> str:
    return str(getattr(fileobj, "name", "<stream>"))


def _read_exact(fileobj: BinaryIO, size: int, *, what: str, offset: int) -> bytes:
    data = fileobj.read(size)
    if len(data) != size:
        raise RecordIOError(
            f"{_name(fileobj)}: truncated at offset {offset}: {what} needs {size} bytes, only {len(data)} left"
        )
    return data


def _read_frame(fileobj: BinaryIO, offset: int) -> Tuple[int, bytes]:
    """(cflag, payload) of the frame at the file's current position ``offset``."""
    head = fileobj.read(_FRAME.size)
    if len(head) == 0:
        raise RecordIOError(f"{_name(fileobj)}: offset {offset} is at or past the end of the file")
    if len(head) != _FRAME.size:
        raise RecordIOError(
            f"{_name(fileobj)}: truncated at offset {offset}: frame header needs {_FRAME.size} bytes, "
            f"only {len(head)} left"
        )
    magic, lrec = _FRAME.unpack(head)
    if magic != MAGIC:
        raise RecordIOError(
            f"{_name(fileobj)}: bad magic 0x{magic:08x} at offset {offset} (expected 0x{MAGIC:08x}); "
            "not a RecordIO file, or the index points into the middle of a record"
        )
    cflag, length = lrec >> 29, lrec & _LENGTH_MASK
    if cflag > 3:
        raise RecordIOError(f"{_name(fileobj)}: invalid continuation flag {cflag} at offset {offset}")
    payload = _read_exact(fileobj, length, what=f"record of {length} bytes", offset=offset)
    pad = -length % 4
    if pad:
        fileobj.read(pad)  # a missing pad at the very end of the file loses no data
    return cflag, payload


def read_record_at(fileobj: BinaryIO, offset: int) -> bytes:
    """The record starting at byte ``offset`` of an open ``.rec`` file, split frames joined.

    Args:
        fileobj: a binary file object opened for reading (seekable).
        offset: byte offset of the record's first frame, as listed in ``train.idx``.

    Returns:
        The record bytes: ``IRHeader``, optional float32 labels, then the encoded image.

    Raises:
        RecordIOError: bad magic, truncated record, offset past the end, or a split record
            whose frames are out of order.
    """
    if not isinstance(offset, (int, np.integer)) or offset < 0:
        raise RecordIOError(f"{_name(fileobj)}: record offset must be a non-negative integer, got {offset!r}")
    offset = int(offset)
    fileobj.seek(offset)
    cflag, payload = _read_frame(fileobj, offset)
    if cflag == 0:
        return payload
    if cflag != 1:
        raise RecordIOError(
            f"{_name(fileobj)}: offset {offset} is the middle or end of a split record (cflag {cflag}), "
            "not the start of a record"
        )
    parts = [payload]
    while True:
        position = fileobj.tell()
        cflag, payload = _read_frame(fileobj, position)
        if cflag not in (2, 3):
            raise RecordIOError(
                f"{_name(fileobj)}: split record starting at offset {offset} is not terminated: "
                f"frame at offset {position} has cflag {cflag}, expected 2 or 3"
            )
        parts.append(payload)
        if cflag == 3:
            return _MAGIC_BYTES.join(parts)


def iter_frames(fileobj: BinaryIO) -> Iterator[Frame]:
    """Every frame of a ``.rec`` file from the current position on, without reading the index.

    Raises:
        RecordIOError: bad magic or a truncated frame.
    """
    while True:
        offset = fileobj.tell()
        head = fileobj.read(_FRAME.size)
        if not head:
            return
        if len(head) != _FRAME.size:
            raise RecordIOError(
                f"{_name(fileobj)}: truncated at offset {offset}: frame header needs {_FRAME.size} bytes, "
                f"only {len(head)} left"
            )
        fileobj.seek(offset)
        cflag, payload = _read_frame(fileobj, offset)
        yield Frame(offset, cflag, len(payload))


def unpack_header(record: bytes) -> Tuple[IRHeader, bytes]:
    """Split a record into its ``IRHeader`` and the remaining bytes (the encoded image).

    Args:
        record: bytes returned by :func:`read_record_at` or :meth:`RecordIOReader.read_record`.

    Returns:
        ``(header, payload)``. ``header.label`` is ``np.float32`` when ``flag == 0``, else a
        float32 array of ``flag`` values (the labels stored after the struct).

    Raises:
        RecordIOError: the record is shorter than its header says.
    """
    record = bytes(record)
    if len(record) < _HEADER.size:
        raise RecordIOError(f"record of {len(record)} bytes is shorter than the {_HEADER.size}-byte IRHeader")
    flag, label, rid, rid2 = _HEADER.unpack_from(record)
    rest = record[_HEADER.size:]
    if flag > 0:
        if len(rest) < 4 * flag:
            raise RecordIOError(
                f"record header has flag {flag} (that many float32 labels) but only {len(rest)} bytes follow it"
            )
        label = np.frombuffer(rest, dtype="<f4", count=flag).astype(np.float32)
        rest = rest[4 * flag:]
    else:
        label = np.float32(label)
    return IRHeader(flag, label, rid, rid2), rest


def _class_of(header: IRHeader) -> int:
    label = header.label
    return int(label[0]) if np.ndim(label) else int(label)


def _resolve(path: str) -> Tuple[str, str, str]:
    """(rec, idx, property) paths for a dataset directory, a ``.../train`` prefix or a ``.rec``/``.idx`` path."""
    path = os.fspath(path)
    if os.path.isdir(path):
        prefix = os.path.join(path, "train")
    else:
        root, ext = os.path.splitext(path)
        prefix = root if ext in (".rec", ".idx") else path
    return prefix + ".rec", prefix + ".idx", os.path.join(os.path.dirname(prefix) or ".", "property")


def _read_property(path: str) -> Tuple[int, Tuple[int, int]]:
    if not os.path.isfile(path):
        raise RecordIOError(f"missing property file {path} (expected one line 'num_classes,height,width')")
    with open(path, "r") as f:
        text = f.read().strip()
    fields = [v.strip() for v in text.split(",")]
    try:
        num_classes, height, width = (int(v) for v in fields)
    except ValueError:
        raise RecordIOError(f"{path}: expected one line 'num_classes,height,width', got {text[:80]!r}") from None
    if num_classes <= 0 or height <= 0 or width <= 0:
        raise RecordIOError(f"{path}: expected positive 'num_classes,height,width', got {text[:80]!r}")
    return num_classes, (height, width)


def _read_index(path: str) -> Dict[int, int]:
    if not os.path.isfile(path):
        raise RecordIOError(f"missing index file {path} (expected lines '<key>\\t<byte offset>')")
    offsets: Dict[int, int] = {}
    with open(path, "r") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fields = line.split()
            try:
                key, offset = int(fields[0]), int(fields[1])
                if len(fields) != 2 or offset < 0:
                    raise ValueError
            except (ValueError, IndexError):
                raise RecordIOError(f"{path}:{number}: expected '<key>\\t<byte offset>', got {line.rstrip()!r}") from None
            if key in offsets:
                raise RecordIOError(f"{path}:{number}: key {key} appears twice")
            offsets[key] = offset
    if not offsets:
        raise RecordIOError(f"{path}: index is empty")
    return offsets


class RecordIOReader:
    """Random access to an insightface RecordIO training set.

    Args:
        path: a directory holding ``train.rec``, ``train.idx`` and ``property``; or a prefix
            such as ``.../train`` (or ``.../train.rec``) whose directory holds ``property``.

    Raises:
        RecordIOError: a file is missing or malformed, or the index points past the end of
            the ``.rec`` file.

    Example:
        >>> reader = RecordIOReader("faces_emore")
        >>> image, label = next(iter(reader))   # uint8 RGB (112, 112, 3), int class id
    """

    def __init__(self, path: Union[str, os.PathLike]):
        self.rec_path, self.idx_path, self.property_path = _resolve(path)
        if not os.path.isfile(self.rec_path):
            raise RecordIOError(f"missing record file {self.rec_path}")
        self.num_classes, self.image_size = _read_property(self.property_path)
        self._offsets = _read_index(self.idx_path)
        size = os.path.getsize(self.rec_path)
        for key, offset in self._offsets.items():
            if offset + _FRAME.size > size:
                raise RecordIOError(
                    f"{self.idx_path}: key {key} points to offset {offset}, past the end of "
                    f"{self.rec_path} ({size} bytes); the .rec file is truncated or does not match the index"
                )
        self._lock = threading.Lock()
        self._file: Optional[BinaryIO] = open(self.rec_path, "rb")
        self._identity_ranges: Optional[List[Tuple[int, int]]] = None
        self._identity_keys: Optional[range] = None
        self.image_keys: Sequence[int] = list(self._offsets)
        if 0 in self._offsets:
            header, _ = self.read(0)
            if header.flag > 0:
                self._init_insightface_layout(header)

    def _init_insightface_layout(self, header0: IRHeader) -> None:
        label = header0.label
        if len(label) < 2:
            raise RecordIOError(
                f"{self.rec_path}: record 0 has flag {header0.flag} but needs label "
                f"[first_identity_key, end_identity_key], got {label.tolist()}"
            )
        first_identity, end_identity = int(label[0]), int(label[1])
        if not 1 <= first_identity <= end_identity:
            raise RecordIOError(
                f"{self.rec_path}: record 0 label {label.tolist()} is not [N_img + 1, N_img + 1 + N_ids]"
            )
        self.image_keys = range(1, first_identity)
        self._identity_keys = range(first_identity, end_identity)
        for keys, what in ((self.image_keys, "image"), (self._identity_keys, "identity")):
            missing = next((k for k in keys if k not in self._offsets), None)
            if missing is not None:
                raise RecordIOError(
                    f"{self.idx_path}: record 0 says keys {keys.start}..{keys.stop - 1} are {what} records, "
                    f"but key {missing} is not in the index"
                )

    @property
    def keys(self) -> List[int]:
        """Every key of the index, in file order."""
        return list(self._offsets)

    @property
    def identity_ranges(self) -> Optional[List[Tuple[int, int]]]:
        """``[(first_key, end_key), ...]`` per class, from the identity records; ``None`` without them."""
        if self._identity_keys is None:
            return None
        if self._identity_ranges is None:
            ranges = []
            for key in self._identity_keys:
                header, _ = self.read(key)
                if np.ndim(header.label) != 1 or len(header.label) < 2:
                    raise RecordIOError(
                        f"{self.rec_path}: identity record {key} needs label [first_key, end_key), "
                        f"got {np.asarray(header.label).tolist()}"
                    )
                ranges.append((int(header.label[0]), int(header.label[1])))
            self._identity_ranges = ranges
        return list(self._identity_ranges)

    def read_record(self, key: int) -> bytes:
        """Raw bytes of record ``key`` (header included), split frames joined."""
        try:
            offset = self._offsets[key]
        except (KeyError, TypeError):
            raise KeyError(f"key {key!r} is not in {self.idx_path}") from None
        with self._lock:
            if self._file is None:
                raise RecordIOError(f"{self.rec_path}: reader is closed")
            try:
                return read_record_at(self._file, offset)
            except RecordIOError as err:
                raise RecordIOError(f"{err} (key {key})") from None

    def read(self, key: int) -> Tuple[IRHeader, bytes]:
        """``(header, payload)`` of record ``key``; ``payload`` is the encoded image (may be empty)."""
        record = self.read_record(key)
        try:
            return unpack_header(record)
        except RecordIOError as err:
            raise RecordIOError(f"{self.rec_path}: key {key}: {err}") from None

    def label(self, key: int) -> int:
        """Class id of image ``key`` (the first label value)."""
        return _class_of(self.read(key)[0])

    def image(self, key: int) -> Tuple[np.ndarray, int]:
        """``(uint8 RGB image of shape (H, W, 3), class id)`` of image record ``key``."""
        import cv2

        header, payload = self.read(key)
        image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR) if payload else None
        if image is None:
            raise RecordIOError(f"{self.rec_path}: key {key}: cannot decode the image ({len(payload)} bytes)")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), _class_of(header)

    def __len__(self) -> int:
        return len(self.image_keys)

    def __iter__(self) -> Iterator[Tuple[np.ndarray, int]]:
        for key in self.image_keys:
            yield self.image(key)

    def close(self) -> None:
        """Close the ``.rec`` file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> "RecordIOReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        file = getattr(self, "_file", None)
        if file is not None:
            file.close()

    def __repr__(self) -> str:
        return (
            f"RecordIOReader({self.rec_path!r}, images={len(self)}, num_classes={self.num_classes}, "
            f"image_size={self.image_size})"
        )


def recordio_dataset(
    path: Union[str, os.PathLike],
    *,
    batch_size: Optional[int] = None,
    shuffle: bool = False,
    seed: int = 0,
    drop_remainder: bool = False,
    num_parallel_calls: Optional[int] = None,
):
    """A ``tf.data.Dataset`` of ``(uint8 RGB image (H, W, 3), int32 class id)`` from a RecordIO set.

    Records are read in Python (one generator), images are decoded in parallel by TensorFlow
    (JPEG with ``dct_method="INTEGER_ACCURATE"``, which matches OpenCV's decoding).
    With ``shuffle`` the key order is a fresh permutation every epoch, reproducible from ``seed``.

    Args:
        path: dataset directory or ``.../train`` prefix (see :class:`RecordIOReader`).
        batch_size: batch the elements when given.
        shuffle: permute the image keys each epoch.
        seed: seed of the permutations.
        drop_remainder: drop the last smaller batch (only with ``batch_size``).
        num_parallel_calls: decoding parallelism; default ``tf.data.AUTOTUNE``.

    Raises:
        RecordIOError: the dataset files are missing or malformed.
        ValueError: ``batch_size`` is not a positive integer.
    """
    import tensorflow as tf

    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    reader = RecordIOReader(path)
    keys = np.asarray(reader.image_keys, dtype=np.int64)
    height, width = reader.image_size
    epochs = itertools.count()

    def records():
        order = keys
        if shuffle:
            order = np.random.default_rng([seed, next(epochs)]).permutation(keys)
        for key in order:
            header, payload = reader.read(int(key))
            yield payload, _class_of(header)

    def decode(payload, label):
        image = tf.cond(
            tf.io.is_jpeg(payload),
            # INTEGER_ACCURATE gives the same pixels as OpenCV (what MXNet and RecordIOReader use).
            lambda: tf.io.decode_jpeg(payload, channels=3, dct_method="INTEGER_ACCURATE"),
            lambda: tf.io.decode_image(payload, channels=3, dtype=tf.uint8, expand_animations=False),
        )
        return tf.ensure_shape(image, (height, width, 3)), label

    dataset = tf.data.Dataset.from_generator(
        records,
        output_signature=(tf.TensorSpec((), tf.string), tf.TensorSpec((), tf.int32)),
    )
    dataset = dataset.map(
        decode, num_parallel_calls=tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls
    )
    if batch_size is not None:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)
