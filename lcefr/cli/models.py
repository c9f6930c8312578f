"""``lcefr models list|summary``."""
from __future__ import annotations

import click

from lcefr.cli._common import echo_json, format_table, json_option


@click.group()
def models():
    """List the model zoo and count parameters, MACs and memory."""


@models.command("list")
@click.argument("pattern", default="*")
@click.option("--no-tests", is_flag=True, help="Hide the tiny test_* variants.")
@json_option
def list_cmd(pattern, no_tests, as_json):
    """List registered models whose name matches PATTERN (a glob, default '*')."""
    from lcefr.models import list_models, model_info

    infos = [model_info(n) for n in list_models(pattern, include_tests=not no_tests)]
    records = [
        {"name": i.name, "family": i.family, "binary": i.binary, "embedding_size": i.embedding_size}
        for i in infos
    ]
    if as_json:
        echo_json(records)
        return
    rows = [[i.name, i.family, "yes" if i.binary else "no", i.embedding_size, "yes" if i.lce_native else "no"] for i in infos]
    click.echo(format_table(["name", "family", "binary", "embedding", "lce-native"], rows))


@models.command("summary")
@click.argument("name")
@json_option
def summary_cmd(name, as_json):
    """Parameters, binary and float MACs and weight memory of NAME at 112x112 (larq's profile)."""
    from lcefr.models import create_model
    from lcefr.profile import summarize

    record = summarize(name, create_model(name))
    if as_json:
        echo_json(record)
        return
    keys = ["params", "binary_macs", "float_macs", "memory_bytes"]
    rows = [[part] + [f"{record[part][k]:,}" for k in keys] for part in ("backbone", "total")]
    click.echo(f"{name}: input {'x'.join(map(str, record['input_shape']))}, embedding {record['embedding_size']}")
    click.echo(format_table(["part", *keys], rows))
