"""Write the RecordIO test fixtures with the real MXNet writer.

Run in a side virtualenv that has MXNet (never in the project's .venv)::

    python3 -m venv /tmp/mxvenv
    /tmp/mxvenv/bin/pip install mxnet==1.9.1 numpy==1.23.5 "opencv-python-headless<4.9"
    /tmp/mxvenv/bin/python scripts/make_recordio_fixtures.py

It writes two datasets below ``tests/fixtures/recordio/``:

* ``insightface/``: the insightface layout (``face2rec2.py``): record 0 with flag 2 and
  label ``[N_img + 1, N_img + 1 + N_ids]``, 3 identities x 3 images (keys 1..9; labels
  ``[class_id, 0]`` with flag 2 for identities 0 and 2, scalar for identity 1; one PNG, the
  rest JPEG), identity records 10..12 with label ``[first, end)`` and no body, ``property``.
  Two records contain the dmlc magic word at 4-byte aligned offsets, so the writer splits
  them into cflag 1/2/3 frames: key 4 carries it as both ``id`` and ``id2`` (frames 1, 2, 3);
  key 7 has it appended after the JPEG's EOI marker as ``magic magic "tail" magic``
  (frames 1, 2 of length 0, 2, 3 of length 0).
* ``plain/``: record 0 has flag 0, every key is an image with a scalar label (``pack_img``).

Each directory also gets ``expected.json`` with what MXNet's own reader
(``MXIndexedRecordIO.read_idx`` + ``recordio.unpack`` + ``mx.image.imdecode``) returns,
and the frame list of the ``.rec`` file, so the tests need no MXNet.
"""
import argparse
import hashlib
import json
import os
import shutil
import struct

import cv2
import mxnet as mx
import numpy as np
from mxnet import recordio

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
SIZE = 112
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, os.pardir, "tests", "fixtures", "recordio")


def face(identity, index):
    """A deterministic 112x112 BGR picture: identity sets the colour, index the shape."""
    colours_rgb = [(200, 40, 40), (40, 180, 60), (50, 70, 210)]
    r, g, b = colours_rgb[identity % 3]
    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    img[:] = (b // 3, g // 3, r // 3)
    centre = (30 + 25 * index, 40 + 15 * identity)
    cv2.circle(img, centre, 20 + 4 * index, (b, g, r), thickness=-1)
    cv2.rectangle(img, (10, 80), (30 + 20 * index, 100), (255, 255, 255), thickness=-1)
    return img


def encode(img, fmt):
    params = [cv2.IMWRITE_JPEG_QUALITY, 80] if fmt == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 9]
    ok, buf = cv2.imencode(fmt, img, params)
    if not ok:
        raise RuntimeError(f"cv2.imencode({fmt}) failed")
    return buf.tobytes()


def scan_frames(path):
    """(offset, cflag, length) of every frame, read straight from the bytes."""
    frames = []
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        magic, lrec = struct.unpack_from("<II", data, pos)
        if magic != MAGIC:
            raise RuntimeError(f"bad magic at {pos}")
        cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
        frames.append([pos, cflag, length])
        pos += 8 + length + (-length % 4)
    return frames


def describe(prefix):
    """What MXNet reads back from ``prefix``.rec/.idx, as JSON-able data."""
    reader = recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "r")
    offsets = {}
    with open(prefix + ".idx") as f:
        for line in f:
            key, offset = line.split("\t")
            offsets[int(key)] = int(offset)
    records = []
    for key in reader.keys:
        raw = reader.read_idx(key)
        header, body = recordio.unpack(raw)
        label = header.label
        label = [float(v) for v in label] if isinstance(label, np.ndarray) else float(label)
        entry = {
            "key": int(key),
            "offset": offsets[int(key)],
            "flag": int(header.flag),
            "label": label,
            "id": int(header.id),
            "id2": int(header.id2),
            "record_len": len(raw),
            "record_sha256": hashlib.sha256(raw).hexdigest(),
            "payload_len": len(body),
            "payload_sha256": hashlib.sha256(body).hexdigest(),
            "image": None,
        }
        if body:
            rgb = mx.image.imdecode(body).asnumpy()  # MXNet decodes to RGB
            entry["image"] = {
                "shape": list(rgb.shape),
                "mean_rgb": [round(float(rgb[..., c].mean()), 3) for c in range(3)],
                "format": "png" if body[:8] == b"\x89PNG\r\n\x1a\n" else "jpeg",
                "pixels_sha256": hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest(),
            }
        records.append(entry)
    reader.close()

    # The sequential reader must agree with read_idx (it joins split frames too).
    seq = recordio.MXRecordIO(prefix + ".rec", "r")
    for entry in records:
        raw = seq.read()
        if hashlib.sha256(raw).hexdigest() != entry["record_sha256"]:
            raise RuntimeError(f"sequential read disagrees at key {entry['key']}")
    if seq.read() is not None:
        raise RuntimeError("sequential reader found more records than the index")
    seq.close()
    return records


