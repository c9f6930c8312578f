"""Helpers shared by the CLI tests: invoke ``lcefr``, read its ``--json`` output, check a user error.

pytest puts ``tests/`` on ``sys.path`` (the rootdir conftest lives there), so test files import this
module as ``from cli_helpers import ...``.
"""
import json

import cv2
import numpy as np
from click.testing import CliRunner

from lcefr.cli import cli


def run(*args, env=None):
    """``lcefr ARGS...`` in-process; every argument is turned into a string."""
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def json_output(output: str):
    """The JSON object printed by a ``--json`` command (anything before the first ``{`` is skipped)."""
    return json.loads(output[output.index("{"):])


def one_error(result) -> str:
    """Assert a user error: exit code 2 and exactly one ``error: ...`` line on stderr (warnings aside)."""
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def write_rgb(path, rgb):
    """Write an RGB uint8 image (creating parent folders) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))
    return path
