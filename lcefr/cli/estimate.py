"""``lcefr estimate``: expected instructions, ms and FPS of .tflite files on an ARM core."""
from __future__ import annotations

import os

import click

from lcefr.cli._common import CliError, echo_json, format_table, json_option


@click.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--cpu", type=click.Choice(["cortex-a57", "cortex-a72", "cortex-a53"]), default="cortex-a57", show_default=True,
              help="Core to expect on: A57 (Jetson Nano), A72 (Raspberry Pi 4), A53 (Raspberry Pi 3).")
@click.option("--ghz", type=click.FloatRange(0.1, 5.0), default=None,
              help="Clock [default: 1.43 for the A57, 1.5 for the A72, 1.2 for the A53].")
@click.option("--kernel", type=click.Choice(["auto", "default", "indirect"]), default="auto", show_default=True,
              help="LCE binary kernel for the whole file; auto: default unless a binary conv is grouped, then indirect.")
@click.option("--float-ops", type=click.Choice(["xnnpack", "builtin"]), default="xnnpack", show_default=True,
              help="How float and int8 ops run: XNNPACK (LCE's release binaries; tflite-runtime for float ops, "
                   "ai-edge-litert for int8 ones) or TFLite's builtin kernels (int8 ops on tflite-runtime 2.14).")
@click.option("--per-layer", is_flag=True, help="List every op: index, op, shape, kernel, instructions, share.")
@json_option
def estimate(files, cpu, ghz, kernel, float_ops, per_layer, as_json):
    """Expected speed of FILES (.tflite) on one ARM core, from the flatbuffer alone (no execution).

    \b
    Instructions per inference from lcefr's per-op cost model (fitted to instruction counts of
    LCE's and TFLite's aarch64 kernels on an emulated Cortex-A57), then ms and FPS as a range from
    the CPU's IPC range at --ghz. One thread, batch 1. docs/estimate.md has the model and its error.
    """
    from lcefr.estimate import estimate_file

    rows = []
    for path in files:
        if not os.path.isfile(path):
            raise CliError(f"model file not found: {path}")
        rows.append(estimate_file(path, cpu=cpu, ghz=ghz, kernel=kernel, float_ops=float_ops, per_layer=per_layer))
    if as_json:
        echo_json(rows)
        return
    click.echo(format_table(
        ["model", "cpu", "GHz", "kernel", "float ops", "instructions", "ms", "FPS"],
        [[r["model"], r["cpu"], f"{r['ghz']:.2f}", r["kernel"], r["float_ops"], f"{r['instructions'] / 1e6:.2f} M",
          f"{r['ms']['low']:.1f}-{r['ms']['high']:.1f}", f"{r['fps']['low']:.0f}-{r['fps']['high']:.0f}"] for r in rows]))
    if per_layer:
        for r in rows:
            click.echo(f"\n{r['model']}:")
            click.echo(format_table(["index", "op", "shape", "kernel", "instructions", "share"],
                                    [[str(x["index"]), x["op"], x["shape"], x["kernel"], f"{x['instructions']:,}",
                                      f"{100 * x['share']:.1f}%"] for x in r["layers"]]))
