"""The pure-Python RecordIO reader against fixtures written and read by MXNet 1.9.1.

The fixtures and their ``expected.json`` come from ``scripts/make_recordio_fixtures.py``
(run with MXNet); these tests need no MXNet.
"""
import hashlib
import json
import os
import shutil
import struct

import numpy as np
import pytest

from lcefr.data.recordio import (
    MAGIC,
    Frame,
    IRHeader,
    RecordIOError,
    RecordIOReader,
    iter_frames,
    read_record_at,
    recordio_dataset,
    unpack_header,
)

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "recordio")
INSIGHTFACE = os.path.join(FIXTURES, "insightface")
PLAIN = os.path.join(FIXTURES, "plain")
MAGIC_BYTES = b"\x0a\x23\xd7\xce"
JPEG_MEAN_TOLERANCE = 0.5  # libjpeg builds may round a little differently


def expected(directory):
    with open(os.path.join(directory, "expected.json")) as f:
        return json.load(f)


def images(directory):
    return [r for r in expected(directory)["records"] if r["image"] is not None]


def class_id(label):
    return int(label[0]) if isinstance(label, list) else int(label)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def raw_cflags(path):
    """Continuation flags of every frame, scanned with nothing but struct."""
    with open(path, "rb") as f:
        data = f.read()
    flags, pos = [], 0
    while pos < len(data):
        magic, lrec = struct.unpack_from("<II", data, pos)
        assert magic == MAGIC
        length = lrec & ((1 << 29) - 1)
        flags.append(lrec >> 29)
        pos += 8 + length + (-length % 4)
    return flags


@pytest.fixture
def copy(tmp_path):
    """A writable copy of the insightface fixture; returns its directory."""
    target = tmp_path / "ds"
    shutil.copytree(INSIGHTFACE, target)
    return str(target)


def offset_of(directory, key):
    return next(r["offset"] for r in expected(directory)["records"] if r["key"] == key)


@pytest.mark.parametrize("directory", [INSIGHTFACE, PLAIN], ids=["insightface", "plain"])
def test_every_record_matches_mxnet(directory):
    want = expected(directory)["records"]
    with RecordIOReader(directory) as reader:
        assert reader.keys == [r["key"] for r in want]
        for rec in want:
            raw = reader.read_record(rec["key"])
            assert (len(raw), sha256(raw)) == (rec["record_len"], rec["record_sha256"]), rec["key"]
            header, payload = reader.read(rec["key"])
            assert isinstance(header, IRHeader)
            assert (header.flag, header.id, header.id2) == (rec["flag"], rec["id"], rec["id2"])
            assert np.asarray(header.label).dtype == np.float32
            np.testing.assert_array_equal(header.label, np.float32(rec["label"]))
            assert (len(payload), sha256(payload)) == (rec["payload_len"], rec["payload_sha256"])


@pytest.mark.parametrize("directory", [INSIGHTFACE, PLAIN], ids=["insightface", "plain"])
def test_frames_match_mxnet_scan(directory):
    with open(os.path.join(directory, "train.rec"), "rb") as f:
        frames = list(iter_frames(f))
    assert frames == [Frame(*frame) for frame in expected(directory)["frames"]]


def test_fixture_really_has_split_records_and_they_are_joined():
    rec = os.path.join(INSIGHTFACE, "train.rec")
    assert {1, 2, 3} <= set(raw_cflags(rec))
    split_keys = expected(INSIGHTFACE)["magic_split_keys"]
    assert split_keys == [4, 7]
    with RecordIOReader(INSIGHTFACE) as reader:
        header, _ = reader.read(4)
        assert header.id == header.id2 == MAGIC
        _, payload = reader.read(7)
        assert payload.endswith(MAGIC_BYTES * 2 + b"tail" + MAGIC_BYTES)
    with open(rec, "rb") as f:
        record = read_record_at(f, offset_of(INSIGHTFACE, 7))
    assert sha256(record) == next(r for r in expected(INSIGHTFACE)["records"] if r["key"] == 7)["record_sha256"]


def test_insightface_layout_from_record_zero_and_property():
    with RecordIOReader(INSIGHTFACE) as reader:
        assert list(reader.image_keys) == list(range(1, 10))
        assert len(reader) == 9
        assert reader.identity_ranges == [(1, 4), (4, 7), (7, 10)]
        assert reader.num_classes == 3
        assert reader.image_size == (112, 112)
        assert [reader.label(k) for k in reader.image_keys] == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_plain_layout_every_key_is_an_image():
    with RecordIOReader(PLAIN) as reader:
        assert list(reader.image_keys) == [0, 1, 2, 3]
        assert reader.identity_ranges is None
        assert reader.num_classes == 2
        assert [label for _, label in reader] == [0, 0, 1, 1]


