"""A face gallery in one SQLite file: named people, their embeddings and the model that made them.

Schema (version :data:`SCHEMA_VERSION`)::

    schema_version(version INTEGER)                       one row
    meta(key TEXT PRIMARY KEY, value TEXT)                model_id, model, embedding_size, created
    embeddings(id INTEGER PRIMARY KEY, name TEXT, source TEXT, vector BLOB, added TEXT)

``vector`` is the little-endian float32 bytes of an L2-normalised embedding; ``source`` the
absolute path of the image it came from. ``model_id`` is ``sha256:<hex>`` of the model file (of
every file, by relative path, for a SavedModel directory) or ``registry:<name>`` for a registry
model; with ``embedding_size`` it pins the gallery to one model, so it is never queried or
extended with another.

Every write is one ``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction in SQLite's default rollback
journal (``journal_mode=DELETE``, ``synchronous=FULL``): a process killed mid-write leaves the
previous state, recovered from the hot journal on the next open. The schema is created in the
same transaction as the first rows, so an interrupted first ``add`` leaves an empty,
uninitialised file that the next ``add`` initialises.

Test hook: ``LCEFR_TEST_PAUSE_IN_TXN=<seconds>`` makes :meth:`Gallery.add` print
``LCEFR_TEST_PAUSE_IN_TXN`` to stderr and sleep inside its transaction after writing its rows
(for the kill-mid-transaction test only; never set it in production).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sqlite3
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["SCHEMA_VERSION", "Gallery", "GalleryMatch", "model_identity"]

SCHEMA_VERSION = 1
_PAUSE_ENV = "LCEFR_TEST_PAUSE_IN_TXN"

_SCHEMA = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE embeddings (id INTEGER PRIMARY KEY, name TEXT NOT NULL, source TEXT NOT NULL, "
    "vector BLOB NOT NULL, added TEXT NOT NULL)",
    "CREATE INDEX embeddings_name ON embeddings (name)",
)


def model_identity(model: str) -> str:
    """``sha256:<hex>`` of a model file or directory, else ``registry:<model>`` (a registry name).

    A file's hash is kept for the process while its size and modification time stay the same, so the
    commands' gallery check and the workflow they call read a large model once.
    """
    if os.path.isfile(model):
        st = os.stat(model)
        return _file_identity(os.path.realpath(model), st.st_size, st.st_mtime_ns)
    if os.path.isdir(model):
        h = hashlib.sha256()
        for root, dirs, files in os.walk(model):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                h.update(os.path.relpath(path, model).encode() + b"\0")
                with open(path, "rb") as f:
                    h.update(hashlib.sha256(f.read()).digest())
        return f"sha256:{h.hexdigest()}"
    return f"registry:{model}"


@functools.lru_cache(maxsize=16)
def _file_identity(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"sha256:{h.hexdigest()}"


@dataclass(frozen=True)
class GalleryMatch:
    """One person's best match: cosine ``score`` of the closest enrolled embedding and its ``source``."""

    name: str
    score: float
    source: str
    images: int


