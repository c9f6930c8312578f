"""``lcefr personal enroll | verify | eval | train``: round trip and one-line errors that write nothing."""
import json
import os

import numpy as np
import pytest

from cli_helpers import one_error as _one_error, run, write_rgb as _write
from lcefr.data.synth import synth_faces





@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    d = tmp_path_factory.mktemp("faces")
    images = synth_faces(4, seed=21, per_identity=2)
    return [_write(d / f"face{i}.png", img) for i, img in enumerate(images)]


@pytest.fixture
def any_hypernet_dir(tmp_path_factory):
    """Images are checked before the hypernetwork is loaded, so these errors need no trained one
    (the slow round trip below uses a real one)."""
    return tmp_path_factory.mktemp("hyper")


def test_enroll_unreadable_or_missing_image_writes_nothing(tmp_path, any_hypernet_dir, faces):
    hypernet_dir = any_hypernet_dir
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    out = tmp_path / "alice.tflite"
    msg = _one_error(run("personal", "enroll", "--hypernet", hypernet_dir, faces[0], bad, "--name", "alice", "-o", out))
    assert "cannot read image" in msg and "bad.jpg" in msg
    msg = _one_error(run("personal", "enroll", "--hypernet", hypernet_dir, tmp_path / "nope.png", "--name", "a",
                         "-o", out))
    assert "no such image file" in msg
    assert sorted(os.listdir(tmp_path)) == ["bad.jpg"]


def test_enroll_image_without_a_face_writes_nothing(tmp_path, any_hypernet_dir, faces):
    hypernet_dir = any_hypernet_dir
    blank = _write(tmp_path / "blank.png", np.full((240, 320, 3), 200, np.uint8))
    out = tmp_path / "bob.tflite"
    msg = _one_error(run("personal", "enroll", "--hypernet", hypernet_dir, faces[0], blank, "--name", "bob", "-o", out))
    assert "no face found" in msg and "blank.png" in msg
    assert sorted(os.listdir(tmp_path)) == ["blank.png"]


def test_enroll_rejects_bad_output_and_bad_hypernet(tmp_path, faces):
    msg = _one_error(run("personal", "enroll", "--hypernet", tmp_path, faces[0], "--name", "a", "-o", tmp_path / "a.onnx"))
    assert ".tflite" in msg
    msg = _one_error(run("personal", "enroll", "--hypernet", tmp_path, faces[0], "--name", "a", "-o", tmp_path / "a.tflite"))
    assert "not a trained hypernetwork folder" in msg
    assert os.listdir(tmp_path) == []


def test_train_rejects_unknown_keys(tmp_path):
    msg = _one_error(run("personal", "train", "--backbone", "test_quicknet", "--out", tmp_path / "r", "bogus=1"))
    assert "unknown config key 'bogus'" in msg
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_enroll_verify_round_trip(tmp_path, hypernet_dir, faces):
    from lcefr.face.photos import read_faces
    from lcefr.personal.enroll import enroll
    from lcefr.personal.hypernet import load_hypernet
    from lcefr.preprocess import preprocess

    out = tmp_path / "alice.tflite"
    r = run("personal", "enroll", "--hypernet", hypernet_dir, faces[0], faces[1], "--name", "alice", "-o", out, "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["params"] <= 25_000 and info["macs"] <= 6_000_000 and info["bytes"] == os.path.getsize(out)
    r = run("personal", "verify", out, faces[2], "--json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    keras_f = enroll(load_hypernet(str(hypernet_dir)), read_faces([str(faces[0]), str(faces[1])])).model
    want = float(keras_f(preprocess(read_faces([str(faces[2])])[0])).numpy()[0, 0])
    assert abs(got["score"] - want) < 1e-3 and got["same"] == (got["score"] >= 0.5)
    r = run("personal", "enroll", "--hypernet", hypernet_dir, faces[0], "--name", "alice", "-o", out)
    assert "parameters" in r.stdout and "MACs" in r.stdout
    blank = _write(tmp_path / "blank.png", np.full((240, 320, 3), 200, np.uint8))
    before = out.read_bytes()
    msg = _one_error(run("personal", "enroll", "--hypernet", hypernet_dir, blank, "--name", "alice", "-o", out))
    assert "no face found" in msg and out.read_bytes() == before  # the earlier enrollment is untouched


@pytest.mark.slow
def test_eval_on_a_bin(tmp_path, hypernet_dir):
    from lcefr.data.pairs import synthetic_bin

    path = tmp_path / "pairs.bin"
    synthetic_bin(str(path), pairs=20, seed=3, identities=4, per_identity=4)
    r = run("personal", "eval", "--hypernet", hypernet_dir, "--bin", path, "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["hypernet"]
    assert res["pairs"] == 20 and 0 <= res["accuracy"] <= 1


def test_verify_rejects_a_tflite_that_is_not_a_personal_verifier(tmp_path, faces):
    import tensorflow as tf

    from lcefr.convert.tflite import convert_float

    embedding = tf.keras.Sequential([tf.keras.layers.Input((112, 112, 3)), tf.keras.layers.GlobalAveragePooling2D(),
                                     tf.keras.layers.Dense(8)])
    path = tmp_path / "embedding.tflite"
    path.write_bytes(convert_float(embedding))
    assert "not a personal verifier" in _one_error(run("personal", "verify", path, faces[0]))
    (tmp_path / "junk.tflite").write_bytes(b"\0\0\0\0TFL3" + b"\0" * 64)
    assert "not a personal verifier" in _one_error(run("personal", "verify", tmp_path / "junk.tflite", faces[0]))