@pytest.mark.parametrize(
    "form", [lambda d: d, lambda d: os.path.join(d, "train"), lambda d: os.path.join(d, "train.rec")],
    ids=["directory", "prefix", "rec-path"],
)
def test_path_forms(form):
    with RecordIOReader(form(INSIGHTFACE)) as reader:
        assert len(reader) == 9


@pytest.mark.parametrize("directory", [INSIGHTFACE, PLAIN], ids=["insightface", "plain"])
def test_iteration_decodes_rgb_like_mxnet(directory):
    want = images(directory)
    with RecordIOReader(directory) as reader:
        got = list(reader)
    assert len(got) == len(want)
    for (image, label), rec in zip(got, want):
        assert image.dtype == np.uint8 and list(image.shape) == rec["image"]["shape"]
        assert label == class_id(rec["label"])
        if rec["image"]["format"] == "png":
            assert sha256(np.ascontiguousarray(image).tobytes()) == rec["image"]["pixels_sha256"]
        np.testing.assert_allclose(image.mean(axis=(0, 1)), rec["image"]["mean_rgb"], atol=JPEG_MEAN_TOLERANCE)


def test_tf_dataset_shapes_dtypes_labels():
    import tensorflow as tf

    want = images(INSIGHTFACE)
    dataset = recordio_dataset(INSIGHTFACE)
    assert dataset.element_spec[0].shape == (112, 112, 3) and dataset.element_spec[0].dtype == tf.uint8
    assert dataset.element_spec[1].dtype == tf.int32
    got = [(image.numpy(), int(label)) for image, label in dataset]
    assert [label for _, label in got] == [class_id(r["label"]) for r in want]
    with RecordIOReader(INSIGHTFACE) as reader:
        for (image, _), (reference, _) in zip(got, reader):
            assert np.abs(image.astype(int) - reference).max() <= 1  # TF decodes like OpenCV
    for (image, _), rec in zip(got, want):
        assert image.shape == (112, 112, 3)
        if rec["image"]["format"] == "png":
            assert sha256(image.tobytes()) == rec["image"]["pixels_sha256"]
        np.testing.assert_allclose(image.mean(axis=(0, 1)), rec["image"]["mean_rgb"], atol=JPEG_MEAN_TOLERANCE)


def test_tf_dataset_batches_and_shuffles_reproducibly():
    batches = [(x.numpy(), y.numpy()) for x, y in recordio_dataset(INSIGHTFACE, batch_size=4)]
    assert [x.shape for x, _ in batches] == [(4, 112, 112, 3), (4, 112, 112, 3), (1, 112, 112, 3)]
    assert all(y.dtype == np.int32 for _, y in batches)
    dropped = list(recordio_dataset(INSIGHTFACE, batch_size=4, drop_remainder=True))
    assert len(dropped) == 2

    def epochs(dataset, n):
        return [[int(y) for _, y in dataset] for _ in range(n)]

    first = epochs(recordio_dataset(INSIGHTFACE, shuffle=True, seed=3), 2)
    again = epochs(recordio_dataset(INSIGHTFACE, shuffle=True, seed=3), 2)
    assert first == again
    assert all(sorted(epoch) == [0, 0, 0, 1, 1, 1, 2, 2, 2] for epoch in first)
    shuffled = [float(x.numpy().mean()) for x, _ in recordio_dataset(INSIGHTFACE, shuffle=True, seed=3)]
    in_order = [float(x.numpy().mean()) for x, _ in recordio_dataset(INSIGHTFACE)]
    assert shuffled != in_order and sorted(shuffled) == sorted(in_order)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_tf_dataset_rejects_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        recordio_dataset(INSIGHTFACE, batch_size=batch_size)


def one_line(err):
    message = str(err.value)
    assert "\n" not in message
    return message


def test_truncated_rec_before_later_keys_fails_at_open(copy):
    rec = os.path.join(copy, "train.rec")
    cut = offset_of(copy, 9) + 100  # in the middle of image 9; keys 10..12 now point nowhere
    with open(rec, "r+b") as f:
        f.truncate(cut)
    with pytest.raises(RecordIOError) as err:
        RecordIOReader(copy)
    message = one_line(err)
    assert "key 10" in message and str(offset_of(copy, 10)) in message and "train.rec" in message
    with open(rec, "rb") as f, pytest.raises(RecordIOError, match=r"truncated at offset \d+") as err:
        read_record_at(f, offset_of(copy, 9))
    assert "train.rec" in one_line(err)


def test_truncated_last_record_fails_when_read(copy):
    rec = os.path.join(copy, "train.rec")
    last = offset_of(copy, 12)
    with open(rec, "r+b") as f:
        f.truncate(last + 8 + 10)  # frame header intact, 10 of 32 payload bytes left
    with RecordIOReader(copy) as reader:
        assert len(reader) == 9
        with pytest.raises(RecordIOError) as err:
            reader.read(12)
        message = one_line(err)
        assert f"truncated at offset {last}" in message and "key 12" in message and "train.rec" in message
        with pytest.raises(RecordIOError, match="key 12"):
            reader.identity_ranges