def write_insightface(out):
    prefix = os.path.join(out, "train")
    writer = recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "w")
    n_ids, per_id = 3, 3
    n_img = n_ids * per_id
    writer.write_idx(0, recordio.pack(recordio.IRHeader(2, [n_img + 1, n_img + 1 + n_ids], 0, 0), b""))
    ranges = []
    key = 1
    for identity in range(n_ids):
        start = key
        for index in range(per_id):
            fmt = ".png" if key == 9 else ".jpg"
            body = encode(face(identity, index), fmt)
            label = float(identity) if identity == 1 else [float(identity), 0.0]
            rid, rid2 = key * 1000, 0
            if key == 4:
                rid = rid2 = MAGIC  # header bytes 8..11 and 16..19 are the magic word
            if key == 7:
                head = 24 + 4 * (0 if isinstance(label, float) else len(label))
                body += b"\0" * (-(head + len(body)) % 4) + MAGIC_BYTES * 2 + b"tail" + MAGIC_BYTES
            writer.write_idx(key, recordio.pack(recordio.IRHeader(0, label, rid, rid2), body))
            key += 1
        ranges.append((start, key))
    for identity, (start, end) in enumerate(ranges):
        writer.write_idx(key, recordio.pack(recordio.IRHeader(0, [float(start), float(end)], identity, 0), b""))
        key += 1
    writer.close()
    with open(os.path.join(out, "property"), "w") as f:
        f.write(f"{n_ids},{SIZE},{SIZE}\n")
    return prefix


def write_plain(out):
    prefix = os.path.join(out, "train")
    writer = recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "w")
    for key, identity in enumerate([0, 0, 1, 1]):
        header = recordio.IRHeader(0, float(identity), key, 0)
        writer.write_idx(key, recordio.pack_img(header, face(identity, key), quality=80, img_fmt=".jpg"))
    writer.close()
    with open(os.path.join(out, "property"), "w") as f:
        f.write(f"2,{SIZE},{SIZE}\n")
    return prefix


def finish(prefix, *, want_split):
    frames = scan_frames(prefix + ".rec")
    flags = {cflag for _, cflag, _ in frames}
    if want_split and not {1, 2, 3} <= flags:
        raise RuntimeError(f"expected split frames (cflag 1/2/3) in {prefix}.rec, got cflags {sorted(flags)}")
    records = describe(prefix)
    for entry in records:
        if entry["image"] is not None and entry["image"]["shape"] != [SIZE, SIZE, 3]:
            raise RuntimeError(f"key {entry['key']}: decoded shape {entry['image']['shape']}")
    expected = {
        "writer": f"mxnet {mx.__version__}, numpy {np.__version__}, opencv {cv2.__version__}",
        "frames": frames,
        "records": records,
    }
    # Keys whose record holds the magic word at an aligned offset (the ones the writer splits).
    reader = recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "r")
    split = []
    for entry in records:
        raw = reader.read_idx(entry["key"])
        if any(raw[i:i + 4] == MAGIC_BYTES for i in range(0, len(raw) - 3, 4)):
            split.append(entry["key"])
    reader.close()
    expected["magic_split_keys"] = split
    with open(os.path.join(os.path.dirname(prefix), "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    print(f"{prefix}: {len(records)} records, {len(frames)} frames, split keys {split}, "
          f"cflags {sorted(flags)}, {os.path.getsize(prefix + '.rec')} bytes")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="fixture root (default: tests/fixtures/recordio)")
    args = parser.parse_args()
    for name, write, want_split in [("insightface", write_insightface, True), ("plain", write_plain, False)]:
        out = os.path.join(os.path.abspath(args.out), name)
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        finish(write(out), want_split=want_split)


if __name__ == "__main__":
    main()
