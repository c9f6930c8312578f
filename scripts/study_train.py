"""`make study-train`: held-out accuracy of ir18 and a binary model before and after short training.

Every run trains on generated faces (`--data synthetic`) for a wall-time budget and is evaluated
on the default held-out generated `.bin` (seed 0) before and after training, with the protocol of
`lcefr eval`. Prints a markdown table and writes it (and the raw records as JSON) to build/.

    python scripts/study_train.py [--budget-min 10] [--seeds 0,1,2] [--pairs 1200] [--distill]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")


def lcefr_cmd(*args, capture=True):
    cmd = [sys.executable, "-m", "lcefr.cli", *map(str, args)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE if capture else None, text=True)
    return out.stdout if capture else ""


def heldout(pairs: int) -> str:
    path = os.path.join(BUILD, f"heldout-seed0-{pairs}.bin" if pairs != 6000 else "heldout-seed0.bin")
    if not os.path.exists(path):
        lcefr_cmd("data", "make-bin", "synthetic", "--pairs", pairs, "--seed", 0, "--out", path, capture=False)
    return path


def accuracy(model: str, bin_path: str) -> float:
    """`lcefr eval` accuracy, cached next to a trained backbone (keyed by its mtime) or, for a
    registry name (seeded random init), in build/study-train/untrained-<name>.json."""
    if os.path.exists(model):
        cache = os.path.join(os.path.dirname(model), "heldout-accuracy.json")
        key = f"{os.path.basename(bin_path)}@{os.path.getmtime(model):.0f}"
    else:
        cache = os.path.join(BUILD, "study-train", f"untrained-{model}.json")
        key = os.path.basename(bin_path)
    cached = json.load(open(cache)) if os.path.exists(cache) else {}
    if key in cached:
        return cached[key]
    out = lcefr_cmd("eval", model, "--bin", bin_path, "--json", "--batch-size", 64)
    report = json.loads(out[out.index("{"):])
    value = next(iter(report["sets"].values()))["accuracy"]
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    with open(cache + ".tmp", "w") as f:
        json.dump({**cached, key: value}, f)
    os.replace(cache + ".tmp", cache)
    return value


def finished(out_dir: str) -> bool:
    path = os.path.join(out_dir, "history.json")
    return os.path.exists(path) and bool(json.load(open(path)).get("complete"))


def steps_for_budget(model: str, batch: int, budget_s: float, extra=()) -> int:
    out = lcefr_cmd("train", "--model", model, "--batch-size", batch, "--benchmark", "--json", *extra)
    bench = json.loads(out[out.index("{"):])
    rate = min(bench["step_images_per_s"], bench["pipeline_images_per_s"])
    # 85% of the budget for steps: tracing, the per-epoch backbone save and the first batch take the rest
    return max(10, int(0.85 * budget_s * rate / batch))


def run(model: str, seed: int, *, budget_s: float, epochs: int, batch: int, bin_path: str, extra=(), tag="",
        steps=None) -> dict:
    """One training run (skipped when its out dir holds a finished run) and its held-out accuracy."""
    out_dir = os.path.join(BUILD, "study-train", f"{model}{tag}-seed{seed}")
    before = accuracy(model, bin_path) if not extra else None
    if steps is None:
        steps = steps_for_budget(model, batch, budget_s, extra)
    if not finished(out_dir):  # a rerun after a kill resumes the run (lcefr train's BackupAndRestore)
        lcefr_cmd("train", "--model", model, "--data", "synthetic", "--epochs", epochs, "--batch-size", batch,
                  "--steps-per-epoch", max(1, steps // epochs), "--seed", seed, "--out", out_dir, *extra, capture=False)
    history = json.load(open(os.path.join(out_dir, "history.json")))
    wall = sum(e["seconds"] for e in history["epochs"])
    import yaml

    with open(os.path.join(out_dir, "config.yaml")) as f:
        steps = int(yaml.safe_load(f).get("steps_per_epoch") or max(1, steps // epochs)) * epochs
    after = accuracy(os.path.join(out_dir, "backbone.keras"), bin_path)
    record = {"model": model + tag, "seed": seed, "before": before, "after": after, "train_s": round(wall, 1),
              "steps": steps, "batch": batch}
    with open(os.path.join(BUILD, "study-train.jsonl"), "a") as f:  # every finished run, as it finishes
        f.write(json.dumps(record) + "\n")
    return record


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-min", type=float, default=8.0, help="training wall time per run (minutes)")
    ap.add_argument("--seeds", default="0,1,2", help="seeds of the binary model's runs")
    ap.add_argument("--pairs", type=int, default=1200, help="pairs in the held-out .bin (seed 0); 1200 keeps an ir18 eval at a few minutes on 2 cores")
    ap.add_argument("--float-model", default="ir18")
    ap.add_argument("--binary-model", default="quicknet_small")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--distill", action="store_true", help="also train the binary model from the trained ir18")
    ap.add_argument("--distill-loss", choices=("ekd", "mse"), default="ekd")
    ap.add_argument("--teacher", default=None,
                    help="teacher backbone for --distill (default: this study's ir18 run, build/study-train/ir18-seed0)")
    ap.add_argument("--steps", type=int, default=None,
                    help="fixed steps for every binary-model run instead of the wall-time budget (same data for every seed)")
    ap.add_argument("--skip-float", action="store_true", help="do not train/evaluate the float model (distillation study)")
    args = ap.parse_args()
    os.makedirs(BUILD, exist_ok=True)
    bin_path = heldout(args.pairs)
    budget = 60 * args.budget_min
    common = dict(budget_s=budget, epochs=args.epochs, batch=args.batch, bin_path=bin_path)
    records = [] if args.skip_float else [run(args.float_model, 0, **common, extra=(), tag="")]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    fixed = f"-s{args.steps}" if args.steps else ""
    records += [run(args.binary_model, s, **common, tag=fixed, steps=args.steps) for s in seeds]
    if args.distill:
        teacher = args.teacher or os.path.join(BUILD, "study-train", f"{args.float_model}-seed0", "backbone.keras")
        if not os.path.exists(teacher):
            raise SystemExit(f"error: no teacher at {teacher}; train it first (see docs/studies.md, training study)")
        plain = {r["seed"]: r for r in records if r["model"] == args.binary_model + fixed}
        if args.teacher:  # a teacher from outside this study: its held-out accuracy goes into the table
            records.append({"model": f"teacher {os.path.relpath(teacher, ROOT)}", "seed": "-", "before": None,
                            "after": accuracy(teacher, bin_path), "train_s": "-", "steps": "-", "batch": "-"})
        for s in seeds:
            # the same number of steps as the run without a teacher: the teacher's forward pass
            # makes a step slower, and a wall-time budget would compare different amounts of data
            r = run(args.binary_model, s, **common, extra=("--teacher", teacher, "--distill", args.distill_loss),
                    tag=f"{fixed}+{args.distill_loss}", steps=plain[s]["steps"])
            records.append(r)
    lines = ["| model | seed | held-out acc. untrained | after training | train wall s | steps x batch |", "|---|---|---|---|---|---|"]
    for r in records:
        before = f"{100 * r['before']:.2f}" if r["before"] is not None else "-"
        lines.append(f"| {r['model']} | {r['seed']} | {before} | {100 * r['after']:.2f} | {r['train_s']} | {r['steps']} x {r['batch']} |")
    by_model = {}
    for r in records:
        by_model.setdefault(r["model"], []).append(100 * r["after"])
    if any(len(v) > 1 for v in by_model.values()):
        lines += ["", "| model | seeds | mean held-out acc. after training |", "|---|---|---|"]
        lines += [f"| {m} | {len(v)} | {sum(v) / len(v):.2f} |" for m, v in by_model.items()]
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(BUILD, "study-train.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(BUILD, "study-train.json"), "w") as f:
        json.dump(records, f, indent=2)


if __name__ == "__main__":
    main()