def test_truncated_inside_split_record(copy):
    rec = os.path.join(copy, "train.rec")
    frames = expected(copy)["frames"]
    middle = next(offset for offset, cflag, _ in frames if cflag == 2 and offset > offset_of(copy, 7))
    with open(rec, "r+b") as f:
        f.truncate(middle + 3)
    with open(rec, "rb") as f, pytest.raises(RecordIOError, match=f"truncated at offset {middle}"):
        read_record_at(f, offset_of(copy, 7))
    with open(rec, "rb") as f, pytest.raises(RecordIOError, match="middle or end of a split record"):
        read_record_at(f, frames[5][0])


def test_bad_magic(copy):
    rec = os.path.join(copy, "train.rec")
    offset = offset_of(copy, 5)
    with open(rec, "r+b") as f:
        f.seek(offset)
        f.write(b"\0")
    with RecordIOReader(copy) as reader:
        with pytest.raises(RecordIOError) as err:
            reader.read(5)
        message = one_line(err)
        assert f"bad magic 0x{MAGIC & 0xFFFFFF00:08x} at offset {offset}" in message and "key 5" in message
        reader.read(6)


def test_index_pointing_into_a_record(copy):
    idx = os.path.join(copy, "train.idx")
    lines = open(idx).read().splitlines()
    key, offset = lines[3].split("\t")
    lines[3] = f"{key}\t{int(offset) + 4}"
    with open(idx, "w") as f:
        f.write("\n".join(lines) + "\n")
    with RecordIOReader(copy) as reader, pytest.raises(RecordIOError, match=rf"bad magic .*\(key {key}\)"):
        reader.read(int(key))


def test_not_a_recordio_file(copy):
    with open(os.path.join(copy, "train.rec"), "r+b") as f:
        f.write(b"GIF89a\0\0")
    with pytest.raises(RecordIOError, match="bad magic .* at offset 0"):
        RecordIOReader(copy)


@pytest.mark.parametrize("name", ["train.idx", "property", "train.rec"])
def test_missing_files(copy, name):
    os.remove(os.path.join(copy, name))
    with pytest.raises(RecordIOError, match=f"missing .*{name}") as err:
        RecordIOReader(copy)
    one_line(err)


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("property", "3,112\n", "num_classes,height,width"),
        ("property", "three,112,112\n", "'three,112,112'"),
        ("train.idx", "0\t0\n1\tx\n", r"train.idx:2: expected '<key>\\t<byte offset>', got '1\\tx'"),
        ("train.idx", "0\t0\n0\t40\n", "key 0 appears twice"),
        ("train.idx", "", "index is empty"),
    ],
)
def test_malformed_idx_and_property(copy, name, text, match):
    with open(os.path.join(copy, name), "w") as f:
        f.write(text)
    with pytest.raises(RecordIOError, match=match):
        RecordIOReader(copy)


def test_record_zero_names_a_key_missing_from_the_index(copy):
    idx = os.path.join(copy, "train.idx")
    lines = [line for line in open(idx).read().splitlines() if not line.startswith("5\t")]
    with open(idx, "w") as f:
        f.write("\n".join(lines) + "\n")
    with pytest.raises(RecordIOError, match="key 5 is not in the index"):
        RecordIOReader(copy)


def test_unknown_key():
    with RecordIOReader(INSIGHTFACE) as reader, pytest.raises(KeyError, match="key 99 is not in"):
        reader.read(99)


def test_unpack_header():
    header, rest = unpack_header(struct.pack("<IfQQ", 0, 7.0, 1, 2) + b"img")
    assert header == IRHeader(0, 7.0, 1, 2) and rest == b"img"
    assert isinstance(header.label, np.float32)
    header, rest = unpack_header(struct.pack("<IfQQ2f", 2, 0.0, 0, 0, 0.1, 5.0) + b"x")
    assert header.label.dtype == np.float32 and header.label.tolist() == [np.float32(0.1), 5.0]
    assert rest == b"x"
    with pytest.raises(RecordIOError, match="shorter than the 24-byte IRHeader"):
        unpack_header(b"\0" * 10)
    with pytest.raises(RecordIOError, match="flag 3 .* only 4 bytes"):
        unpack_header(struct.pack("<IfQQf", 3, 0.0, 0, 0, 1.0))


def test_read_record_at_rejects_bad_offset():
    with open(os.path.join(INSIGHTFACE, "train.rec"), "rb") as f:
        with pytest.raises(RecordIOError, match="non-negative integer, got -1"):
            read_record_at(f, -1)
        with pytest.raises(RecordIOError, match="past the end"):
            read_record_at(f, os.path.getsize(os.path.join(INSIGHTFACE, "train.rec")))
