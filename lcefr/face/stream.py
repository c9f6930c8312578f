"""Face identification on a stream of frames: detect, align, embed, match, annotate, and time each stage.

``lcefr run`` drives this over a camera or a video file. The pipeline is pure per frame
(:meth:`FramePipeline.process` takes an RGB frame and returns :class:`Recognition` rows), so it
is tested on generated frames without a camera; :func:`open_video` and :class:`VideoOut` are
the only parts that touch devices and files.
"""
from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from lcefr.data.synth import image_rng, identity_rng, render_face, synth_identity
from lcefr.face.align import align_face
from lcefr.runtime import latency_stats

__all__ = ["STAGES", "Recognition", "StageTimes", "Matcher", "FramePipeline", "annotate", "open_video",
           "VideoOut", "synthetic_video", "count_names"]

#: Stages timed per frame, in pipeline order.
STAGES = ("detect", "align", "embed", "match")


@dataclass(frozen=True)
class Recognition:
    """One face in a frame: its box (x1, y1, x2, y2), detector score, best gallery name and cosine.

    ``name`` is None when the best cosine is below the threshold (an unknown person).
    """

    box: Tuple[float, float, float, float]
    detection_score: float
    name: Optional[str]
    best: Optional[str]
    score: float


@dataclass
class StageTimes:
    """Milliseconds per stage and frame; a stage with no face to work on counts as 0 ms."""

    samples: Dict[str, List[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, stage: str, seconds: float) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
        self.samples[stage].append(1000.0 * seconds)

    @property
    def frames(self) -> int:
        return len(self.samples.get(STAGES[0], []))

    def summary(self) -> Dict[str, Dict[str, float]]:
        """Per stage (and ``total``): mean, median, p90 and max milliseconds per frame."""
        rows = {}
        columns = [np.asarray(self.samples.get(s, []), np.float64) for s in STAGES]
        n = min((len(c) for c in columns), default=0)
        for stage, values in zip(STAGES + ("total",), columns + [sum(c[:n] for c in columns) if n else np.zeros(0)]):
            if len(values) == 0:
                rows[stage] = {"mean_ms": float("nan"), "median_ms": float("nan"), "p90_ms": float("nan"),
                               "max_ms": float("nan")}
                continue
            stats = latency_stats(values)
            rows[stage] = {"mean_ms": stats["mean"], "median_ms": stats["median"], "p90_ms": stats["p90"],
                           "max_ms": round(float(values.max()), 4)}
        return rows


class Matcher:
    """Best gallery person per query embedding: the max cosine over each person's enrolled embeddings."""

    def __init__(self, names: Sequence[str], matrix: np.ndarray):
        matrix = np.asarray(matrix, np.float32)
        if matrix.ndim != 2 or len(names) != len(matrix):
            raise ValueError(f"Expected one embedding per name, got {len(names)} names and matrix {matrix.shape}")
        self.people = sorted(set(names))
        index = {n: i for i, n in enumerate(self.people)}
        self._owner = np.array([index[n] for n in names], np.int64)
        self._matrix = matrix

    @classmethod
    def from_gallery(cls, gallery) -> "Matcher":
        names, _, matrix = gallery.embeddings()
        return cls(names, matrix)

    @property
    def dim(self) -> int:
        return int(self._matrix.shape[1])

    def best(self, queries: np.ndarray) -> List[Tuple[Optional[str], float]]:
        """(name, cosine) of the closest person for each L2-normalised row of ``queries``."""
        q = np.asarray(queries, np.float32).reshape(len(queries), -1)
        if not len(self._matrix):
            return [(None, float("-inf")) for _ in range(len(q))]
        if q.shape[1] != self._matrix.shape[1]:
            raise ValueError(f"queries have {q.shape[1]} dimensions, the gallery {self._matrix.shape[1]}")
        scores = q @ self._matrix.T
        per_person = np.full((len(q), len(self.people)), -np.inf, np.float32)
        for j in range(len(self.people)):
            per_person[:, j] = scores[:, self._owner == j].max(axis=1)
        top = per_person.argmax(axis=1)
        return [(self.people[t], float(per_person[i, t])) for i, t in enumerate(top)]


class FramePipeline:
    """detect -> align -> embed -> match for one RGB frame, timing each stage into ``times``.

    Args:
        detector: a :class:`lcefr.face.detect.Detector` (faces largest first).
        embed: maps (N, 112, 112, 3) uint8 aligned faces to L2-normalised embeddings.
        matcher: the gallery.
        threshold: cosine at or above which the best person is named.
        all_faces: every detected face; else only the largest.
    """

    def __init__(self, detector, embed: Callable[[np.ndarray], np.ndarray], matcher: Matcher, *,
                 threshold: float, all_faces: bool = False):
        self.detector = detector
        self.embed = embed
        self.matcher = matcher
        self.threshold = float(threshold)
        self.all_faces = all_faces
        self.times = StageTimes()
        self.frames_with_several = 0

    def process(self, frame_rgb: np.ndarray) -> List[Recognition]:
        clock = time.perf_counter
        t0 = clock()
        faces = self.detector.detect(frame_rgb)
        t1 = clock()
        if len(faces) > 1:
            self.frames_with_several += 1
        faces = faces if self.all_faces else faces[:1]
        aligned = [align_face(frame_rgb, f.landmarks) for f in faces]
        t2 = clock()
        emb = self.embed(np.stack(aligned)) if aligned else np.zeros((0, self.matcher.dim), np.float32)
        t3 = clock()
        best = self.matcher.best(emb) if aligned else []
        t4 = clock()
        for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            self.times.add(stage, seconds)
        return [Recognition(box=tuple(float(v) for v in f.box), detection_score=float(f.score),
                            name=name if score >= self.threshold else None, best=name, score=score)
                for f, (name, score) in zip(faces, best)]


def annotate(frame_bgr: np.ndarray, recognitions: Sequence[Recognition], *, fps: Optional[float] = None) -> np.ndarray:
    """A copy of the BGR frame with a box and "name cosine" per face and an FPS counter."""
    import cv2

    out = frame_bgr.copy()
    scale = max(0.4, out.shape[0] / 600.0)
    for r in recognitions:
        x1, y1, x2, y2 = (int(round(v)) for v in r.box)
        color = (60, 200, 60) if r.name else (40, 40, 230)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, max(1, int(2 * scale)))
        label = f"{r.name or 'unknown'} {r.score:.2f}"
        (w, h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, 1)
        top = max(0, y1 - h - base - 4)
        cv2.rectangle(out, (x1, top), (x1 + w + 4, top + h + base + 4), color, -1)
        cv2.putText(out, label, (x1 + 2, top + h + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    if fps is not None:
        cv2.putText(out, f"{fps:.1f} FPS", (8, int(22 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale,
                    (0, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
    return out


def open_video(source: str):
    """An opened ``cv2.VideoCapture`` for a camera index ("0") or a video file.

    Raises:
        FileNotFoundError: no such video file. RuntimeError: the camera or file cannot be opened.
    """
    import cv2

    if source.isdigit():
        capture = cv2.VideoCapture(int(source))
        if not capture.isOpened():
            capture.release()
            raise RuntimeError(f"camera {source} is not available (no such device, or it is busy)")
        return capture
    if not os.path.isfile(source):
        raise FileNotFoundError(f"no such video file: {source}")
    capture = cv2.VideoCapture(source)
    ok = capture.isOpened()
    if ok:
        ok, _ = capture.read()
        capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    if not ok:
        capture.release()
        raise RuntimeError(f"cannot read video {source}: not a decodable video file")
    return capture


_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".avi": "MJPG", ".mkv": "MJPG", ".mov": "mp4v"}


class VideoOut:
    """Writes frames to a temporary file renamed onto ``path`` by :meth:`close` (never half a video)."""

    def __init__(self, path: str, *, fps: float, size: Tuple[int, int]):
        import cv2

        ext = os.path.splitext(path)[1].lower()
        if ext not in _FOURCC:
            raise ValueError(f"unsupported video type {ext or '(none)'} for {path}; use one of {', '.join(sorted(_FOURCC))}")
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"no such directory for the video: {directory}")
        self.path = path
        self._tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp{os.getpid()}{ext}")
        self._writer = cv2.VideoWriter(self._tmp, cv2.VideoWriter_fourcc(*_FOURCC[ext]), float(fps), tuple(size))
        if not self._writer.isOpened():
            raise RuntimeError(f"cannot write video {path} (codec {_FOURCC[ext]} unavailable in this OpenCV)")
        self.frames = 0

    def write(self, frame_bgr: np.ndarray) -> None:
        self._writer.write(frame_bgr)
        self.frames += 1

    def close(self, *, keep: bool = True) -> None:
        self._writer.release()
        if keep and self.frames:
            os.replace(self._tmp, self.path)
        elif os.path.exists(self._tmp):
            os.remove(self._tmp)


def synthetic_video(path: str, *, identities: Sequence[int], seed: int = 0, frames_per_identity: int = 8,
                    size: Tuple[int, int] = (320, 240), face_px: int = 150, fps: float = 10.0,
                    first_image: int = 100) -> List[int]:
    """Write a video of generated faces, one identity after another, drifting across the frame.

    Each frame shows image ``first_image + k`` of an identity (images below ``first_image`` are
    left for enrolment, so the video never repeats an enrolled image), scaled to ``face_px`` on a
    grey background. Returns the identity shown in each frame.
    """
    import cv2

    width, height = size
    if face_px > min(width, height):
        raise ValueError(f"face_px {face_px} does not fit a {width}x{height} frame")
    out = VideoOut(path, fps=fps, size=(width, height))
    shown = []
    try:
        for identity in identities:
            person = synth_identity(identity_rng(seed, identity))
            for k in range(frames_per_identity):
                face = cv2.resize(render_face(person, image_rng(seed, identity, first_image + k)), (face_px, face_px),
                                  interpolation=cv2.INTER_LINEAR)
                frame = np.full((height, width, 3), 96, np.uint8)
                x = int(round((width - face_px) * (k + 0.5) / frames_per_identity))
                y = (height - face_px) // 2
                frame[y:y + face_px, x:x + face_px] = face
                out.write(np.ascontiguousarray(frame[:, :, ::-1]))
                shown.append(int(identity))
    except BaseException:
        out.close(keep=False)
        raise
    out.close()
    return shown


def count_names(per_frame: Sequence[Sequence[Recognition]]) -> Counter:
    """How often each name (None for unknown) was given over the frames."""
    return Counter(r.name for rows in per_frame for r in rows)
