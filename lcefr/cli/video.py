"""``lcefr run``: identify faces in a camera stream or video against a gallery, frame by frame."""
from __future__ import annotations

import click

from lcefr.cli._common import (Progress, cosine_threshold, db_option, echo_json, format_table, json_option,
                               min_face_option, threshold_options, with_options)

__all__ = ["run"]


@click.command("run")
@click.argument("model")
@db_option
@click.option("--source", required=True, help="Camera index (0, 1, ...) or a video file.")
@click.option("--show", is_flag=True, help="Show the annotated frames in a window (needs the [gui] extra); q quits.")
@click.option("--out", "out_video", type=click.Path(dir_okay=False),
              help="Write the annotated video here (.mp4, .avi, .mkv, .mov); written atomically at the end.")
@click.option("--all", "all_faces", is_flag=True, help="Identify every face in a frame (default: the largest).")
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after this many frames (a camera runs until q or Ctrl-C).")
@click.option("--no-flip", is_flag=True, help="One embedding pass per face instead of the flip-test's two (faster).")
@min_face_option
@with_options(threshold_options)
@json_option
def run(model, db, source, show, out_video, all_faces, max_frames, no_flip, min_face, calibration, threshold, as_json):
    """Identify faces in a camera stream or video against a gallery, frame by frame.

    Per frame: MTCNN detection, alignment to the 112x112 template, embedding with MODEL (the
    gallery's model) and matching against the gallery. Boxes, names with their cosine and a
    live FPS counter are drawn on the frames (--out, --show). At the end a table gives the
    milliseconds per frame of each stage: detect, align, embed, match.
    """
    from lcefr.face.recognize import check_gallery_model
    from lcefr.face.stream import STAGES
    from lcefr.face.video import identify_stream

    check_gallery_model(model=model, db=db)  # a wrong gallery or model fails before the threshold warning
    thr, thr_source = cosine_threshold(calibration, threshold)
    with Progress("frames") as progress:
        report = identify_stream(model, db, source, threshold=thr, threshold_from=thr_source, show=show,
                                 out_video=out_video, all_faces=all_faces, max_frames=max_frames, flip=not no_flip,
                                 min_face=min_face, progress=progress)
    if as_json:
        echo_json(report)
        return
    summary = report["stages_ms"]
    rows = [[stage, f"{summary[stage]['mean_ms']:.1f}", f"{summary[stage]['median_ms']:.1f}",
             f"{summary[stage]['p90_ms']:.1f}", f"{summary[stage]['max_ms']:.1f}"] for stage in STAGES + ("total",)]
    click.echo(format_table(["stage", "mean ms", "median ms", "p90 ms", "max ms"], rows))
    click.echo(f"{report['frames']} frames in {report['wall_s']:.1f} s ({report['fps']:.2f} FPS end to end), "
               f"{report['faces']} faces, {report['frames_without_face']} frames without a face")
    if report["frames_with_several_faces"] and not all_faces:
        click.echo(f"note: {report['frames_with_several_faces']} frames had several faces; the largest was "
                   "identified (--all for every face)")
    click.echo("names: " + ", ".join(f"{k} x{v}" for k, v in report["names"].items()))
    if report["out"]:
        click.echo(f"annotated video: {report['out']} ({report['out_frames']} frames)")
