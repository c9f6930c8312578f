"""``lcefr align``, ``verify``, ``gallery add|list|remove`` and ``identify``: faces in photographs to decisions.

Photographs are detected with MTCNN (the ``detect`` extra) and aligned onto the ArcFace 112x112
template; an image that already is 112x112x3 is taken as an aligned face. Scores are cosines of
flip-fused, L2-normalised embeddings, computed exactly as in ``lcefr eval``.
"""
from __future__ import annotations

import json
import os
import time

import click

from lcefr.cli._common import CliError, echo_json, format_table, json_option
from lcefr.vocab import IMAGE_EXTENSIONS

__all__ = ["align", "verify", "gallery", "identify", "run", "DEFAULT_THRESHOLD_COS"]

#: Cosine threshold used when neither --calibration nor --threshold is given. Uncalibrated: a
#: common operating point of ArcFace-trained models, but binarized models differ; calibrate with
#: ``lcefr eval MODEL --bin lfw.bin --calibration-out cal.json``.
DEFAULT_THRESHOLD_COS = 0.3

def _detector(min_face: int):
    from lcefr.face.detect import DetectorUnavailableError, MTCNNDetector

    try:
        return MTCNNDetector(min_face_size=min_face)
    except DetectorUnavailableError as err:
        raise CliError(str(err)) from None


min_face_option = click.option(
    "--min-face", type=click.IntRange(min=12), default=20, show_default=True, metavar="PX",
    help="Smallest face to find, in pixels. Larger values shrink the image before detection (faster when "
         "faces are large, e.g. 60 for a webcam at arm's length).")


class _Faces:
    """Reads images and returns aligned faces, creating the detector only when one is needed."""

    def __init__(self, *, min_face: int, no_align: bool = False):
        self.no_align = no_align
        self.min_face = min_face
        self._det = None

    def detector(self):
        if self._det is None:
            self._det = _detector(self.min_face)
        return self._det

    def one(self, path: str):
        """(aligned face, info) of the largest face in ``path``; CliError when there is none."""
        from lcefr.data.images import is_aligned_face, read_image
        from lcefr.face.align import align_face

        image = read_image(path)
        if is_aligned_face(image):
            return image, {"image": path, "aligned": "input is 112x112", "faces": None}
        if self.no_align:
            raise CliError(f"{path} is {image.shape[1]}x{image.shape[0]}; --no-align needs aligned 112x112 faces")
        faces = self.detector().detect(image)
        if not faces:
            raise CliError(f"no face found in {path}")
        face = faces[0]
        info = {"image": path, "aligned": "detected", "faces": len(faces),
                "box": [round(float(v), 1) for v in face.box], "score": round(face.score, 4)}
        return align_face(image, face.landmarks), info


def _threshold(calibration, threshold):
    """(cosine threshold, where it came from)."""
    if calibration and threshold is not None:
        raise CliError("give either --calibration or --threshold, not both")
    if threshold is not None:
        if not -1.0 <= threshold <= 1.0:
            raise CliError(f"--threshold is a cosine in [-1, 1], got {threshold}")
        return float(threshold), "--threshold"
    if calibration:
        try:
            with open(calibration) as f:
                value = json.load(f)["threshold_cos"]
        except FileNotFoundError:
            raise CliError(f"no such calibration file: {calibration}") from None
        except (ValueError, KeyError, TypeError):
            raise CliError(f"{calibration} is not a calibration file from `lcefr eval --calibration-out` "
                           "(needs a numeric threshold_cos)") from None
        if not isinstance(value, (int, float)):
            raise CliError(f"{calibration}: threshold_cos is not a number")
        return float(value), calibration
    click.echo(f"warning: no --calibration or --threshold; using the uncalibrated default cosine threshold "
               f"{DEFAULT_THRESHOLD_COS} (calibrate with `lcefr eval MODEL --bin SET.bin --calibration-out F.json`)",
               err=True)
    return DEFAULT_THRESHOLD_COS, "default"


def _embed(model: str, faces):
    import numpy as np

    from lcefr.embed import load_embedder

    embedder = load_embedder(model)
    return embedder.embed(np.stack(faces), flip=True)


threshold_options = [
    click.option("--calibration", type=click.Path(dir_okay=False),
                 help="JSON from `lcefr eval --calibration-out`; its threshold_cos decides."),
    click.option("--threshold", type=float, help=f"Cosine threshold (default {DEFAULT_THRESHOLD_COS}, uncalibrated)."),
]
no_align_option = click.option("--no-align", is_flag=True, help="Images are aligned 112x112 faces; never detect.")


def _apply(options):
    def deco(f):
        for option in reversed(options):
            f = option(f)
        return f
    return deco


