"""``lcefr quantize``: small-data w{b}a{b} quantization-aware training from a float teacher (Ef-QuantFace)."""
from __future__ import annotations

import json
import os
import shutil

import click

from lcefr.cli._common import CliError, echo_json, format_table, json_option


def _pct(v):
    return "-" if v is None else f"{100 * v:.2f}"


@click.command()
@click.option("--teacher", required=True, help="Float backbone: a .keras file (e.g. from `lcefr train`) or a registry name.")
@click.option("--bits", required=True, type=int, help="Weight and activation bits: 8, 6 or 4.")
@click.option("--data", required=True, help="Image folder (identity sub-folders give labels) or 'synthetic'.")
@click.option("--images", type=int, help="Use a random subset of this many images (whole identities first).")
@click.option("--epochs", default=1, show_default=True, type=int)
@click.option("--loss", default="ekd", show_default=True, type=click.Choice(["ekd", "mse", "ekd+ce"]),
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
    from lcefr.quantize.fakequant import SUPPORTED_BITS

    if bits not in SUPPORTED_BITS:
        raise CliError(f"--bits must be one of {', '.join(map(str, SUPPORTED_BITS))}, got {bits}")
    if epochs < 0:
        raise CliError(f"--epochs must be >= 0, got {epochs}")
    if batch_size < 2:
        raise CliError(f"--batch-size must be >= 2, got {batch_size}")
    if images is not None and images < 2:
        raise CliError(f"--images must be at least 2, got {images}")
    if calibration_images < 1:
        raise CliError(f"--calibration-images must be >= 1, got {calibration_images}")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise CliError(f"--out {out_dir} exists and is not a folder")
    missing = [b for b in val_bin if not os.path.isfile(b)]
    if missing:
        raise CliError(f"--val-bin {missing[0]}: no such file")
    if data != "synthetic" and not os.path.isdir(data):
        raise CliError(f"--data {data}: no such folder (give an image folder or 'synthetic')")
    from lcefr.models import list_models

    if not os.path.exists(teacher) and teacher not in list_models():
        raise CliError(f"--teacher {teacher}: no such file and not a registry model (see `lcefr models list`)")

    from lcefr.data.binset import read_bin
    from lcefr.quantize.qat import (export_int8, keras_runner, load_quant_data, load_teacher, packed_size,
                                    quantization_aware_training, verification_accuracy)

    stderr = click.get_text_stream("stderr")
    try:
        float_model = load_teacher(teacher, seed=seed)
    except (ValueError, FileNotFoundError) as err:
        raise CliError(f"--teacher {teacher}: {err}") from None
    quant_data = load_quant_data(data, images=images, seed=seed)
    if loss == "ekd+ce" and not quant_data.labelled:
        raise CliError("--loss ekd+ce needs labelled --data (one sub-folder per identity); this folder has none")
    sets = [(os.path.splitext(os.path.basename(p))[0], read_bin(p)) for p in val_bin]
    click.echo(f"{float_model.name}: w{bits}a{bits}, {len(quant_data.images)} images "
               f"({'labelled' if quant_data.labelled else 'unlabelled'}), {epochs} epoch(s), loss {loss}", err=True)

    with click.progressbar(length=max(1, epochs * (len(quant_data.images) // batch_size) * batch_size),
                           label="quantization-aware training", file=stderr) as bar:
        result = quantization_aware_training(
            float_model, quant_data, bits=bits, loss=loss, epochs=epochs, batch_size=batch_size, lr=lr,
            calibration_images=calibration_images, seed=seed, progress=bar.update)
    student = result.student

    accuracy = {}
    for name, vs in sets:
        passes = len(vs.images) * (1 if no_flip else 2)
        row = {}
        for role, model in (("teacher", float_model), ("quantized", student)):
            with click.progressbar(length=passes, label=f"{name}: {role}", file=stderr) as bar:
                row[role] = verification_accuracy(keras_runner(model), vs, flip=not no_flip, progress=bar.update)
        row["gap"] = row["teacher"] - row["quantized"]
        accuracy[name] = row

    from lcefr.convert.api import ConversionCheckError

    n = min(calibration_images, len(quant_data.images))
    with click.progressbar(length=1, label="int8 .tflite export", file=stderr) as bar:
        try:
            tflite_bytes, conversion = export_int8(student, float_model, quant_data.images[:n], bits=bits)
        except ConversionCheckError as err:
            raise CliError(f"int8 export failed its check, nothing written: {err}") from None
        bar.update(1)
    sidecar = {"file": "model.int8.tflite", "bits": bits, "container": "int8",
               "simulated_accuracy": {k: v["quantized"] for k, v in accuracy.items()},
               "conversion": {"parity": conversion.parity, "parity_min": conversion.parity_min,
                              "ops": (conversion.ops or {}).get("ops")}}
    if bits == 8:
        if sets:
            import tempfile

            from lcefr.embed import load_embedder

            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.int8.tflite")
                with open(path, "wb") as f:
                    f.write(tflite_bytes)
                embedder = load_embedder(path, threads=os.cpu_count() or 1)
                for name, vs in sets:
                    with click.progressbar(length=len(vs.images) * (1 if no_flip else 2), label=f"{name}: int8 tflite",
                                           file=stderr) as bar:
                        accuracy[name]["int8_tflite"] = verification_accuracy(embedder.run, vs, flip=not no_flip,
                                                                              progress=bar.update)

    report = {
        "teacher": teacher,
        "model": float_model.name,
        "bits": bits,
        "weights": f"per-channel symmetric, {2 ** bits - 1} levels",
        "activations": f"{2 ** bits} levels, ranges calibrated on {min(calibration_images, len(quant_data.images))} images, frozen",
        "loss": loss,
        "epochs": epochs,
        "images": int(len(quant_data.images)),
        "labelled": quant_data.labelled,
        "data": quant_data.source,
        "optimizer": "sgd(momentum=0.9), cosine",
        "lr": lr,
        "batch_size": batch_size,
        "seed": seed,
        "flip_test": not no_flip,
        **packed_size(student, bits),
        "tflite_int8_bytes": len(tflite_bytes),
        "tflite_int8_parity": conversion.parity,
        "accuracy": accuracy,
        "history": result.history,
        "seconds": result.seconds,
    }
    _write_outputs(out_dir, student, report, tflite_bytes, sidecar)
    if as_json:
        echo_json({**report, "out": out_dir})
        return
    click.echo(f"w{bits}a{bits}: {report['params']:,} params, {report['size_bytes_float'] / 1e6:.2f} MB float -> "
               f"{report['size_bytes_quantized'] / 1e6:.2f} MB packed"
               + f", int8 .tflite {len(tflite_bytes) / 1e6:.2f} MB"
               + ("" if bits == 8 else f" (container of the w{bits} grid, metadata lcefr.bits)"))
    if accuracy:
        rows = [[n, _pct(r["teacher"]), _pct(r["quantized"]), _pct(r.get("int8_tflite")), f"{100 * r['gap']:+.2f}"]
                for n, r in accuracy.items()]
        click.echo(format_table(["set", "teacher %", f"w{bits}a{bits} %", "int8 tflite %", "gap (pts)"], rows))
    click.echo(f"-> {out_dir}")


def _write_outputs(out_dir, student, report, tflite_bytes, sidecar):
    """Everything into a fresh temporary sibling folder first, then moved in: no half-written run."""
    import warnings

    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{os.path.basename(os.path.abspath(out_dir))}.tmp{os.getpid()}")
    os.makedirs(staging, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            student.save(os.path.join(staging, "quantized.keras"))
        with open(os.path.join(staging, "model.int8.tflite"), "wb") as f:
            f.write(tflite_bytes)
        with open(os.path.join(staging, "model.int8.json"), "w") as f:
            f.write(json.dumps(sidecar, indent=2) + "\n")
        with open(os.path.join(staging, "report.json"), "w") as f:
            f.write(json.dumps(report, indent=2) + "\n")
        os.makedirs(out_dir, exist_ok=True)
        names = ["quantized.keras", "model.int8.tflite", "model.int8.json", "report.json"]
        for name in names:
            target = os.path.join(out_dir, name)
            if os.path.exists(os.path.join(staging, name)):
                os.replace(os.path.join(staging, name), target)
            elif os.path.exists(target):
                os.remove(target)  # a stale 8-bit export from an earlier run in the same folder
    finally:
        shutil.rmtree(staging, ignore_errors=True)
