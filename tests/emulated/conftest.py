"""The emulated Cortex-A57 board, started once per test worker and used by one test at a time.

Under CI=true a machine that cannot emulate fails the tests; elsewhere they skip with the reason.
The board is built on first use (debootstrap, a few minutes) and cached in build/board/.
"""
import contextlib
import fcntl
import os
import subprocess
import sys

import pytest

from emuhelp import MODELS, ROOT


def _cannot(reason):
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and the emulated board cannot run: {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def _exclusive():
    """One board test at a time across test workers: they share the board, and some stop it."""
    from lcefr.board import emulate

    directory = emulate.board_paths().dir
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, ".tests.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def board_session():
    """Started once (built on first use); stopped when the worker's tests are done (another worker's
    next test starts it again in seconds)."""
    from lcefr.board import emulate

    try:
        emulate.check_can_emulate()
    except emulate.CannotEmulate as err:
        _cannot(str(err))
    with _exclusive():
        emulate.up(say=lambda m: print(m, file=sys.stderr))
    yield
    with _exclusive():
        emulate.down()


@pytest.fixture
def board_exclusive():
    with _exclusive():
        yield


@pytest.fixture
def board(board_session):
    """The running board's status (started again, in seconds, after a test stopped it)."""
    from lcefr.board import emulate

    return emulate.up()


@pytest.fixture(scope="session")
def model_files():
    """quicknet_small's LCE, float and int8 files as ``make models`` writes them (reused when present)."""
    names = {"lce": "quicknet_small.tflite", "float": "quicknet_small.float.tflite", "int8": "quicknet_small.int8.tflite"}
    paths = {k: os.path.join(MODELS, v) for k, v in names.items()}
    missing = [os.path.relpath(p, ROOT) for p in paths.values() if not os.path.isfile(p)]
    if missing:
        with _exclusive():  # one worker converts, the other waits for the files
            missing = [os.path.relpath(p, ROOT) for p in paths.values() if not os.path.isfile(p)]
            if missing:
                proc = subprocess.run(["make", "--no-print-directory", "-C", ROOT, *missing], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, timeout=1800)
                assert proc.returncode == 0, proc.stdout[-3000:]
    return paths
