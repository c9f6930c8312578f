"""How often mtcnn 1.0.0 (default thresholds) finds a face in lcefr's synthetic aligned faces.

    .venv/bin/python scripts/synth_detection_rate.py --identities 40 --per-identity 5 [--json]

Renders every image with all per-image nuisances on (pose, expression, illumination, blur,
noise, occlusion, background clutter) and prints the detection rate, the mean distance of
mtcnn's five landmarks to the ArcFace template (112x112 pixels), the generation speed on
this machine, and the images it missed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from importlib.metadata import version

import lcefr  # selects tf-keras before TensorFlow is imported
import numpy as np

from lcefr.data.synth import image_rng, identity_rng, render_face, synth_identity
from lcefr.preprocess import ARCFACE_TEMPLATE

_KEYS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def measure(*, identities: int, per_identity: int, seed: int, batch: int = 16) -> dict:
    from mtcnn import MTCNN

    start = time.perf_counter()
    images, labels = [], []
    for i in range(identities):
        person = synth_identity(identity_rng(seed, i))
        for k in range(per_identity):
            images.append(render_face(person, image_rng(seed, i, k)))
            labels.append((i, k))
    gen_seconds = time.perf_counter() - start

    detector = MTCNN()
    start = time.perf_counter()
    found, errors, missed = 0, [], []
    for b in range(0, len(images), batch):
        chunk = images[b : b + batch]
        results = detector.detect_faces(chunk) if len(chunk) > 1 else [detector.detect_faces(chunk[0])]
        for j, faces in enumerate(results):
            if not faces:
                missed.append(labels[b + j])
                continue
            found += 1
            best = max(faces, key=lambda f: f["confidence"])
            pts = np.array([best["keypoints"][key] for key in _KEYS], np.float64)
            errors.append(np.linalg.norm(pts - ARCFACE_TEMPLATE, axis=1))
    det_seconds = time.perf_counter() - start
    err = np.array(errors) if errors else np.zeros((0, 5))
    return {
        "lcefr": lcefr.__version__,
        "detector": f"mtcnn {version('mtcnn')} MTCNN().detect_faces, default thresholds",
        "images": len(images),
        "identities": identities,
        "per_identity": per_identity,
        "seed": seed,
        "detected": found,
        "detection_rate": round(found / len(images), 4),
        "landmark_error_px": {key: round(float(err[:, j].mean()), 2) for j, key in enumerate(_KEYS)} if len(err) else {},
        "eye_error_px": round(float(err[:, :2].mean()), 2) if len(err) else None,
        "missed": [f"id_{i:05d}/{k}" for i, k in missed],
        "generation_ms_per_image": round(1000 * gen_seconds / len(images), 2),
        "detection_ms_per_image": round(1000 * det_seconds / len(images), 2),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=40)
    ap.add_argument("--per-identity", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    if args.identities < 1 or args.per_identity < 1:
        print("error: --identities and --per-identity must be >= 1", file=sys.stderr)
        return 2
    try:
        result = measure(identities=args.identities, per_identity=args.per_identity, seed=args.seed)
    except ImportError as exc:
        print(f"error: mtcnn is not importable ({exc}); pip install mtcnn==1.0.0", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['detector']}: {result['detected']}/{result['images']} detected "
            f"({100 * result['detection_rate']:.1f}%), {args.identities} identities x {args.per_identity}, seed {args.seed}"
        )
        print(f"mean landmark error (px, 112x112): {result['landmark_error_px']}")
        print(f"generation {result['generation_ms_per_image']} ms/image, detection {result['detection_ms_per_image']} ms/image")
        if result["missed"]:
            print("missed:", " ".join(result["missed"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
