"""``lcefr eval``: the insightface 10-fold verification protocol on ``.bin`` sets."""
from __future__ import annotations

import json
import os

import click

from lcefr.cli._common import CliError, echo_json, format_table, json_option, progressbar

FARS = {"1e-3": 1e-3, "1e-4": 1e-4}


def _pct(v):
    return "-" if v is None else f"{100 * v:.2f}"


@click.command("eval")
@click.argument("model")
@click.option("--bin", "bins", multiple=True, required=True, type=click.Path(),
              help="insightface .bin verification set (repeatable): lfw.bin, cfp_fp.bin, agedb_30.bin, ...")
@click.option("--roc", "roc_path", type=click.Path(dir_okay=False), help="Write a ROC plot (png/svg/pdf) of every set.")
@click.option("--calibration-out", type=click.Path(dir_okay=False),
              help="Write the decision threshold at --calibration-far on the first set, for `lcefr verify`.")
@click.option("--calibration-far", default=1e-3, show_default=True, help="FAR of the calibrated threshold.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--threads", default=1, show_default=True, help="Interpreter threads for .tflite models.")
@click.option("--no-flip", is_flag=True, help="Embed the image alone instead of image + mirror (flip-test).")
@json_option
def eval_(model, bins, roc_path, calibration_out, calibration_far, batch_size, threads, no_flip, as_json):
    """Verification accuracy of MODEL on .bin pair sets (LFW, CFP-FP, AgeDB-30, CALFW, CPLFW, ...).

    MODEL is a Keras backbone file, a .tflite (LCE, float or int8) or a registry name (random
    init). Protocol as insightface: flip-test embeddings (image + mirror, L2-normalised), squared-L2
    distance, ten contiguous folds, each fold's threshold chosen on the other nine; accuracy mean
    and std over folds. TAR at FAR 1e-3 and 1e-4 by the same folds, or '-' when the set has too few
    different-identity pairs to measure that FAR.
    """
    from lcefr.data.binset import read_bin
    from lcefr.embed import load_embedder
    from lcefr.eval.verification import evaluate, roc_points, tar_at_far

    missing = [b for b in bins if not os.path.isfile(b)]
    if missing:
        raise CliError(f"no such .bin file: {missing[0]}")
    for path in (roc_path, calibration_out):
        if path and os.path.isdir(path):
            raise CliError(f"{path} is a directory")
    if not 0 < calibration_far < 1:
        raise CliError(f"--calibration-far must be in (0, 1), got {calibration_far}")
    embedder = load_embedder(model, threads=threads, batch_size=batch_size)
    sets, curves, calibration = {}, {}, None
    for path in bins:
        name = os.path.splitext(os.path.basename(path))[0]
        with progressbar(length=1, label=f"{name}: reading") as bar:
            vs = read_bin(path)
            bar.update(1)
        passes = 1 if no_flip else 2
        with progressbar(length=passes * len(vs.images), label=f"{name}: embedding") as bar:
            emb = embedder.embed(vs.images, flip=not no_flip, progress=bar.update)
        _, _, accuracy, thresholds, _, _, _ = evaluate(emb, vs.issame)
        tars = {key: tar_at_far(emb, vs.issame, far) for key, far in FARS.items()}
        sets[name] = {
            "accuracy": float(accuracy.mean()),
            "accuracy_std": float(accuracy.std()),
            "threshold": float(thresholds.mean()),
            "tar_at_far": {key: t.value for key, t in tars.items()},
            "pairs": vs.pairs,
            "fold_accuracy": [float(a) for a in accuracy],
            "fold_thresholds": [float(t) for t in thresholds],
            "tar_notes": {key: t.reason for key, t in tars.items() if not t.resolvable},
        }
        if roc_path:
            curves[name] = roc_points(emb, vs.issame)
        if calibration_out and calibration is None:
            calibration = _calibrate(emb, vs.issame, calibration_far, path)
    if calibration_out:
        from lcefr.fileio import write_atomic

        write_atomic(calibration_out, (json.dumps(calibration, indent=2) + "\n").encode())
    if roc_path:
        from lcefr.eval.plots import plot_roc

        plot_roc(curves, roc_path, title=f"{embedder.name}: ROC (flip-test)" if not no_flip else f"{embedder.name}: ROC")
    report = {"model": model, "flip_test": not no_flip, "sets": sets}
    if as_json:
        echo_json(report)
        return
    rows = [[n, _pct(s["accuracy"]), _pct(s["accuracy_std"]), f"{s['threshold']:.2f}",
             _pct(s["tar_at_far"]["1e-3"]), _pct(s["tar_at_far"]["1e-4"]), s["pairs"]] for n, s in sets.items()]
    click.echo(format_table(["set", "acc %", "std %", "thr (sqL2)", "TAR@1e-3 %", "TAR@1e-4 %", "pairs"], rows))
    for n, s in sets.items():
        for key, note in s["tar_notes"].items():
            click.echo(f"note: {n}: TAR@FAR {key} not measurable: {note}")
    if calibration_out:
        click.echo(f"calibration: threshold {calibration['threshold_sqL2']:.4f} (cosine {calibration['threshold_cos']:.4f}) "
                   f"at FAR {calibration['far']:g} -> {calibration_out}")
    if roc_path:
        click.echo(f"ROC -> {roc_path}")


def _calibrate(emb, issame, far, path):
    """The threshold at ``far`` by the fold protocol (mean of the fold thresholds), with its accuracy on the set."""
    import numpy as np

    from lcefr.eval.verification import squared_l2_to_cosine, tar_at_far

    result = tar_at_far(emb, issame, far)
    if not result.resolvable:
        raise CliError(f"{path} cannot calibrate FAR {far:g}: {result.reason}; use a larger set or a higher --calibration-far")
    dist = np.sum((emb[0::2] - emb[1::2]) ** 2, axis=1)
    accuracy = float(np.mean((dist < result.threshold) == np.asarray(issame, bool)))
    return {
        "far": far,
        "threshold_sqL2": result.threshold,
        "threshold_cos": float(squared_l2_to_cosine(result.threshold)),
        "accuracy": accuracy,
        "bin": os.path.abspath(path),
        "tar": result.value,
        "far_measured": result.far,
    }
