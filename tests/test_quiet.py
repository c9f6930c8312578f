"""Quiet commands (lcefr/cli/quiet.py): no TensorFlow/XLA log lines or library warnings unless --verbose.

Each command runs in a subprocess: the noise is written by C++ to file descriptor 2, which an
in-process runner cannot see.
"""
import os
import re
import subprocess
import sys
import textwrap

import pytest

from lcefr.cli import quiet

#: what must not reach the user by default (issue 22)
NOISE = re.compile(r"I0000|UserWarning|WARNING:tensorflow|absl::|XLA service|^\S+ [IW] tensorflow/", re.M)
#: TensorFlow's own INFO lines, printed on import when they are let through
TF_INFO = re.compile(r"^\d{4}-\d\d-\d\d [\d:.]+: I \S+\.cc:\d+\] ", re.M)
#: absl (XLA) lines, as XLA writes them on its first compiled cluster
XLA_INFO = re.compile(r"^I0000 .*(XLA service|Compiled cluster using XLA)", re.M)


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "LCEFR_VERBOSE")}
    env.update(extra)
    return env


def _lcefr(*args, env=None, timeout=600):
    """stdout + stderr of ``python -m lcefr ARGS`` (both pipes, so stderr is not a terminal)."""
    proc = subprocess.run([sys.executable, "-m", "lcefr", *args], capture_output=True, text=True,
                          env=env or _env(), timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("line, dropped", [
    ("I0000 00:00:1796387544.367426   22374 service.cc:145] XLA service 0x55cb initialized for platform Host", True),
    ("I0000 00:00:1796387545.391160   22374 device_compiler.h:188] Compiled cluster using XLA!", True),
    ("W0000 00:00:1796387545.391160   22374 some_file.cc:12] a warning", True),
    ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR", True),
    ("2026-12-04 12:32:57.961343: I tensorflow/core/util/port.cc:113] oneDNN custom operations are on.", True),
    ("2026-12-04 12:32:59.078722: W tensorflow/compiler/tf2tensorrt/utils/py_utils.cc:38] TF-TRT Warning", True),
    ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", True),
    ("INFO: anything else TFLite says", False),
    ("fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, output_inference_type: FLOAT32", True),
    ("fully_quantize failed: anything else", False),
    ("E0000 00:00:1796387545.391160   22374 some_file.cc:12] an error", False),
    ("F0000 00:00:1796387545.391160   22374 some_file.cc:12] Check failed", False),
    ("2026-12-04 12:32:57.977359: E external/local_xla/xla/stream_executor/cuda/cuda_fft.cc:479] Unable", False),
    ("Illegal instruction", False),
    ("warning: no LceBconv2d in the converted model", False),
    ("Traceback (most recent call last):", False),
])
def test_native_log_pattern(line, dropped):
    assert bool(re.match(quiet.NATIVE_LOG, line.encode())) is dropped


def test_fd2_filter_drops_log_lines_and_passes_the_rest():
    """Writes straight to descriptor 2 (as C++ and child processes do) and to sys.stderr, then a crash."""
    code = textwrap.dedent("""
        import os, subprocess, sys
        from lcefr.cli import quiet
        assert quiet.filter_fd2()
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
        os.write(2, b"I0000 00:00:1796387544.367426   22374 service.cc:145] XLA service 0x1 initialized\\n")
        os.write(2, b"native kept\\nE0000 00:00:1796387544.367426   22374 a.cc:1] error kept\\npartial ")
        os.write(2, b"line kept\\n")
        subprocess.run(["sh", "-c", "echo child kept >&2"])
        print("python stderr kept", file=sys.stderr)
        os.write(2, b"last words kept\\n")
        os.abort()
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    err = proc.stderr.decode()
    assert proc.returncode != 0
    for kept in ("native kept", "error kept", "partial line kept", "child kept", "python stderr kept",
                 "last words kept"):
        assert kept in err, err
    assert "XLA service" not in err and "absl::" not in err, err


def test_fd2_filter_not_under_a_test_runner(capsys):
    assert quiet.filter_fd2() is False  # sys.stderr is pytest's capture here, not descriptor 2


def test_is_verbose():
    assert not quiet.is_verbose({})
    for off in ("", "0", "false", "No", "off"):
        assert not quiet.is_verbose({"LCEFR_VERBOSE": off})
    for on in ("1", "yes", "true"):
        assert quiet.is_verbose({"LCEFR_VERBOSE": on})


def test_env_is_quiet_by_default():
    """``lcefr env`` imports TensorFlow; by default none of its INFO lines get out."""
    out = _lcefr("env")
    assert "TensorFlow" in out
    assert not NOISE.search(out) and not TF_INFO.search(out), out


@pytest.mark.parametrize("how", ["--verbose", "LCEFR_VERBOSE=1"])
def test_env_verbose_lets_tensorflow_through(how):
    args, env = (["--verbose", "env"], _env()) if how == "--verbose" else (["env"], _env(LCEFR_VERBOSE="1"))
    out = _lcefr(*args, env=env)
    assert TF_INFO.search(out), out


@pytest.mark.slow
def test_convert_is_quiet_and_verbose_shows_xla(tmp_path):
    """A grouped convolution (binaryfacenet) makes XLA compile a cluster in the Keras parity check."""
    out = _lcefr("convert", "test_binaryfacenet", "--to", "tflite", "-o", str(tmp_path / "q.tflite"))
    assert "test_binaryfacenet ->" in out
    assert not NOISE.search(out), out
    lines = [line for line in out.splitlines() if line.strip()]
    assert all(line.startswith(("warning: no LceBconv2d", "test_binaryfacenet ->", "  ")) for line in lines), out

    out = _lcefr("--verbose", "convert", "test_binaryfacenet", "--to", "tflite", "-o", str(tmp_path / "v.tflite"))
    assert XLA_INFO.search(out), out
