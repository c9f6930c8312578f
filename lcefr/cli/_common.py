"""Shared CLI plumbing: user-error handling, JSON output, table printing."""
from __future__ import annotations

import json
import os
from typing import Any, Iterable, List, Sequence

import click

from lcefr.vocab import DEFAULT_THRESHOLD_COS

__all__ = ["CliError", "Group", "StageBars", "echo_json", "format_table", "json_option", "progressbar"]


class CliError(click.ClickException):
    """A user mistake or an unusable environment: one line on stderr, exit code 2."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True)


def _user_errors():
    from lcefr import KerasModeError
    from lcefr.face.detect import DetectorUnavailableError

    return (ValueError, KeyError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, KerasModeError,
            DetectorUnavailableError)


class Group(click.Group):
    """A click group that turns library errors caused by input into one clear line and exit 2.

    Set ``LCEFR_DEBUG=1`` to see the traceback instead.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except _user_errors() as err:
            if os.environ.get("LCEFR_DEBUG"):
                raise
            message = err.args[0] if isinstance(err, KeyError) and err.args else err
            raise CliError(str(message)) from None


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table.")


def progressbar(iterable=None, **kwargs):
    """``click.progressbar`` on stderr, drawn only on a terminal (elsewhere click prints its label as a stray line)."""
    stderr = click.get_text_stream("stderr")
    return click.progressbar(iterable, file=stderr, hidden=not stderr.isatty(), **kwargs)


class StageBars:
    """A ``progress(stage, done, total)`` callback of a multi-stage library workflow: one :func:`progressbar`
    per stage, opened when ``done`` is 0. Use as a context manager so the last bar is finished on an error."""

    def __init__(self):
        self._bar, self._done = None, 0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if done == 0 or self._bar is None:
            self.close()
            self._bar, self._done = progressbar(length=total, label=stage), 0
            self._bar.__enter__()
        self._bar.update(done - self._done)
        self._done = done

    def close(self) -> None:
        if self._bar is not None:
            bar, self._bar = self._bar, None
            bar.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Progress(StageBars):
    """A ``progress(done, total)`` callback of a one-stage library workflow: a :class:`StageBars` with one label."""

    def __init__(self, label: str):
        super().__init__()
        self.label = label

    def __call__(self, done: int, total: int) -> None:
        super().__call__(self.label, done, total)


# ---- options shared by the face commands --------------------------------------------------------

min_face_option = click.option(
    "--min-face", type=click.IntRange(min=12), default=20, show_default=True, metavar="PX",
    help="Smallest face to find, in pixels. Larger values shrink the image before detection (faster when "
         "faces are large, e.g. 60 for a webcam at arm's length).")
no_align_option = click.option("--no-align", is_flag=True, help="Images are aligned 112x112 faces; never detect.")
threshold_options = [
    click.option("--calibration", type=click.Path(dir_okay=False),
                 help="JSON from `lcefr eval --calibration-out`; its threshold_cos decides."),
    click.option("--threshold", type=float, help=f"Cosine threshold (default {DEFAULT_THRESHOLD_COS}, uncalibrated)."),
]
db_option = click.option("--db", required=True, type=click.Path(dir_okay=False), help="Gallery SQLite file.")


def with_options(options):
    """Apply a list of click options as one decorator."""
    def deco(f):
        for option in reversed(options):
            f = option(f)
        return f
    return deco


def cosine_threshold(calibration, threshold):
    """(threshold, source) of --calibration / --threshold; warns on stderr when it is the uncalibrated default."""
    from lcefr.face.decide import resolve_threshold

    value, source = resolve_threshold(calibration, threshold)
    if source == "default":
        click.echo(f"warning: no --calibration or --threshold; using the uncalibrated default cosine threshold "
                   f"{DEFAULT_THRESHOLD_COS} (calibrate with `lcefr eval MODEL --bin SET.bin --calibration-out F.json`)",
                   err=True)
    return value, source


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table with right-aligned numbers."""
    rows = [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: List[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            numeric = cell.replace(".", "", 1).replace(",", "").replace("-", "", 1).replace("x", "").isdigit()
            out.append(cell.rjust(widths[i]) if numeric else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(list(headers)), rule] + [line(r) for r in rows])