class Gallery:
    """An open gallery file. Use :meth:`open` (existing file) or :meth:`open_or_create`."""

    def __init__(self, path: str, conn: sqlite3.Connection):
        self.path = path
        self._conn = conn

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str) -> "Gallery":
        """An existing gallery. Raises FileNotFoundError (no file) or ValueError (not a gallery)."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no such gallery: {path} (create it with `lcefr gallery add --model MODEL`)")
        gallery = cls(path, cls._connect(path, create=False))
        gallery._check_schema()
        return gallery

    @classmethod
    def open_or_create(cls, path: str) -> "Gallery":
        """An existing gallery, or a new empty file whose schema :meth:`add` creates."""
        if os.path.isdir(path):
            raise IsADirectoryError(f"gallery path is a directory: {path}")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"no such directory for the gallery: {parent}")
        gallery = cls(path, cls._connect(path, create=True))
        gallery._check_schema()
        return gallery

    @staticmethod
    def _connect(path: str, *, create: bool) -> sqlite3.Connection:
        mode = "rwc" if create else "rw"
        uri = f"file:{os.path.abspath(path)}?mode={mode}"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)
            conn.execute("PRAGMA journal_mode=DELETE")
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as err:
            raise ValueError(f"{path} is not a gallery database ({err})") from None
        return conn

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _tables(self) -> set:
        try:
            return {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as err:
            raise ValueError(f"{self.path} is not a gallery database ({err})") from None

    def _check_schema(self) -> None:
        tables = self._tables()
        if not tables:
            return
        if "schema_version" not in tables:
            raise ValueError(f"{self.path} is an SQLite file but not an lcefr gallery")
        row = self._conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None or row[0] != SCHEMA_VERSION:
            raise ValueError(f"{self.path} has gallery schema version {row and row[0]}, this lcefr reads {SCHEMA_VERSION}")

    @property
    def initialized(self) -> bool:
        return "schema_version" in self._tables()

    # -- transactions --------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` (takes the write lock now) ... ``COMMIT``; rollback on any error."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- model identity ------------------------------------------------------------------------
    def meta(self) -> dict:
        if not self.initialized:
            return {}
        return dict(self._conn.execute("SELECT key, value FROM meta"))

    def check_model(self, model_id: str, embedding_size: Optional[int] = None) -> None:
        """Raise ValueError unless the gallery was built with ``model_id`` (and ``embedding_size``)."""
        meta = self.meta()
        if not meta:
            raise ValueError(f"gallery {self.path} is empty; add people with `lcefr gallery add --model MODEL`")
        if meta["model_id"] != model_id:
            raise ValueError(f"gallery {self.path} was built with model {meta['model']} ({meta['model_id'][:23]}), "
                             f"not this model ({model_id[:23]}); use that model or a new gallery")
        if embedding_size is not None and int(meta["embedding_size"]) != int(embedding_size):
            raise ValueError(f"gallery {self.path} holds {meta['embedding_size']}-d embeddings, the model gives {embedding_size}-d")

    # -- writes --------------------------------------------------------------------------------
    def add(self, name: str, sources: Sequence[str], vectors: np.ndarray, *, model_id: str, model: str) -> int:
        """Enrol ``vectors`` (N, D) of person ``name`` in one transaction; creates the schema on first use."""
        name = _check_name(name)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(sources) or len(vectors) == 0:
            raise ValueError(f"Expected one embedding per source, got {vectors.shape} for {len(sources)} sources")
        if not np.all(np.isfinite(vectors)):
            raise ValueError("embeddings contain non-finite values")
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self.transaction() as conn:
            if not self.initialized:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
                conn.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("model_id", model_id), ("model", model), ("embedding_size", str(vectors.shape[1])), ("created", now)])
            else:
                self.check_model(model_id, vectors.shape[1])
            conn.executemany(
                "INSERT INTO embeddings (name, source, vector, added) VALUES (?, ?, ?, ?)",
                [(name, os.path.abspath(s), v.astype("<f4").tobytes(), now) for s, v in zip(sources, vectors)])
            pause = os.environ.get(_PAUSE_ENV)
            if pause:
                print(_PAUSE_ENV, file=sys.stderr, flush=True)
                time.sleep(float(pause))
        return len(vectors)

    def remove(self, name: str) -> int:
        """Delete every embedding of ``name``; returns how many (0 when unknown)."""
        if not self.initialized:
            return 0
        with self.transaction() as conn:
            return conn.execute("DELETE FROM embeddings WHERE name = ?", (name,)).rowcount

    # -- reads ---------------------------------------------------------------------------------
    def people(self) -> List[Tuple[str, int]]:
        """(name, number of embeddings), sorted by name."""
        if not self.initialized:
            return []
        return [(n, c) for n, c in self._conn.execute(
            "SELECT name, COUNT(*) FROM embeddings GROUP BY name ORDER BY name")]

    def embeddings(self) -> Tuple[List[str], List[str], np.ndarray]:
        """Names, sources and the (N, D) float32 embedding matrix."""
        meta = self.meta()
        dim = int(meta.get("embedding_size", 0))
        rows = self._conn.execute("SELECT name, source, vector FROM embeddings ORDER BY id").fetchall() if meta else []
        matrix = np.zeros((len(rows), dim), np.float32)
        for i, (_, _, blob) in enumerate(rows):
            matrix[i] = np.frombuffer(blob, "<f4")
        return [r[0] for r in rows], [r[1] for r in rows], matrix

    def identify(self, query: np.ndarray, *, top: int = 5) -> List[GalleryMatch]:
        """People ranked by the cosine of their closest embedding to the L2-normalised ``query``."""
        if top < 1:
            raise ValueError(f"top must be >= 1, got {top}")
        names, sources, matrix = self.embeddings()
        q = np.asarray(query, np.float32).reshape(-1)
        if matrix.shape[1] and q.shape[0] != matrix.shape[1]:
            raise ValueError(f"query has {q.shape[0]} dimensions, the gallery {matrix.shape[1]}")
        scores = matrix @ q if len(names) else np.zeros(0)
        counts = Counter(names)
        best = {}
        for i in np.argsort(-scores, kind="stable"):
            n = names[i]
            if n not in best:
                best[n] = GalleryMatch(n, float(scores[i]), sources[i], counts[n])
        return list(best.values())[:top]

    def integrity_ok(self) -> bool:
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"Expected a non-empty person name, got {name!r}")
    return name.strip()
