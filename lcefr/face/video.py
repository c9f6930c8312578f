"""``lcefr run`` as a function: identify faces in a camera stream or video against a gallery."""
from __future__ import annotations

import os
import time
from typing import Callable, Dict, Optional

import numpy as np

from lcefr.embed import load_embedder
from lcefr.face.detect import MTCNNDetector
from lcefr.face.gallery import Gallery, model_identity
from lcefr.face.stream import FramePipeline, Matcher, VideoOut, annotate, count_names, open_video

__all__ = ["VIDEO_EXTENSIONS", "identify_stream"]

#: Containers ``--out`` may name.
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".avi", ".mkv", ".mov")
WINDOW = "lcefr run"


def _open_window(cv2) -> None:
    if os.name != "nt" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ValueError("--show needs a display (DISPLAY is not set); drop --show, or use --out annotated.mp4")
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error:
        raise ValueError("--show needs OpenCV with GUI support, the [gui] extra: `make install-gui` "
                         "(or pip install 'lcefr[gui]'); headless runs can write --out annotated.mp4") from None


def _check_out(out_video: Optional[str]) -> None:
    if not out_video:
        return
    if os.path.splitext(out_video)[1].lower() not in VIDEO_EXTENSIONS:
        raise ValueError(f"--out {out_video}: use a .mp4, .avi, .mkv or .mov file name")
    if not os.path.isdir(os.path.dirname(os.path.abspath(out_video))):
        raise ValueError(f"--out {out_video}: no such directory")


def identify_stream(model: str, db: str, source: str, *, threshold: float, threshold_from: str = "--threshold",
                    show: bool = False,
                    out_video: Optional[str] = None, all_faces: bool = False, max_frames: Optional[int] = None,
                    flip: bool = True, min_face: int = 20,
                    progress: Optional[Callable[[int, int], None]] = None) -> Dict:
    """Per frame: MTCNN detection, alignment, embedding with ``model`` (the gallery's) and matching
    against the gallery ``db``; boxes, names and a live FPS drawn on the frames for ``out_video``
    (written atomically at the end) and ``show`` (q quits). Ctrl-C ends the run early.

    Returns the report of ``lcefr run --json`` (``stages_ms``: milliseconds per frame of each stage);
    ``progress(frames, total)`` after each frame when the total is known.

    Raises:
        ValueError: an empty gallery, a model of another embedding size, a bad ``out_video`` or no
        display for ``show``; FileNotFoundError / RuntimeError: the source cannot be opened.
    """
    import cv2  # optional heavy import: OpenCV's video I/O

    with Gallery.open(db) as g:
        g.check_model(model_identity(model))
        matcher = Matcher.from_gallery(g)
    if not matcher.people:
        raise ValueError(f"gallery {db} has nobody enrolled; add people with `lcefr gallery add`")
    _check_out(out_video)
    try:
        capture = open_video(source)
    except RuntimeError as err:
        raise ValueError(str(err)) from None
    if show:
        _open_window(cv2)
    embedder = load_embedder(model)
    if embedder.embed(np.zeros((1, 112, 112, 3), np.uint8), flip=False).shape[1] != matcher.dim:
        raise ValueError(f"gallery {db} holds {matcher.dim}-d embeddings, {model} gives a different size")
    pipeline = FramePipeline(MTCNNDetector(min_face_size=min_face), lambda faces: embedder.embed(faces, flip=flip),
                             matcher, threshold=threshold, all_faces=all_faces)
    fps_in = capture.get(cv2.CAP_PROP_FPS) or 0.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if not source.isdigit() else 0
    total = min(total, max_frames) if max_frames and total else (max_frames or total)
    writer, per_frame, fps, frames, interrupted = None, [], None, 0, False
    started = time.perf_counter()
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
                    cv2.imshow(WINDOW, shown)
                    if cv2.waitKey(1) & 0xFF == ord("q"):
                        break
            if progress and total:
                progress(frames, total)
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        if writer is not None:
            writer.close(keep=False)
        raise
    finally:
        capture.release()
        if show:
            cv2.destroyAllWindows()
    elapsed = time.perf_counter() - started
    if writer is not None:
        writer.close()
    if frames == 0:
        raise ValueError(f"no frame could be read from {source}")
    names = count_names(per_frame)
    return {"model": model, "db": db, "source": source, "frames": frames, "interrupted": interrupted,
            "wall_s": elapsed, "fps": frames / elapsed if elapsed > 0 else None,
            "faces": sum(len(r) for r in per_frame), "frames_without_face": sum(1 for r in per_frame if not r),
            "frames_with_several_faces": pipeline.frames_with_several, "all_faces": all_faces,
            "threshold_cos": threshold, "threshold_from": threshold_from, "flip": flip, "min_face_px": min_face,
            "names": {("unknown" if k is None else k): v for k, v in sorted(names.items(), key=lambda kv: -kv[1])},
            "stages_ms": pipeline.times.summary(), "out": out_video if writer is not None else None,
            "out_frames": writer.frames if writer is not None else 0,
            "per_frame": [[r.name for r in rows] for rows in per_frame]}
