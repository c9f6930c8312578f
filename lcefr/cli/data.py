"""``lcefr data``: generated faces, verification ``.bin`` files, and a look inside any dataset."""
from __future__ import annotations

import os

import click

from lcefr.cli._common import CliError, Group, echo_json, format_table, json_option, progressbar


def _bar(length, label):
    return progressbar(length=length, label=label)


@click.group(cls=Group)
def data():
    """Generate, pack and inspect face datasets (image folders, RecordIO, .bin)."""


@data.command()
@click.option("--identities", type=click.IntRange(min=1), required=True, help="Number of people.")
@click.option("--per-identity", type=click.IntRange(min=1), required=True, help="Images per person.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Image folder to write.")
@click.option("--seed", default=0, show_default=True, help="Dataset seed: same seed, same files.")
@click.option("--format", "image_format", type=click.Choice(["png", "jpg"]), default="png", show_default=True)
@click.option("--first-identity", type=click.IntRange(min=0), default=0, show_default=True,
              help="Index of the first person: identities FIRST..FIRST+N-1, so two folders can hold disjoint people.")
@click.option("--lookalikes", is_flag=True,
              help="Identities 2m and 2m+1 are look-alikes (same colouring, hair, beard and glasses, another face "
                   "shape): training data with hard negatives.")
@json_option
def synth(identities, per_identity, out_dir, seed, image_format, first_identity, lookalikes, as_json):
    """Write generated aligned 112x112 faces as OUT/id_NNNNN/K.png.

    Procedural people (head shape, eyes, brows, nose, mouth, skin and hair) with per-image pose,
    scale, light, blur, noise, expression and occlusion; deterministic by --seed. A default
    dataset that runs anywhere, not a substitute for real faces.
    """
    from lcefr.data.synth import synth_dataset

    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise CliError(f"--out {out_dir} exists and is not a folder")
    total = identities * per_identity
    with _bar(total, "rendering") as bar:
        state = {"done": 0}

        def progress(done, _total):
            bar.update(done - state["done"])
            state["done"] = done

        ids = range(first_identity, first_identity + identities)
        summary = synth_dataset(out_dir, identities=ids, per_identity=per_identity, seed=seed,
                                image_format=image_format, progress=progress, lookalikes=lookalikes)
    if as_json:
        echo_json(summary)
    else:
        click.echo(f"{summary['images']} faces of {summary['identities']} identities -> {summary['out_dir']} "
                   f"({summary['bytes'] / 1e6:.1f} MB, {summary['seconds']:.1f} s)")


@data.command("make-bin")
@click.argument("source")
@click.option("--pairs", type=click.IntRange(min=2), default=6000, show_default=True, help="Pairs, half matched.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The .bin file to write.")
@click.option("--seed", default=0, show_default=True, help="Seed of the pair choice (and of the faces for 'synthetic').")
@click.option("--disjoint-from", type=click.Path(), help="Training image folder whose identities are left out.")
@click.option("--per-identity", default=10, show_default=True, help="'synthetic': images per generated person.")
@click.option("--negatives", type=click.Choice(["random", "lookalike"]), default="random", show_default=True,
              help="'synthetic': mismatched pairs of two random people, or of a person and a look-alike (same "
                   "colouring, hair, beard and glasses, another face shape: hard negatives as in CALFW/CPLFW).")
@click.option("--arrays", is_flag=True, help="Store elements as uint8 arrays (cv2.imencode style) instead of bytes.")
@json_option
def make_bin(source, pairs, out, seed, disjoint_from, per_identity, negatives, arrays, as_json):
    """Build a balanced verification .bin from SOURCE: an identity folder, or 'synthetic'.

    Pairs are ordered as LFW's pairs.txt (ten blocks of matched then mismatched pairs), so the
    protocol's ten folds are balanced. 'synthetic' renders held-out generated people, disjoint
    from any generated training set (`lcefr data synth`).
    """
    from lcefr.data.pairs import folder_bin, synthetic_bin

    if os.path.isdir(out):
        raise CliError(f"--out {out} is a directory")
    with _bar(2 * pairs, "packing") as bar:
        if source == "synthetic":
            if disjoint_from:
                raise CliError("--disjoint-from applies to folders; generated held-out people are always disjoint")
            summary = synthetic_bin(out, pairs=pairs, seed=seed, per_identity=per_identity, negatives=negatives,
                                    as_arrays=arrays, progress=bar.update)
        else:
            if negatives != "random":
                raise CliError("--negatives lookalike applies to 'synthetic' only (a folder has no look-alikes to draw)")
            if not os.path.isdir(source):
                raise CliError(f"SOURCE {source!r} is neither an image folder nor 'synthetic'")
            summary = folder_bin(source, out, pairs=pairs, seed=seed, disjoint_from=disjoint_from,
                                 as_arrays=arrays, progress=bar.update)
    if as_json:
        echo_json(summary)
    else:
        click.echo(f"{summary['pairs']} pairs ({summary['matched']} matched) from {summary['identities']} identities "
                   f"-> {summary['out']} ({summary['bytes'] / 1e6:.1f} MB)")


@data.command()
@click.argument("path", type=click.Path())
@json_option
def info(path, as_json):
    """Describe PATH: a .bin set, an insightface RecordIO folder/prefix, or an identity folder."""
    info = _describe(path)
    if as_json:
        echo_json(info)
    else:
        click.echo(format_table(["field", "value"], [[k, v] for k, v in info.items()]))


def _describe(path):
    from lcefr.data.recordio import RecordIOReader

    if path.endswith(".bin"):
        from lcefr.data.binset import read_bin

        vs = read_bin(path)
        return {"path": path, "kind": "bin", "pairs": vs.pairs, "matched": int(vs.issame.sum()), "images": len(vs.images)}
    rec_like = path.endswith((".rec", ".idx")) or os.path.exists(path + ".rec") or (
        os.path.isdir(path) and os.path.exists(os.path.join(path, "train.rec")))
    if rec_like:
        with RecordIOReader(path) as reader:
            return {"path": path, "kind": "recordio", "images": len(reader), "classes": reader.num_classes,
                    "image_size": list(reader.image_size),
                    "identity_records": len(reader.identity_ranges or [])}
    if os.path.isdir(path):
        from lcefr.data.folder import scan_image_folder

        folder = scan_image_folder(path)
        counts = [int((folder.labels == c).sum()) for c in range(folder.num_classes)]
        return {"path": path, "kind": "image_folder", "identities": folder.num_classes, "images": len(folder),
                "min_per_identity": min(counts), "max_per_identity": max(counts)}
    raise FileNotFoundError(f"{path}: not a .bin, a RecordIO dataset or an image folder")
