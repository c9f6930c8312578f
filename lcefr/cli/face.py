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
    from lcefr.face.recognize import verify_pair

    threshold = cosine_threshold(calibration, threshold)
    report = verify_pair(model=model, image_a=image_a, image_b=image_b, threshold=threshold, no_align=no_align,
                         min_face=min_face)
    if as_json:
        echo_json(report)
        return
    for info in (report["image_a"], report["image_b"]):
        if info["faces"] and info["faces"] > 1:
            click.echo(f"note: {info['image']}: {info['faces']} faces, the largest used")
    same, thr = report["same"], report["threshold_cos"]
    click.echo(f"{'same' if same else 'different'}: cosine {report['score_cos']:.4f} {'>=' if same else '<'} "
               f"threshold {thr:.4f} ({report['threshold_from']})")


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
    from lcefr.face.recognize import check_gallery_model, identify_image

    check_gallery_model(model=model, db=db)
    threshold = cosine_threshold(calibration, threshold)
    report = identify_image(model=model, image=image, db=db, threshold=threshold, top=top, no_align=no_align,
                            min_face=min_face)
    if as_json:
        echo_json(report)
        return
    rows = [[i + 1, m["name"], f"{m['score_cos']:.4f}", m["images"], m["source"]] for i, m in enumerate(report["matches"])]
    click.echo(format_table(["rank", "name", "cosine", "images", "closest image"], rows))
    click.echo(f"identity: {report['identity'] or 'unknown'} (threshold {report['threshold_cos']:.4f}, "
               f"{report['threshold_from']})")
