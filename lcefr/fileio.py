"""Small file helpers shared by commands that write results."""
from __future__ import annotations

import json
import os
from typing import Dict, Optional

__all__ = ["write_atomic", "read_history"]


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: never a half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_history(out_dir: str) -> Optional[Dict]:
    """The ``history.json`` of the run folder ``out_dir`` (written by ``lcefr train`` and ``lcefr personal train``),
    or ``None`` when the run has not finished an epoch yet."""
    path = os.path.join(out_dir, "history.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)
