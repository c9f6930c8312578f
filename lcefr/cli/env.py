"""``lcefr env``: versions of the stack, exit 2 when it does not match the pins."""
from __future__ import annotations

import click

from lcefr.cli._common import CliError, echo_json, json_option

_LABELS = [
    ("python", "Python"),
    ("tensorflow", "TensorFlow"),
    ("tf-keras", "tf-keras"),
    ("keras_backend", "tf.keras"),
    ("larq", "larq"),
    ("larq-zoo", "larq-zoo"),
    ("larq-compute-engine", "LCE"),
    ("numpy", "numpy"),
    ("protobuf", "protobuf"),
    ("opencv", "OpenCV"),
    ("nvcc", "nvcc"),
]


@click.command()
@json_option
def env(as_json):
    """Print the versions of Python, TensorFlow, tf-keras, larq, larq-zoo, LCE, numpy, OpenCV, nvcc.

    Exits with status 2 and says what is wrong when the installed stack does not match the
    pinned one (see setup.cfg).
    """
    from lcefr.stack import check_stack

    report = check_stack()
    if as_json:
        echo_json({"versions": report.versions, "ok": report.ok, "problems": report.problems})
    else:
        width = max(len(label) for _, label in _LABELS)
        for key, label in _LABELS:
            value = report.versions.get(key)
            shown = value if value else ("not found" if key == "nvcc" else "missing")
            click.echo(f"{label.ljust(width)}  {shown}")
    if not report.ok:
        raise CliError("stack mismatch: " + "; ".join(report.problems))