# -- align --------------------------------------------------------------------------------------
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
    import cv2
    import numpy as np

    from lcefr.data.images import read_image
    from lcefr.face.align import align_face, template_residual
    from lcefr.fileio import write_atomic

    if not os.path.isdir(in_dir):
        raise CliError(f"no such directory: {in_dir}")
    src, dst = os.path.realpath(in_dir), os.path.realpath(out_dir)
    if dst == src or dst.startswith(src + os.sep):
        raise CliError(f"OUT_DIR {out_dir} must not be inside IN_DIR {in_dir}")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise CliError(f"{out_dir} is not a directory")
    paths = []
    for root, dirs, files in os.walk(in_dir):
        dirs.sort()
        paths += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
    faces_of = _Faces(min_face=min_face)
    report = {"in_dir": in_dir, "out_dir": out_dir, "images": len(paths), "written": 0, "aligned_images": 0,
              "no_face": [], "several_faces": [], "unreadable": [], "max_residual_px": max_residual, "min_face_px": min_face,
              "faces": [], "poor_fit": []}
    with click.progressbar(paths, label="aligning", file=click.get_text_stream("stderr")) as bar:
        for path in bar:
            rel = os.path.relpath(path, in_dir)
            try:
                image = read_image(path)
            except (ValueError, OSError) as err:
                report["unreadable"].append({"image": rel, "reason": str(err)})
                continue
            faces = faces_of.detector().detect(image)
            if not faces:
                report["no_face"].append(rel)
                continue
            stem, ext = os.path.splitext(os.path.join(out_dir, rel))
            chosen = faces if all_faces else faces[:1]
            written = 0
            for i, face in enumerate(chosen):
                out = f"{stem}_{i}{ext}" if all_faces else f"{stem}{ext}"
                residual = template_residual(face.landmarks)
                fit = {"image": rel, "output": os.path.relpath(out, out_dir), "score": round(face.score, 4),
                       "residual_px": [round(float(r), 2) for r in residual],
                       "worst_residual_px": round(float(residual.max()), 2)}
                if max_residual is not None and residual.max() > max_residual:
                    report["poor_fit"].append(fit)
                    continue
                ok, buf = cv2.imencode(ext, align_face(image, face.landmarks)[:, :, ::-1].copy())
                if not ok:
                    raise CliError(f"cannot encode {out}")
                write_atomic(out, buf.tobytes())
                report["faces"].append(fit)
                written += 1
            if len(faces) > 1:
                report["several_faces"].append({"image": rel, "faces": len(faces), "written": written})
            report["written"] += written
            report["aligned_images"] += bool(written)
    if as_json:
        echo_json(report)
        return
    click.echo(f"aligned {report['aligned_images']}/{report['images']} images, {report['written']} faces -> {out_dir}")
    if report["faces"]:
        worst = max(report["faces"], key=lambda f: f["worst_residual_px"])
        median = float(np.median([f["worst_residual_px"] for f in report["faces"]]))
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


# -- verify -------------------------------------------------------------------------------------
@click.command("verify")
@click.argument("model")
@click.argument("image_a", type=click.Path(dir_okay=False))
@click.argument("image_b", type=click.Path(dir_okay=False))
@_apply(threshold_options)
@no_align_option
@min_face_option
@json_option
def verify(model, image_a, image_b, calibration, threshold, no_align, min_face, as_json):
    """Are IMAGE_A and IMAGE_B the same person? Cosine of flip-test embeddings of MODEL vs a threshold.

    MODEL is a Keras backbone file, a .tflite or a registry name. The largest face of each image
    is used. Without --calibration/--threshold the uncalibrated default cosine threshold
    (0.3) is used with a warning.
    """
    thr, thr_source = _threshold(calibration, threshold)
    reader = _Faces(no_align=no_align, min_face=min_face)
    face_a, info_a = reader.one(image_a)
    face_b, info_b = reader.one(image_b)
    emb = _embed(model, [face_a, face_b])
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


# -- gallery ------------------------------------------------------------------------------------
db_option = click.option("--db", required=True, type=click.Path(dir_okay=False), help="Gallery SQLite file.")


@click.group("gallery")
def gallery():
    """A gallery of enrolled people in one SQLite file, pinned to the model that embedded them."""


@gallery.command("add")
@db_option
@click.argument("name")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--model", help="Model (file or registry name). Required for the first add; later adds reuse "
                              "the gallery's model and refuse a different one.")
