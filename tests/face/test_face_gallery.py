"""The SQLite gallery: add / list / identify / remove, reopen, model pinning, a write killed mid-transaction."""
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from lcefr.face.gallery import Gallery, model_identity


def _unit(rng, n, d=8):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_add_list_identify_remove_reopen(tmp_path):
    db = str(tmp_path / "g.sqlite")
    rng = np.random.default_rng(0)
    alice, bob = _unit(rng, 2), _unit(rng, 3)
    with Gallery.open_or_create(db) as g:
        assert g.add("alice", ["a0.png", "a1.png"], alice, model_id="registry:m", model="m") == 2
        g.add("bob", ["b0.png", "b1.png", "b2.png"], bob, model_id="registry:m", model="m")
        assert g.people() == [("alice", 2), ("bob", 3)]
        top = g.identify(bob[1], top=5)
        assert [m.name for m in top] == ["bob", "alice"]
        assert top[0].score == pytest.approx(1.0, abs=1e-6) and top[0].source.endswith("b1.png")
    with Gallery.open(db) as g:
        assert g.meta()["model_id"] == "registry:m" and g.meta()["embedding_size"] == "8"
        assert g.identify(alice[0], top=1)[0].name == "alice"
        assert g.remove("alice") == 2 and g.remove("nobody") == 0
    with Gallery.open(db) as g:
        assert g.people() == [("bob", 3)]
        assert [m.name for m in g.identify(alice[0])] == ["bob"]
        assert g.integrity_ok()
        names, sources, matrix = g.embeddings()
        np.testing.assert_array_equal(matrix, bob)


def test_model_pinning(tmp_path):
    db = str(tmp_path / "g.sqlite")
    rng = np.random.default_rng(1)
    with Gallery.open_or_create(db) as g:
        g.add("a", ["x"], _unit(rng, 1), model_id="registry:m", model="m")
        with pytest.raises(ValueError, match="built with model"):
            g.add("b", ["y"], _unit(rng, 1), model_id="registry:other", model="other")
        with pytest.raises(ValueError, match="8-d"):
            g.add("b", ["y"], _unit(rng, 1, d=4), model_id="registry:m", model="m")
        g.check_model("registry:m", 8)
        assert g.people() == [("a", 1)]


def test_model_identity(tmp_path):
    f = tmp_path / "m.keras"
    f.write_bytes(b"abc")
    assert model_identity(str(f)) == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert model_identity("test_quicknet") == "registry:test_quicknet"


def test_model_identity_follows_a_rewritten_file(tmp_path):
    f = tmp_path / "m.keras"
    f.write_bytes(b"abc")
    first = model_identity(str(f))
    stat = f.stat()
    f.write_bytes(b"abd")  # same size; the hash kept for the old content must not be reused
    os.utime(f, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert model_identity(str(f)) != first
    assert model_identity(str(f)) == model_identity(str(f))


def test_open_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such gallery"):
        Gallery.open(str(tmp_path / "missing.sqlite"))
    assert not (tmp_path / "missing.sqlite").exists()
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ValueError, match="not a gallery"):
        Gallery.open(str(junk))


_WRITER = textwrap.dedent("""
    import sys, numpy as np
    from lcefr.face.gallery import Gallery
    v = np.eye(3, 8, dtype=np.float32)
    with Gallery.open_or_create(sys.argv[1]) as g:
        g.add("victim", ["v0", "v1", "v2"], v, model_id="registry:m", model="m")
""")


@pytest.mark.parametrize("first_add", [True, False])
def test_write_killed_mid_transaction_leaves_consistent_db(tmp_path, first_add):
    """SIGKILL while ``Gallery.add`` holds its transaction (test hook LCEFR_TEST_PAUSE_IN_TXN)."""
    db = str(tmp_path / "g.sqlite")
    if not first_add:
        with Gallery.open_or_create(db) as g:
            g.add("keep", ["k"], np.eye(1, 8, dtype=np.float32), model_id="registry:m", model="m")
    env = dict(os.environ, LCEFR_TEST_PAUSE_IN_TXN="60")
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, db], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        line = ""
        while "LCEFR_TEST_PAUSE_IN_TXN" not in line and time.time() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
        assert "LCEFR_TEST_PAUSE_IN_TXN" in line, "writer never reached its transaction"
        assert os.path.exists(db + "-journal"), "expected a hot rollback journal while the write is open"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with Gallery.open(db) as g:
        assert g.integrity_ok()
        assert g.people() == ([] if first_add else [("keep", 1)])
        assert g.initialized == (not first_add)
