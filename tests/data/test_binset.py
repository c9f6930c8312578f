"""insightface .bin verification sets: both element kinds, Python-2 pickles, corrupt and hostile files."""
import os
import pickle
import struct

import numpy as np
import pytest

from lcefr.data.binset import BinFormatError, encode_image, read_bin, write_bin


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(n, 1, 1, 3))
    # smooth images so JPEG keeps them close: a colour per image plus a gradient
    grad = np.linspace(0, 60, 112)[None, :, None, None]
    return np.clip(base + grad + np.zeros((n, 112, 112, 3)), 0, 255).astype(np.uint8)


def _py2_pickle(elements, issame):
    """Protocol-2 opcodes as Python 2 writes them: elements are `str` (SHORT_BINSTRING/BINSTRING)."""
    out = [b"\x80\x02", b"(", b"(" ]
    for e in elements:
        out.append(b"U" + bytes([len(e)]) + e if len(e) < 256 else b"T" + struct.pack("<I", len(e)) + e)
    out.append(b"l")
    out.append(b"(")
    out.extend(b"\x88" if s else b"\x89" for s in issame)
    out.append(b"l")
    out.append(b"t.")
    return b"".join(out)


@pytest.mark.parametrize("as_arrays", [False, True])
@pytest.mark.parametrize("fmt", [".png", ".jpg"])
def test_round_trip_both_element_kinds(tmp_path, as_arrays, fmt):
    images = _images(6)
    issame = [True, False, True]
    path = str(tmp_path / "set.bin")
    write_bin(path, [encode_image(im, fmt=fmt) for im in images], issame, as_arrays=as_arrays)
    with open(path, "rb") as f:
        bins, stored_same = pickle.load(f)
    assert isinstance(bins[0], np.ndarray if as_arrays else bytes)
    if as_arrays:
        assert bins[0].dtype == np.uint8 and bins[0].ndim == 2 and bins[0].shape[1] == 1
    vs = read_bin(path)
    assert vs.name == "set" and vs.pairs == 3 and vs.images.shape == (6, 112, 112, 3)
    assert vs.issame.tolist() == issame
    err = np.abs(vs.images.astype(int) - images.astype(int)).max()
    assert err == 0 if fmt == ".png" else err < 12


def test_reads_python2_pickles_and_resizes(tmp_path):
    big = np.full((150, 150, 3), (200, 30, 10), np.uint8)
    elements = [encode_image(big, fmt=".png"), encode_image(_images(1)[0], fmt=".png")]
    path = tmp_path / "py2.bin"
    path.write_bytes(_py2_pickle(elements, [False]))
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(path.read_bytes())  # what a plain Python-3 load does with such a file
    vs = read_bin(str(path))
    assert vs.images.shape == (2, 112, 112, 3) and vs.issame.tolist() == [False]
    assert tuple(vs.images[0, 56, 56]) == (200, 30, 10)


def test_corrupt_image_names_its_index(tmp_path):
    elements = [encode_image(im) for im in _images(4)]
    elements[3] = elements[3][:40]
    path = str(tmp_path / "bad.bin")
    write_bin(path, elements, [True, False])
    with pytest.raises(BinFormatError, match=r"image 3 \(pair 1\) is corrupt"):
        read_bin(path)


def test_refuses_code_in_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(([Evil(), b""], [True])))
    with pytest.raises(BinFormatError, match="refusing to load"):
        read_bin(str(path))


@pytest.mark.parametrize("payload", [b"not a pickle", pickle.dumps({"a": 1}), pickle.dumps(([b"x"] * 3, [True]))])
def test_malformed_files(tmp_path, payload):
    path = tmp_path / "m.bin"
    path.write_bytes(payload)
    with pytest.raises(BinFormatError):
        read_bin(str(path))


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        read_bin("/nonexistent/lfw.bin")


def test_write_validates_pair_count(tmp_path):
    with pytest.raises(ValueError, match="two images per pair"):
        write_bin(str(tmp_path / "x.bin"), [b"a"] * 3, [True])
    assert not (tmp_path / "x.bin").exists()
