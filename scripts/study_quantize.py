"""Data-size study of small-data low-bit quantization (Ef-QuantFace, seed 002, Table 4 in small).

Teacher: the ir18 trained on generated faces by `make study-train` (build/study-train/ir18-seed0).
Quantization set: generated training faces (the teacher's own training identities), IDENTITIES x
PER_IDENTITY images; 25/50/75/100 % of it (whole identities), w8a8 / w6a6 / w4a4, 1 epoch of
EKD distillation each. Accuracy on a held-out generated .bin (identities the teacher never saw).
One JSON line per finished run in build/study-quantize.jsonl; rerunning skips finished runs.
For w8a8 on the full set, the int8 .tflite and the teacher's float .tflite are written to
build/study-quantize/ for `lcefr bench`, and the int8 file's accuracy is measured too.

    python scripts/study_quantize.py [--identities 32] [--per-identity 4] [--pairs 200] [--flip]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRACTIONS = (25, 50, 75, 100)
BITS = (8, 6, 4)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default=os.path.join(ROOT, "build", "study-train", "ir18-seed0", "backbone.keras"))
    parser.add_argument("--identities", type=int, default=32)
    parser.add_argument("--per-identity", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=200, help="Pairs of the held-out .bin.")
    parser.add_argument("--flip", action="store_true", help="Flip-test evaluation (twice the time).")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--loss", default="ekd", choices=["ekd", "mse", "ekd+ce"])
    parser.add_argument("--lr", type=float, default=1e-3, help="SGD learning rate.")
    parser.add_argument("--bits", type=int, nargs="+", default=list(BITS))
    parser.add_argument("--fractions", type=int, nargs="+", default=list(FRACTIONS))
    parser.add_argument("--out", default=os.path.join(ROOT, "build", "study-quantize.jsonl"))
    args = parser.parse_args(argv)

    if not os.path.isfile(args.teacher):
        print(f"error: no teacher at {args.teacher}; run `make study-train` (or lcefr train --model ir18 ... "
              "--out build/study-train/ir18-seed0) first", file=sys.stderr)
        return 2
    from lcefr.data.binset import read_bin
    from lcefr.data.images import read_face
    from lcefr.data.pairs import synthetic_bin
    from lcefr.data.synth import synthetic_folder
    from lcefr.quantize.qat import (QuantData, export_int8, keras_runner, load_teacher, packed_size,
                                    quantization_aware_training, verification_accuracy)

    build = os.path.join(ROOT, "build")
    bin_path = os.path.join(build, f"heldout-seed0-{args.pairs}.bin")
    if not os.path.exists(bin_path):
        synthetic_bin(bin_path, pairs=args.pairs, seed=0)
    vs = read_bin(bin_path)
    folder = synthetic_folder(identities=100, per_identity=20, seed=0)
    if args.identities > 100 or args.per_identity > 20:
        raise SystemExit("the generated training set has 100 identities x 20 images")
    faces = np.stack([read_face(os.path.join(folder, f"id_{i:05d}", f"{k}.png"))
                      for i in range(args.identities) for k in range(args.per_identity)])
    labels = np.repeat(np.arange(args.identities, dtype=np.int32), args.per_identity)
    teacher = load_teacher(args.teacher)

    done = {}
    if os.path.exists(args.out):
        with open(args.out) as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    done[(rec["bits"], rec["fraction"], rec["loss"], rec["epochs"], rec["bin"], rec.get("lr"))] = rec
    bin_name = os.path.basename(bin_path)
    teacher_key = ("teacher", bin_name, args.flip)
    cache = os.path.join(build, "study-quantize", "teacher-accuracy.json")
    cached = {}
    if os.path.exists(cache):
        with open(cache) as f:
            cached = json.load(f)
    teacher_acc = cached.get("|".join(map(str, teacher_key)))
    if teacher_acc is None:
        t0 = time.perf_counter()
        teacher_acc = verification_accuracy(keras_runner(teacher), vs, flip=args.flip)
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        with open(cache, "w") as f:
            json.dump({**cached, "|".join(map(str, teacher_key)): teacher_acc}, f)
        print(f"teacher: {100 * teacher_acc:.2f}% on {bin_name} ({time.perf_counter() - t0:.0f} s)", flush=True)

    for bits in args.bits:
        for fraction in sorted(args.fractions, reverse=True):
            key = (bits, fraction, args.loss, args.epochs, bin_name, args.lr)
            if key in done:
                continue
            ids = max(1, round(args.identities * fraction / 100))
            n = ids * args.per_identity
            data = QuantData(faces[:n], labels[:n], "synthetic")
            t0 = time.perf_counter()
            result = quantization_aware_training(teacher, data, bits=bits, loss=args.loss, epochs=args.epochs,
                                                 batch_size=16, calibration_images=256, lr=args.lr)
            acc = verification_accuracy(keras_runner(result.student), vs, flip=args.flip)
            rec = {"bits": bits, "fraction": fraction, "images": n, "identities": ids, "loss": args.loss, "lr": args.lr,
                   "epochs": args.epochs, "bin": bin_name, "pairs": args.pairs, "flip_test": args.flip,
                   "teacher_accuracy": teacher_acc, "accuracy": acc, "gap": teacher_acc - acc,
                   **packed_size(result.student, bits), "train_seconds": result.seconds}
            if bits == 8 and fraction == 100:
                rec.update(_export(result.student, teacher, faces[:n], vs, args.flip, export_int8, verification_accuracy))
            rec["seconds"] = round(time.perf_counter() - t0, 1)
            done[key] = rec
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(rec) + "\n")
            print(f"w{bits}a{bits} {fraction:3d}% ({n} images): {100 * acc:.2f}% (teacher {100 * teacher_acc:.2f}%, "
                  f"gap {100 * rec['gap']:+.2f}) {rec['seconds']:.0f} s", flush=True)
    _table([r for k, r in done.items() if k[2:] == (args.loss, args.epochs, bin_name, args.lr)])
    return 0


def _export(student, teacher, faces, vs, flip, export_int8, verification_accuracy):
    from lcefr.convert.tflite import convert_float
    from lcefr.embed import load_embedder

    out = os.path.join(ROOT, "build", "study-quantize")
    os.makedirs(out, exist_ok=True)
    int8_path = os.path.join(out, "ir18-w8a8.int8.tflite")
    float_path = os.path.join(out, "ir18-teacher.float.tflite")
    buffer, _ = export_int8(student, teacher, faces, bits=8)
    with open(int8_path, "wb") as f:
        f.write(buffer)
    with open(float_path, "wb") as f:
        f.write(convert_float(teacher))
    acc = verification_accuracy(load_embedder(int8_path, threads=2).run, vs, flip=flip)
    return {"int8_tflite": os.path.relpath(int8_path, ROOT), "int8_tflite_accuracy": acc,
            "int8_tflite_bytes": os.path.getsize(int8_path), "float_tflite_bytes": os.path.getsize(float_path)}


def _table(records) -> None:
    from lcefr.cli._common import format_table

    records = sorted(records, key=lambda r: (-r["bits"], r["fraction"]))
    rows = [[f"w{r['bits']}a{r['bits']}", f"{r['fraction']}%", r["images"], f"{100 * r['teacher_accuracy']:.2f}",
             f"{100 * r['accuracy']:.2f}", f"{100 * r['gap']:+.2f}",
             f"{100 * r['int8_tflite_accuracy']:.2f}" if "int8_tflite_accuracy" in r else "-",
             f"{r['size_bytes_float'] / 1e6:.1f}", f"{r['size_bytes_quantized'] / 1e6:.1f}"] for r in records]
    print(format_table(["bits", "data", "images", "teacher %", "quantized %", "gap (pts)", "int8 tflite %",
                        "float MB", "packed MB"], rows))


if __name__ == "__main__":
    sys.exit(main())
