"""``lcefr quantize``: small-data w{b}a{b} quantization-aware training from a float teacher (Ef-QuantFace)."""
from __future__ import annotations

import click

from lcefr.cli._common import CliError, StageBars, echo_json, format_table, json_option
from lcefr.vocab import QAT_LOSSES


def _pct(v):
    return "-" if v is None else f"{100 * v:.2f}"


@click.command()
@click.option("--teacher", required=True, help="Float backbone: a .keras file (e.g. from `lcefr train`) or a registry name.")
@click.option("--bits", required=True, type=int, help="Weight and activation bits: 8, 6 or 4.")
@click.option("--data", required=True, help="Image folder (identity sub-folders give labels) or 'synthetic'.")
@click.option("--images", type=int, help="Use a random subset of this many images (whole identities first).")
@click.option("--epochs", default=1, show_default=True, type=int)
@click.option("--loss", default="ekd", show_default=True, type=click.Choice(QAT_LOSSES),
              help="EKD (label-free with two views), QuantFace's embedding MSE, or EKD plus class-centre cross-entropy.")
@click.option("--batch-size", default=16, show_default=True, type=int, help="Images per step.")
@click.option("--lr", default=1e-4, show_default=True, type=float,
              help="SGD (momentum 0.9) learning rate, cosine decay to 0. Seed 002 uses 1e-3, which "
                   "pulls a well-trained teacher's copy away from it (docs/studies.md).")
@click.option("--calibration-images", default=256, show_default=True, type=int,
              help="Images whose activations set the frozen ranges (and the int8 export's).")
@click.option("--val-bin", multiple=True, type=click.Path(), help=".bin set: teacher vs quantized accuracy (repeatable).")
@click.option("--no-flip", is_flag=True, help="Evaluate without the flip-test (half the time).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: quantized.keras, report.json, model.int8.tflite + model.int8.json.")
@json_option
def quantize(teacher, bits, data, images, epochs, loss, batch_size, lr, calibration_images, val_bin, no_flip, seed,
             out_dir, as_json):
    """Quantize a float face backbone to w{bits}a{bits} with one short distillation run.

    \b
    A copy of TEACHER gets fake-quantized convolutions and dense layers (per-channel symmetric
    weights, activation ranges calibrated on --data and then frozen, straight-through gradients)
    and is trained to match the frozen teacher (EKD by default) on a small image set.
    Writes OUT/quantized.keras (the fake-quantized Keras model, layers in lcefr.quantize),
    OUT/report.json (sizes, accuracy of teacher and student on every --val-bin, gap), and for
    OUT/model.int8.tflite (learned kernels folded into the float graph, TFLite int8, checked
    against it like `lcefr convert`) with its sidecar OUT/model.int8.json. For 6 and 4 bits that
    file is an int8 container of the coarser grid, its precision in the TFLite metadata
    `lcefr.bits`; the report gives the simulated accuracy and the packed size bits x params / 8.
    """
    from lcefr.quantize.workflow import QuantizeError, quantize_backbone

    try:
        with StageBars() as progress:
            report = quantize_backbone(
                teacher=teacher, bits=bits, data=data, out_dir=out_dir, images=images, epochs=epochs, loss=loss,
                batch_size=batch_size, lr=lr, calibration_images=calibration_images, val_bins=val_bin,
                flip=not no_flip, seed=seed, progress=progress, note=lambda line: click.echo(line, err=True))
    except QuantizeError as err:
        raise CliError(str(err)) from None
    if as_json:
        echo_json({**report, "out": out_dir})
        return
    accuracy = report["accuracy"]
    click.echo(f"w{bits}a{bits}: {report['params']:,} params, {report['size_bytes_float'] / 1e6:.2f} MB float -> "
               f"{report['size_bytes_quantized'] / 1e6:.2f} MB packed"
               + f", int8 .tflite {report['tflite_int8_bytes'] / 1e6:.2f} MB"
               + ("" if bits == 8 else f" (container of the w{bits} grid, metadata lcefr.bits)"))
    if accuracy:
        rows = [[n, _pct(r["teacher"]), _pct(r["quantized"]), _pct(r.get("int8_tflite")), f"{100 * r['gap']:+.2f}"]
                for n, r in accuracy.items()]
        click.echo(format_table(["set", "teacher %", f"w{bits}a{bits} %", "int8 tflite %", "gap (pts)"], rows))
    click.echo(f"-> {out_dir}")