@no_align_option
@min_face_option
@json_option
def gallery_add(db, name, images, model, no_align, min_face, as_json):
    """Enrol IMAGES of person NAME (one transaction: all images or none)."""
    from lcefr.face.gallery import Gallery, model_identity

    if not name.strip():
        raise CliError("NAME must not be empty")
    meta = {}
    if os.path.exists(db):
        with Gallery.open(db) as g:
            meta = g.meta()
    if not meta and not model:
        raise CliError(f"{db} is a new gallery: the first `gallery add` needs --model MODEL")
    model = model or meta["model"]
    model_id = model_identity(model)
    if meta:
        with Gallery.open(db) as g:
            g.check_model(model_id)
    reader = _Faces(no_align=no_align, min_face=min_face)
    faces, infos = zip(*[reader.one(p) for p in images])
    emb = _embed(model, list(faces))
    recorded = os.path.abspath(model) if os.path.exists(model) else model
    with Gallery.open_or_create(db) as g:
        n = g.add(name, list(images), emb, model_id=model_id, model=recorded)
        people = g.people()
    report = {"db": db, "name": name.strip(), "added": n, "people": len(people),
              "embeddings": sum(c for _, c in people), "model_id": model_id, "images": list(infos)}
    if as_json:
        echo_json(report)
        return
    click.echo(f"added {n} image(s) of {name.strip()} to {db} ({report['people']} people, {report['embeddings']} embeddings)")


@gallery.command("list")
@db_option
@json_option
def gallery_list(db, as_json):
    """People in the gallery and how many images each."""
    from lcefr.face.gallery import Gallery

    with Gallery.open(db) as g:
        people, meta = g.people(), g.meta()
    if as_json:
        echo_json({"db": db, "model": meta.get("model"), "model_id": meta.get("model_id"),
                   "embedding_size": int(meta["embedding_size"]) if meta else None,
                   "people": [{"name": n, "images": c} for n, c in people]})
        return
    click.echo(f"model: {meta.get('model', '-')} ({meta.get('model_id', 'empty gallery')})")
    click.echo(format_table(["name", "images"], people))


@gallery.command("remove")
@db_option
@click.argument("name")
@json_option
def gallery_remove(db, name, as_json):
    """Remove every image of person NAME."""
    from lcefr.face.gallery import Gallery

    with Gallery.open(db) as g:
        if name not in dict(g.people()):
            raise CliError(f"no person {name!r} in {db}")
        n = g.remove(name)
    if as_json:
        echo_json({"db": db, "name": name, "removed": n})
        return
    click.echo(f"removed {name} ({n} image(s)) from {db}")


# -- identify -----------------------------------------------------------------------------------
@click.command("identify")
@click.argument("model")
@click.argument("image", type=click.Path(dir_okay=False))
@db_option
@click.option("--top", default=5, show_default=True, type=click.IntRange(min=1), help="How many people to list.")
@_apply(threshold_options)
@no_align_option
@min_face_option
@json_option
def identify(model, image, db, top, calibration, threshold, no_align, min_face, as_json):
    """Who in the gallery is in IMAGE? People ranked by the cosine of their closest image.

    The best match is reported as the identity when its cosine reaches the threshold, else
    "unknown". MODEL must be the gallery's model.
    """
    from lcefr.face.gallery import Gallery, model_identity

    model_id = model_identity(model)
    with Gallery.open(db) as g:
        g.check_model(model_id)
    thr, thr_source = _threshold(calibration, threshold)
    face, info = _Faces(no_align=no_align, min_face=min_face).one(image)
    emb = _embed(model, [face])[0]
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


