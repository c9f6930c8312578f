"""Quiet commands: no TensorFlow/XLA INFO lines and no library warnings unless asked for.

``lcefr --verbose CMD`` or ``LCEFR_VERBOSE=1`` lets everything through. Where the noise comes from:

- TensorFlow's C++ log (``I tensorflow/...``) obeys ``TF_CPP_MIN_LOG_LEVEL``, which ``import lcefr``
  sets to 3 before TensorFlow loads (not when LCEFR_VERBOSE is on).
- XLA logs through its own copy of absl, which ignores that variable and writes to file descriptor 2
  (``WARNING: All log messages before absl::InitializeLog() ...``, ``I0000 ... XLA service ...``,
  ``Compiled cluster using XLA!``: the first grouped convolution of a process). :func:`filter_fd2` sends
  descriptor 2 through a small filter process that drops those INFO/WARNING lines and passes every
  other line on; Python's own ``sys.stderr`` (progress, errors, tracebacks) bypasses it.
- Python ``warnings`` (tf_keras ``UserWarning``\\ s) and the ``tensorflow`` logger
  (``WARNING:tensorflow:...``): ignored and raised to ERROR.
"""
from __future__ import annotations

import atexit
import io
import logging
import os
import subprocess
import sys
import warnings

__all__ = ["ENV", "NATIVE_LOG", "apply", "filter_fd2", "is_verbose"]

ENV = "LCEFR_VERBOSE"

#: a C++ log line dropped from descriptor 2: absl INFO/WARNING (``I0000 00:00:...  123 file.cc:45] ``),
#: TensorFlow's own INFO/WARNING format, absl's notice that it was never initialised, and TFLite's
#: note that it applied XNNPACK (the host's parity run of ``lcefr bench --remote``), and the int8
#: quantizer's one-line summary of its settings
NATIVE_LOG = (rb"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]\s]+:\d+\] "
              rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] \S+:\d+\] "
              rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
              rb"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$"
              rb"|fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, output_inference_type: \w+$)")

# Runs as `python -I -S -c`: reads the pipe until every writer has closed it, so lines written just
# before a crash still arrive; ignores Ctrl-C for the same reason.
_FILTER = f"""
import os, re, signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
drop = re.compile({NATIVE_LOG!r})
rest = b""
while True:
    chunk = os.read(0, 65536)
    if not chunk:
        keep = b"" if drop.match(rest) else rest
    else:
        lines = (rest + chunk).split(b"\\n")
        rest = lines.pop()
        keep = b"".join(line + b"\\n" for line in lines if not drop.match(line.rstrip(b"\\r")))
        if rest and rest[:1] not in b"IWf0123456789":  # a partial line that cannot become a log line
            keep, rest = keep + rest, b""
    while keep:
        keep = keep[os.write(1, keep):]
    if not chunk:
        break
"""

_filter = None


def is_verbose(environ=None) -> bool:
    """Whether ``LCEFR_VERBOSE`` asks for the libraries' output (anything but unset, 0, false, no, off)."""
    value = (os.environ if environ is None else environ).get(ENV, "")
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def apply(*, verbose: bool) -> None:
    """Quiet this process (before TensorFlow is imported), or let everything through when ``verbose``."""
    verbose = verbose or is_verbose()
    if verbose:
        os.environ[ENV] = "1"
        if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "3":  # import lcefr's default, not a user's choice
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    os.environ.pop(ENV, None)  # TF_CPP_MIN_LOG_LEVEL is already 3: `import lcefr` set it
    warnings.simplefilter("ignore")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    filter_fd2()


def filter_fd2() -> bool:
    """Route descriptor 2 (C++ libraries, child processes) through the filter; False where not possible.

    Only when ``sys.stderr`` is descriptor 2 itself: under click's test runner or pytest's capture
    nothing changes.
    """
    global _filter
    if _filter is not None:
        return True
    try:
        if sys.stderr is None or sys.stderr.fileno() != 2:
            return False
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False
    sys.stderr.flush()
    real = os.dup(2)
    read, write = os.pipe()
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _FILTER], stdin=read, stdout=real)
    except OSError:
        for fd in (real, read, write):
            os.close(fd)
        return False
    os.close(read)
    os.dup2(write, 2)
    os.close(write)
    encoding, errors = sys.stderr.encoding, sys.stderr.errors
    sys.stderr = io.TextIOWrapper(io.FileIO(real, "w", closefd=False), encoding=encoding, errors=errors,
                                  line_buffering=True, write_through=True)
    _filter = (proc, real)
    atexit.register(_close_filter)
    return True


def _close_filter() -> None:
    """Put descriptor 2 back and wait for the filter to pass on what it still holds."""
    global _filter
    if _filter is None:
        return
    proc, real = _filter
    _filter = None
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(real, 2)  # closes this process's end of the pipe
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # a child process still holds the pipe; the filter outlives us
        pass
