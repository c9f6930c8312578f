"""``lcefr align`` as a function: a folder of photographs to a folder of aligned 112x112 faces.

Every image under the input folder is detected (MTCNN) and its largest face (or every face) is
aligned onto the ArcFace template and written under the same relative path, atomically, in the
input's format. Each face's template fit is reported: the distance of its five aligned landmarks
to the template in pixels of the crop; a similarity transform cannot remove head pose or
expression, so frontal faces fit within a few pixels and turned heads by 10 or more.
"""
from __future__ import annotations

import os
from typing import Callable, Dict, List, Optional

from lcefr.data.images import read_image
from lcefr.face.align import align_face, template_residual
from lcefr.face.photos import FaceReader
from lcefr.fileio import write_atomic
from lcefr.vocab import IMAGE_EXTENSIONS

__all__ = ["align_folder", "folder_images"]


def folder_images(directory: str) -> List[str]:
    """Image files under ``directory``, every level, in sorted order."""
    paths = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        paths += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
    return paths


def align_folder(in_dir: str, out_dir: str, *, all_faces: bool = False, max_residual: Optional[float] = None,
                 min_face: int = 20, detector=None, progress: Optional[Callable[[int, int], None]] = None) -> Dict:
    """Detect and align every image under ``in_dir`` into 112x112 faces under ``out_dir`` (same tree).

    Args:
        all_faces: write every face as ``NAME_0, NAME_1, ...`` (largest first) instead of the largest.
        max_residual: skip faces whose worst landmark stays more than this many pixels from the template.
        min_face: smallest face to find, in pixels. detector: a :class:`lcefr.face.Detector` (default MTCNN).
        progress: ``progress(images done, images)``, first with 0 done.

    Returns:
        The report ``lcefr align --json`` prints: counts, ``no_face``, ``several_faces``, ``unreadable``,
        ``faces`` (template fit of each written face) and ``poor_fit`` (faces skipped by ``max_residual``).

    Raises:
        ValueError: ``out_dir`` inside ``in_dir`` or not a folder, an unencodable output.
        FileNotFoundError: no ``in_dir``. lcefr.face.DetectorUnavailableError: MTCNN is not installed.
    """
    import cv2  # OpenCV encodes the crops; the rest of lcefr.face imports without it

    if not os.path.isdir(in_dir):
        raise FileNotFoundError(f"no such directory: {in_dir}")
    src, dst = os.path.realpath(in_dir), os.path.realpath(out_dir)
    if dst == src or dst.startswith(src + os.sep):
        raise ValueError(f"OUT_DIR {out_dir} must not be inside IN_DIR {in_dir}")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"{out_dir} is not a directory")
    paths = folder_images(in_dir)
    faces_of = FaceReader(min_face=min_face, detector=detector)
    report = {"in_dir": in_dir, "out_dir": out_dir, "images": len(paths), "written": 0, "aligned_images": 0,
              "no_face": [], "several_faces": [], "unreadable": [], "max_residual_px": max_residual,
              "min_face_px": min_face, "faces": [], "poor_fit": []}
    if progress:
        progress(0, len(paths))
    for done, path in enumerate(paths, 1):
        _align_one(path, in_dir, out_dir, faces_of, report, all_faces=all_faces, max_residual=max_residual, cv2=cv2)
        if progress:
            progress(done, len(paths))
    return report


def _align_one(path, in_dir, out_dir, faces_of, report, *, all_faces, max_residual, cv2) -> None:
    rel = os.path.relpath(path, in_dir)
    try:
        image = read_image(path)
    except (ValueError, OSError) as err:
        report["unreadable"].append({"image": rel, "reason": str(err)})
        return
    faces = faces_of.detector().detect(image)
    if not faces:
        report["no_face"].append(rel)
        return
    stem, ext = os.path.splitext(os.path.join(out_dir, rel))
    written = 0
    for i, face in enumerate(faces if all_faces else faces[:1]):
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
            raise ValueError(f"cannot encode {out}")
        write_atomic(out, buf.tobytes())
        report["faces"].append(fit)
        written += 1
    if len(faces) > 1:
        report["several_faces"].append({"image": rel, "faces": len(faces), "written": written})
    report["written"] += written
    report["aligned_images"] += bool(written)