# -- run ----------------------------------------------------------------------------------------
def _open_window(name: str) -> None:
    import cv2

    if os.name != "nt" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise CliError("--show needs a display (DISPLAY is not set); drop --show, or use --out annotated.mp4")
    try:
        cv2.namedWindow(name, cv2.WINDOW_NORMAL)
    except cv2.error:
        raise CliError("--show needs OpenCV with GUI support, the [gui] extra: `make install-gui` "
                       "(or pip install 'lcefr[gui]'); headless runs can write --out annotated.mp4") from None


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
@_apply(threshold_options)
@json_option
def run(model, db, source, show, out_video, all_faces, max_frames, no_flip, min_face, calibration, threshold, as_json):
    """Identify faces in a camera stream or video against a gallery, frame by frame.

    Per frame: MTCNN detection, alignment to the 112x112 template, embedding with MODEL (the
    gallery's model) and matching against the gallery. Boxes, names with their cosine and a
    live FPS counter are drawn on the frames (--out, --show). At the end a table gives the
    milliseconds per frame of each stage: detect, align, embed, match.
    """
    import cv2
    import numpy as np

    from lcefr.embed import load_embedder
    from lcefr.face.gallery import Gallery, model_identity
    from lcefr.face.stream import FramePipeline, Matcher, STAGES, VideoOut, annotate, count_names, open_video

    model_id = model_identity(model)
    with Gallery.open(db) as g:
        g.check_model(model_id)
        matcher = Matcher.from_gallery(g)
    if not matcher.people:
        raise CliError(f"gallery {db} has nobody enrolled; add people with `lcefr gallery add`")
    thr, thr_source = _threshold(calibration, threshold)
    if out_video:
        ext = os.path.splitext(out_video)[1].lower()
        if ext not in (".mp4", ".m4v", ".avi", ".mkv", ".mov"):
            raise CliError(f"--out {out_video}: use a .mp4, .avi, .mkv or .mov file name")
        if not os.path.isdir(os.path.dirname(os.path.abspath(out_video))):
            raise CliError(f"--out {out_video}: no such directory")
    try:
        capture = open_video(source)
    except (FileNotFoundError, RuntimeError) as err:
        raise CliError(str(err)) from None
    window = "lcefr run"
    if show:
        _open_window(window)
    embedder = load_embedder(model)
    if embedder.embed(np.zeros((1, 112, 112, 3), np.uint8), flip=False).shape[1] != matcher.dim:
        raise CliError(f"gallery {db} holds {matcher.dim}-d embeddings, {model} gives a different size")
    pipeline = FramePipeline(_detector(min_face), lambda faces: embedder.embed(faces, flip=not no_flip), matcher,
                             threshold=thr, all_faces=all_faces)
    fps_in = capture.get(cv2.CAP_PROP_FPS) or 0.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if not source.isdigit() else 0
    total = min(total, max_frames) if max_frames and total else (max_frames or total)
    writer, per_frame, fps, frames = None, [], None, 0
    started = time.perf_counter()
    bar = click.progressbar(length=total, label="frames", file=click.get_text_stream("stderr")) if total else None
    interrupted = False
    try:
        while max_frames is None or frames < max_frames:
            tick = time.perf_counter()
            ok, frame_bgr = capture.read()
            if not ok:
                break
            rows = pipeline.process(np.ascontiguousarray(frame_bgr[:, :, ::-1]))
            per_frame.append(rows)
            frames += 1
            spent = time.perf_counter() - tick
            fps = 1.0 / spent if fps is None else 0.9 * fps + 0.1 / spent
            if out_video or show:
                shown = annotate(frame_bgr, rows, fps=fps)
                if out_video:
                    if writer is None:
                        writer = VideoOut(out_video, fps=fps_in if fps_in > 0 else 10.0,
                                          size=(shown.shape[1], shown.shape[0]))
                    writer.write(shown)
                if show:
                    cv2.imshow(window, shown)
                    if cv2.waitKey(1) & 0xFF == ord("q"):
                        break
            if bar is not None:
                bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        if writer is not None:
            writer.close(keep=False)
        raise
    finally:
        capture.release()
        if bar is not None:
            bar.render_finish()
        if show:
            cv2.destroyAllWindows()
    elapsed = time.perf_counter() - started
    if writer is not None:
        writer.close()
    if frames == 0:
        raise CliError(f"no frame could be read from {source}")
    summary = pipeline.times.summary()
    names = count_names(per_frame)
    report = {"model": model, "db": db, "source": source, "frames": frames, "interrupted": interrupted,
              "wall_s": elapsed, "fps": frames / elapsed if elapsed > 0 else None,
              "faces": sum(len(r) for r in per_frame), "frames_without_face": sum(1 for r in per_frame if not r),
              "frames_with_several_faces": pipeline.frames_with_several, "all_faces": all_faces,
              "threshold_cos": thr, "threshold_from": thr_source, "flip": not no_flip, "min_face_px": min_face,
              "names": {("unknown" if k is None else k): v for k, v in sorted(names.items(), key=lambda kv: -kv[1])},
              "stages_ms": summary, "out": out_video if writer is not None else None,
              "per_frame": [[r.name for r in rows] for rows in per_frame]}
    if as_json:
        echo_json(report)
        return
    rows = [[stage, f"{summary[stage]['mean_ms']:.1f}", f"{summary[stage]['median_ms']:.1f}",
             f"{summary[stage]['p90_ms']:.1f}", f"{summary[stage]['max_ms']:.1f}"] for stage in STAGES + ("total",)]
    click.echo(format_table(["stage", "mean ms", "median ms", "p90 ms", "max ms"], rows))
    click.echo(f"{frames} frames in {elapsed:.1f} s ({report['fps']:.2f} FPS end to end), {report['faces']} faces, "
               f"{report['frames_without_face']} frames without a face")
    if pipeline.frames_with_several and not all_faces:
        click.echo(f"note: {pipeline.frames_with_several} frames had several faces; the largest was identified (--all for every face)")
    click.echo("names: " + ", ".join(f"{k} x{v}" for k, v in report["names"].items()))
    if writer is not None:
        click.echo(f"annotated video: {out_video} ({writer.frames} frames)")
