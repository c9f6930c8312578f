"""The whole ``lcefr quantize`` run as one function: QAT -> evaluation -> int8 export -> re-evaluation -> outputs.

:func:`quantize_backbone` checks its input, trains the fake-quantized copy of the teacher
(:mod:`lcefr.quantize.qat`), evaluates teacher and student on every ``.bin`` set, exports the
int8 ``.tflite`` (checked like ``lcefr convert``), evaluates that file for 8 bits, and writes
``quantized.keras``, ``model.int8.tflite``, ``model.int8.json`` and ``report.json`` into one folder
all at once. It prints nothing: progress and status lines go to callbacks.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from typing import Callable, Dict, Optional, Sequence

from lcefr.convert.api import ConversionCheckError
from lcefr.data.binset import read_bin
from lcefr.embed import load_embedder
from lcefr.models import list_models
from lcefr.quantize.fakequant import SUPPORTED_BITS
from lcefr.quantize.qat import (export_int8, keras_runner, load_quant_data, load_teacher, packed_size,
                                quantization_aware_training, verification_accuracy)
from lcefr.vocab import QAT_LOSSES

__all__ = ["QuantizeError", "OUTPUT_FILES", "quantize_backbone", "write_outputs"]

#: The files of a run folder, in the order they are moved into place.
OUTPUT_FILES = ("quantized.keras", "model.int8.tflite", "model.int8.json", "report.json")

Progress = Callable[[str, int, int], None]


def _stage(progress: Progress, stage: str, total: int) -> Callable[[int], None]:
    """Report the start of ``stage`` and return an ``advance(n)`` callback that reports ``progress(stage, done, total)``."""
    progress(stage, 0, total)
    done = [0]

    def advance(n: int = 1) -> None:
        done[0] += n
        progress(stage, done[0], total)

    return advance


class QuantizeError(ValueError):
    """Input the quantize workflow cannot use, or an int8 export that failed its check; nothing was written."""


def _check(*, teacher, bits, data, out_dir, images, epochs, loss, batch_size, calibration_images, val_bins):
    if bits not in SUPPORTED_BITS:
        raise QuantizeError(f"--bits must be one of {', '.join(map(str, SUPPORTED_BITS))}, got {bits}")
    if loss not in QAT_LOSSES:
        raise QuantizeError(f"--loss must be one of {', '.join(QAT_LOSSES)}, got {loss!r}")
    if epochs < 0:
        raise QuantizeError(f"--epochs must be >= 0, got {epochs}")
    if batch_size < 2:
        raise QuantizeError(f"--batch-size must be >= 2, got {batch_size}")
    if images is not None and images < 2:
        raise QuantizeError(f"--images must be at least 2, got {images}")
    if calibration_images < 1:
        raise QuantizeError(f"--calibration-images must be >= 1, got {calibration_images}")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise QuantizeError(f"--out {out_dir} exists and is not a folder")
    missing = [b for b in val_bins if not os.path.isfile(b)]
    if missing:
        raise QuantizeError(f"--val-bin {missing[0]}: no such file")
    if data != "synthetic" and not os.path.isdir(data):
        raise QuantizeError(f"--data {data}: no such folder (give an image folder or 'synthetic')")
    if not os.path.exists(teacher) and teacher not in list_models():
        raise QuantizeError(f"--teacher {teacher}: no such file and not a registry model (see `lcefr models list`)")


def quantize_backbone(*, teacher: str, bits: int, data: str, out_dir: str, images: Optional[int] = None,
                      epochs: int = 1, loss: str = "ekd", batch_size: int = 16, lr: float = 1e-4,
                      calibration_images: int = 256, val_bins: Sequence[str] = (), flip: bool = True, seed: int = 0,
                      progress: Optional[Progress] = None, note: Optional[Callable[[str], None]] = None) -> Dict:
    """Quantize the float backbone ``teacher`` to w{bits}a{bits} with one short distillation run.

    Args:
        teacher: a float ``.keras`` file or a registry name. bits: 8, 6 or 4.
        data: an image folder (identity sub-folders give labels) or ``"synthetic"``.
        out_dir: the run folder; its four files are replaced together, a stale int8 export removed.
        images: a random subset of this many images. val_bins: ``.bin`` sets evaluated on the teacher,
            the student and (8 bits) the int8 ``.tflite``. flip: evaluate with the flip-test.
        progress: ``progress(stage, done, total)`` per stage (training, each evaluation, the export), first
            with 0 done.
        note: receives one status line (model, bits, data) before training.

    Returns:
        The report written to ``report.json`` (sizes, accuracy per set with the gap, history, seconds).

    Raises:
        QuantizeError: bad arguments or a failed int8 export check. ValueError / FileNotFoundError from
        reading the teacher or the data (e.g. a folder without images).
    """
    _check(teacher=teacher, bits=bits, data=data, out_dir=out_dir, images=images, epochs=epochs, loss=loss,
           batch_size=batch_size, calibration_images=calibration_images, val_bins=val_bins)
    progress = progress or (lambda stage, done, total: None)
    try:
        float_model = load_teacher(teacher, seed=seed)
    except (ValueError, FileNotFoundError) as err:
        raise QuantizeError(f"--teacher {teacher}: {err}") from None
    quant_data = load_quant_data(data, images=images, seed=seed)
    if loss == "ekd+ce" and not quant_data.labelled:
        raise QuantizeError("--loss ekd+ce needs labelled --data (one sub-folder per identity); this folder has none")
    sets = [(os.path.splitext(os.path.basename(p))[0], read_bin(p)) for p in val_bins]
    if note is not None:
        note(f"{float_model.name}: w{bits}a{bits}, {len(quant_data.images)} images "
             f"({'labelled' if quant_data.labelled else 'unlabelled'}), {epochs} epoch(s), loss {loss}")

    trained = _stage(progress, "quantization-aware training",
                     max(1, epochs * (len(quant_data.images) // batch_size) * batch_size))
    result = quantization_aware_training(
        float_model, quant_data, bits=bits, loss=loss, epochs=epochs, batch_size=batch_size, lr=lr,
        calibration_images=calibration_images, seed=seed, progress=trained)
    student = result.student

    def accuracy_of(run, vs, stage):
        return verification_accuracy(run, vs, flip=flip, progress=_stage(progress, stage, len(vs.images) * (2 if flip else 1)))

    accuracy = {}
    for name, vs in sets:
        row = {role: accuracy_of(keras_runner(model), vs, f"{name}: {role}")
               for role, model in (("teacher", float_model), ("quantized", student))}
        row["gap"] = row["teacher"] - row["quantized"]
        accuracy[name] = row

    n = min(calibration_images, len(quant_data.images))
    exported = _stage(progress, "int8 .tflite export", 1)
    try:
        tflite_bytes, conversion = export_int8(student, float_model, quant_data.images[:n], bits=bits)
    except ConversionCheckError as err:
        raise QuantizeError(f"int8 export failed its check, nothing written: {err}") from None
    exported(1)
    sidecar = {"file": "model.int8.tflite", "bits": bits, "container": "int8",
               "simulated_accuracy": {k: v["quantized"] for k, v in accuracy.items()},
               "conversion": {"parity": conversion.parity, "parity_min": conversion.parity_min,
                              "ops": (conversion.ops or {}).get("ops"), "float_islands": conversion.float_islands,
                              "xnnpack": conversion.xnnpack, "warnings": conversion.warnings}}
    for message in conversion.warnings if note is not None else ():
        note(f"int8 export: {message}")
    if bits == 8 and sets:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.int8.tflite")
            with open(path, "wb") as f:
                f.write(tflite_bytes)
            embedder = load_embedder(path, threads=os.cpu_count() or 1)
            for name, vs in sets:
                accuracy[name]["int8_tflite"] = accuracy_of(embedder.run, vs, f"{name}: int8 tflite")

    report = {
        "teacher": teacher,
        "model": float_model.name,
        "bits": bits,
        "weights": f"per-channel symmetric, {2 ** bits - 1} levels",
        "activations": f"{2 ** bits} levels, ranges calibrated on {n} images, frozen",
        "loss": loss,
        "epochs": epochs,
        "images": int(len(quant_data.images)),
        "labelled": quant_data.labelled,
        "data": quant_data.source,
        "optimizer": "sgd(momentum=0.9), cosine",
        "lr": lr,
        "batch_size": batch_size,
        "seed": seed,
        "flip_test": flip,
        **packed_size(student, bits),
        "tflite_int8_bytes": len(tflite_bytes),
        "tflite_int8_parity": conversion.parity,
        "tflite_int8_float_islands": conversion.float_islands,
        "tflite_int8_xnnpack": conversion.xnnpack,
        "accuracy": accuracy,
        "history": result.history,
        "seconds": result.seconds,
    }
    write_outputs(out_dir, student=student, report=report, tflite_bytes=tflite_bytes, sidecar=sidecar)
    return report


def write_outputs(out_dir: str, *, student, report: Dict, tflite_bytes: bytes, sidecar: Dict) -> None:
    """Everything into a fresh temporary sibling folder first, then moved in: no half-written run."""
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
        for name in OUTPUT_FILES:
            target = os.path.join(out_dir, name)
            if os.path.exists(os.path.join(staging, name)):
                os.replace(os.path.join(staging, name), target)
            elif os.path.exists(target):
                os.remove(target)  # a stale 8-bit export from an earlier run in the same folder
    finally:
        shutil.rmtree(staging, ignore_errors=True)
