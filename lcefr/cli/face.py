"""``lcefr align``, ``verify`` and ``identify``: faces in photographs to decisions.

Photographs are detected with MTCNN (the ``detect`` extra) and aligned onto the ArcFace 112x112
template; an image that already is 112x112x3 is taken as an aligned face. Scores are cosines of
flip-fused, L2-normalised embeddings, computed exactly as in ``lcefr eval``.
"""
from __future__ import annotations

import click

from lcefr.cli._common import (Progress, cosine_threshold, db_option, echo_json, format_table, json_option,
                               min_face_option, no_align_option, threshold_options, with_options)

__all__ = ["align", "verify", "identify"]


@click.command("align")
@click.argument("in_dir", type=click.Path(file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--all", "all_faces", is_flag=True, help="Write every face as NAME_0, NAME_1, ... (largest first).")
@click.option("--max-residual", type=click.FloatRange(min=0.0, min_open=True), metavar="PX",
              help="Skip faces whose worst landmark stays more than PX pixels (of the 112x112 crop) from the "
                   "template after alignment: profiles, strong expressions, bad detections. Default: keep all.")
@min_face_option
@json_option
def align(in_dir, out_dir, all_faces, max_residual, min_face, as_json):
    """Detect and align every image under IN_DIR into 112x112 faces under OUT_DIR (same folder tree).

    One face per image: the largest, noted when there are several (--all writes them all). Images
    without a face and unreadable files are reported and skipped. Every output is written
    atomically; the file name and format follow the input.

    Each face's template fit is reported: the distance of each of its five aligned landmarks to the
    ArcFace template, in pixels of the crop. A similarity transform cannot remove head pose or
    expression, so frontal faces fit within a few pixels and turned heads by 10 or more.
    """
    from lcefr.face.folder import align_folder

    with Progress("aligning") as progress:
        report = align_folder(in_dir, out_dir, all_faces=all_faces, max_residual=max_residual, min_face=min_face,
                              progress=progress)
    if as_json:
        echo_json(report)
        return
    click.echo(f"aligned {report['aligned_images']}/{report['images']} images, {report['written']} faces -> {out_dir}")
    if report["faces"]:
        worst = max(report["faces"], key=lambda f: f["worst_residual_px"])
        fits = sorted(f["worst_residual_px"] for f in report["faces"])
        mid = len(fits) // 2
        median = fits[mid] if len(fits) % 2 else (fits[mid - 1] + fits[mid]) / 2
        click.echo(f"template fit (worst landmark per face): median {median:.1f} px, "
                   f"worst {worst['worst_residual_px']:.1f} px ({worst['output']})")
    for item in report["poor_fit"]:
        click.echo(f"poor fit, skipped: {item['output']}: a landmark {item['worst_residual_px']:.1f} px from the "
                   f"template (--max-residual {max_residual:g})")
    for item in report["several_faces"]:
        kept = "all written" if all_faces else "largest taken"
        click.echo(f"several faces: {item['image']}: {item['faces']} faces, {kept}")
    for rel in report["no_face"]:
        click.echo(f"no face: {rel}")
    for item in report["unreadable"]:
        click.echo(f"unreadable: {item['image']}: {item['reason']}")


@click.command("verify")
@click.argument("model")
@click.argument("image_a", type=click.Path(dir_okay=False))
@click.argument("image_b", type=click.Path(dir_okay=False))
@with_options(threshold_options)
@no_align_option
@min_face_option
@json_option
def verify(model, image_a, image_b, calibration, threshold, no_align, min_face, as_json):
    """Are IMAGE_A and IMAGE_B the same person? Cosine of flip-test embeddings of MODEL vs a threshold.

    MODEL is a Keras backbone file, a .tflite or a registry name. The largest face of each image
    is used. Without --calibration/--threshold the uncalibrated default cosine threshold
    (0.3) is used with a warning.
    """
    from lcefr.face.decide import embed_faces
    from lcefr.face.photos import FaceReader

    thr, thr_source = cosine_threshold(calibration, threshold)
    reader = FaceReader(no_align=no_align, min_face=min_face)
    face_a, info_a = reader.one(image_a)
    face_b, info_b = reader.one(image_b)
    emb = embed_faces(model, [face_a, face_b])
    score = float(emb[0] @ emb[1])
    same = score >= thr
    report = {"model": model, "same": bool(same), "score_cos": score, "distance_sqL2": 2.0 - 2.0 * score,
              "threshold_cos": thr, "threshold_from": thr_source, "image_a": info_a, "image_b": info_b}
    if as_json:
        echo_json(report)
        return
    for info in (info_a, info_b):
        if info["faces"] and info["faces"] > 1:
            click.echo(f"note: {info['image']}: {info['faces']} faces, the largest used")
    click.echo(f"{'same' if same else 'different'}: cosine {score:.4f} {'>=' if same else '<'} threshold {thr:.4f} ({thr_source})")


@click.command("identify")
@click.argument("model")
@click.argument("image", type=click.Path(dir_okay=False))
@db_option
@click.option("--top", default=5, show_default=True, type=click.IntRange(min=1), help="How many people to list.")
@with_options(threshold_options)
@no_align_option
@min_face_option
@json_option
def identify(model, image, db, top, calibration, threshold, no_align, min_face, as_json):
    """Who in the gallery is in IMAGE? People ranked by the cosine of their closest image.

    The best match is reported as the identity when its cosine reaches the threshold, else
    "unknown". MODEL must be the gallery's model.
    """
    from lcefr.face.decide import embed_faces
    from lcefr.face.gallery import Gallery, model_identity
    from lcefr.face.photos import FaceReader

    model_id = model_identity(model)
    with Gallery.open(db) as g:
        g.check_model(model_id)
    thr, thr_source = cosine_threshold(calibration, threshold)
    face, info = FaceReader(no_align=no_align, min_face=min_face).one(image)
    emb = embed_faces(model, [face])[0]
    with Gallery.open(db) as g:
        g.check_model(model_id, emb.shape[0])
        matches = g.identify(emb, top=top)
    best = matches[0] if matches and matches[0].score >= thr else None
    report = {"model": model, "db": db, "image": info, "identity": best.name if best else None,
              "threshold_cos": thr, "threshold_from": thr_source,
              "matches": [{"name": m.name, "score_cos": m.score, "images": m.images, "source": m.source} for m in matches]}
    if as_json:
        echo_json(report)
        return
    rows = [[i + 1, m.name, f"{m.score:.4f}", m.images, m.source] for i, m in enumerate(matches)]
    click.echo(format_table(["rank", "name", "cosine", "images", "closest image"], rows))
    click.echo(f"identity: {best.name if best else 'unknown'} (threshold {thr:.4f}, {thr_source})")
