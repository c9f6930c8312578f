"""Shared CLI plumbing: user-error handling, JSON output, table printing."""
from __future__ import annotations

import json
import os
from typing import Any, Iterable, List, Sequence

import click

__all__ = ["CliError", "Group", "echo_json", "format_table", "json_option", "progressbar"]


class CliError(click.ClickException):
    """A user mistake or an unusable environment: one line on stderr, exit code 2."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True)


def _user_errors():
    from lcefr import KerasModeError

    return (ValueError, KeyError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, KerasModeError)


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


