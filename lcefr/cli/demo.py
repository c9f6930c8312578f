"""``lcefr demo``: the zoo converted with LCE and timed on this CPU, one table."""
from __future__ import annotations

import json
import os

import click

from lcefr.cli._common import echo_json, format_table, json_option, progressbar

HEADERS = ["model", "params", "binary MACs", "float MACs", ".tflite KB", "bconv", "bin MAC %", "parity cos", "ms/face", "FPS"]


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


@click.command()
@click.option("--models", "names", default=None, help="Comma-separated model names (default: the demo set).")
@click.option("--all", "all_models", is_flag=True, help="Every registry model except the tiny test_* ones.")
@click.option("--runs", default=20, show_default=True, help="Timed runs per model.")
@click.option("--warmup", default=3, show_default=True, help="Untimed runs before timing.")
@click.option("--out", "out_dir", default="build/demo", show_default=True, help="Where the .tflite files go.")
@click.option("--compare", is_flag=True, help="Also convert to float and int8 TFLite and time them (XNNPACK) in the same run.")
@click.option("--train/--no-train", "with_train", default=None,
              help="Run the end-to-end part first: generated faces -> short training -> held-out eval -> LCE "
                   "(default: on for the demo set, off with --models/--all).")
@click.option("--train-model", default="quicknet_small", show_default=True, help="Model trained in the end-to-end part.")
@json_option
def demo(names, all_models, runs, warmup, out_dir, compare, with_train, train_model, as_json):
    """Train, evaluate, convert and time binary face models on this CPU, end to end.

    \b
    1. generated faces and a held-out generated .bin (600 pairs)
    2. a few minutes of ArcFace training of --train-model, held-out accuracy before and after
    3. LCE conversion of the trained backbone (checked), its accuracy and ms/face
    4. the speed table: every demo model converted with LCE, verified and timed
    Every conversion is checked: the LceBconv2d count and the Keras-vs-interpreter cosine.
    x86 timings use LCE's portable kernels (indirect BGEMM); they rank models on this machine
    and are not ARM numbers (use `make jetson-bench` for a board).
    """
    from lcefr.demo import DEMO_MODELS, run_demo, run_pipeline
    from lcefr.models import list_models

    if all_models:
        cheap_first = ("quicknet_small", "quicknet", "binaryfacenet", "binaryfacenet_lce", "mobilefacenet")
        rest = [n for n in list_models(include_tests=False) if n not in cheap_first]
        selected = list(cheap_first) + rest
    elif names:
        selected = [n.strip() for n in names.split(",") if n.strip()]
    else:
        selected = list(DEMO_MODELS)
    known = set(list_models())
    unknown = [n for n in selected if n not in known]
    if unknown:
        raise click.BadParameter(f"unknown model(s) {', '.join(unknown)}; see `lcefr models list`", param_hint="--models")
    if runs < 1 or warmup < 0:
        raise click.BadParameter("--runs must be >= 1 and --warmup >= 0")

    if with_train is None:
        with_train = not (all_models or names)
    pipeline = None
    if with_train:
        if train_model not in known:
            raise click.BadParameter(f"unknown model {train_model}", param_hint="--train-model")
        pipeline = run_pipeline(out_dir, model=train_model, log=lambda m: click.echo(m, err=True))
        click.echo(f"[5/5] speed table: {', '.join(selected)} (random weights), LCE, 1 thread", err=True)

    def show(row):
        if not as_json:
            click.echo(f"  {row.model}: {row.ms_per_face:.2f} ms/face, parity cos {row.parity_cosine:.5f}", err=True)

    with progressbar(length=len(selected), label="models") as bar:
        def on_row(row):
            bar.update(1)
            show(row)
            if out_dir:  # each finished row is kept even if a long run is stopped
                os.makedirs(out_dir, exist_ok=True)
                with open(os.path.join(out_dir, "rows.jsonl"), "a") as f:
                    f.write(json.dumps(row.to_dict()) + "\n")

        rows = run_demo(selected, out_dir=out_dir, runs=runs, warmup=warmup, compare=compare, on_row=on_row)
    if as_json:
        echo_json({"pipeline": pipeline.to_dict() if pipeline else None, "models": [r.to_dict() for r in rows]}
                  if with_train else [r.to_dict() for r in rows])
        return
    if pipeline:
        p = pipeline
        click.echo(f"{p.model} trained {p.train_s:.0f} s on {p.train_images} generated faces: held-out accuracy "
                   f"{100 * p.accuracy_untrained:.2f}% -> {100 * p.accuracy_trained:.2f}% (Keras), "
                   f"{100 * p.lce_accuracy:.2f}% (LCE .tflite, {p.lce_bconv2d} LceBconv2d, {p.ms_per_face:.2f} ms/face)")
    table = [
        [
            r.model,
            _human(r.params),
            _human(r.binary_macs),
            _human(r.float_macs),
            f"{r.tflite_bytes / 1024:.0f}",
            r.lce_bconv2d,
            f"{100 * r.binary_mac_share:.1f}",
            f"{r.parity_cosine:.5f}",
            f"{r.ms_per_face:.2f}" if r.status == "ok" else "failed",
            f"{r.fps:.1f}" if r.status == "ok" else "-",
        ]
        for r in rows
    ]
    headers = list(HEADERS)
    if compare:
        headers += ["float ms", "int8 ms", "onnx ms", "float/LCE", "int8 cos", "onnx cos"]
        for r, line in zip(rows, table):
            ratio = r.float_ms / r.ms_per_face if r.float_ms and r.status == "ok" else None
            line += [
                f"{r.float_ms:.2f}" if r.float_ms else "failed",
                f"{r.int8_ms:.2f}" if r.int8_ms else "failed",
                f"{r.onnx_ms:.2f}" if r.onnx_ms else "failed",
                f"{ratio:.2f}x" if ratio else "-",
                f"{r.int8_parity_cosine:.4f}" if r.int8_parity_cosine is not None else "-",
                f"{r.onnx_parity_cosine:.5f}" if r.onnx_parity_cosine is not None else "-",
            ]
    click.echo(format_table(headers, table))
    for r in rows:
        if r.error:
            click.echo(f"failed: {r.model}: {r.error}")
        for note in r.notes:
            click.echo(f"note: {r.model}: {note}")
    click.echo("LCE interpreter (indirect BGEMM) vs TFLite+XNNPACK, 1 thread, random weights, this CPU (not an ARM board).")
