"""XNNPACK placement of a ``.tflite`` file on the emulated board's runtimes (tflite-runtime 2.14,
ai-edge-litert 1.4): ``lcefr inspect FILE --delegation --runtime ...``.

The standalone :mod:`lcefr.convert.delegation_guest` runs under qemu on the board's rootfs (``-L``;
no sshd needed) and prints the interpreter's raw nodes; :func:`lcefr.convert.delegation.placement`
turns them into the per-op report, exactly as for this machine's TensorFlow.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

from lcefr.board import emulate
from lcefr.board.count import QEMU, guest_env, guest_stage
from lcefr.convert.delegation import GUEST_SCRIPT, DelegationError, DelegationReport, placement
from lcefr.vocab import DELEGATION_RUNTIMES

__all__ = ["EMULATED_RUNTIMES", "board_delegation"]

#: the emulated board's wheels (every delegation runtime but this machine's TensorFlow)
EMULATED_RUNTIMES = tuple(r for r in DELEGATION_RUNTIMES if r != "tensorflow")


def _raw(path: str, runtime: str, paths: emulate.BoardPaths, timeout: float) -> dict:
    rootfs = emulate.prepare(paths)
    with guest_stage(rootfs, "lcefr-delegation-") as (stage, guest):
        shutil.copy(path, os.path.join(stage, "model.tflite"))
        shutil.copy(GUEST_SCRIPT, os.path.join(stage, "delegation_guest.py"))
        python = os.path.join(rootfs, emulate.GUEST_PYTHON.lstrip("/"))
        cmd = [QEMU, "-L", rootfs, "-cpu", emulate.CPU, python, "-s", f"{guest}/delegation_guest.py",
               "--model", f"{guest}/model.tflite", "--runtime", runtime]
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=guest_env(guest),
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise DelegationError(f"{runtime} on the emulated board timed out after {timeout:.0f} s") from None
    text = proc.stdout.decode("utf-8", "replace")
    for line in text.splitlines():
        if line.startswith("LCEFR_DELEGATION_ERROR"):
            raise DelegationError(f"{runtime} on the emulated board: {line.split(' ', 1)[-1]}")
        if line.startswith("LCEFR_DELEGATION "):
            return json.loads(line.split(" ", 1)[1])
    last = [line for line in text.strip().splitlines() if line.strip()]
    raise DelegationError(f"{runtime} on the emulated board printed no result (exit {proc.returncode}: "
                          f"{last[-1] if last else 'no output'})")


def board_delegation(path: str, runtime: str, *, paths: emulate.BoardPaths = None,
                     timeout: float = 600) -> DelegationReport:
    """Placement of ``path`` on ``runtime`` of the emulated board (built on first use; root).

    Raises DelegationError (the runtime cannot load the file), CannotEmulate or BoardError.
    """
    if runtime not in EMULATED_RUNTIMES:
        raise ValueError(f"unknown board runtime {runtime!r}; choose one of {', '.join(EMULATED_RUNTIMES)}")
    return placement(_raw(path, runtime, paths or emulate.board_paths(), timeout))
