"""Acceptance study of issue 11: personal verifiers from a hypernetwork vs ``f`` trained directly.

Generated identities for training, a held-out ``.bin`` of generated identities disjoint from them (same
pair protocol for both methods), three seeds each. ``h_bb`` is frozen, so the backbone embeddings of all
images are computed once and cached. Results are appended to ``build/study-personal.jsonl`` as each
(method, seed) finishes; a rerun skips finished ones. Prints per-seed numbers and the mean of the seeds.

    .venv/bin/python scripts/study_personal.py [--backbone FILE] [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from lcefr.personal.verifier import VerifierSpec

DEFAULT_BACKBONE = "build/study-train/quicknet_small-seed1/backbone.keras"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load_rows(path: str):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    return rows


def append_row(path: str, row: dict) -> None:
    from lcefr.fileio import write_atomic

    old = open(path, "rb").read() if os.path.exists(path) else b""
    write_atomic(path, old + (json.dumps(row) + "\n").encode())


def prepare(args, config):
    """Training data with embeddings and the held-out pairs, cached under ``args.work``."""
    from lcefr.data.binset import read_bin
    from lcefr.data.pairs import synthetic_bin
    from lcefr.embed import load_embedder
    from lcefr.eval.verification import l2_normalize
    from lcefr.personal.train import TrainingData, prepare_data

    cache = os.path.join(args.work, "data.npz")
    if os.path.exists(cache):
        z = np.load(cache)
        data = TrainingData(images=z["images"], labels=z["labels"], embeddings=z["embeddings"], source="synthetic")
        return data, (z["test_images"], z["test_issame"], z["test_embeddings"])
    t = time.time()
    data = prepare_data("synthetic", args.backbone, config=config)
    log(f"training data: {len(data.labels)} images of {len(np.unique(data.labels))} identities, embedded "
        f"({time.time() - t:.0f} s)")
    bin_path = os.path.join(args.work, "heldout.bin")
    if not os.path.exists(bin_path):
        synthetic_bin(bin_path, pairs=args.pairs, seed=args.data_seed)
    vs = read_bin(bin_path)
    emb = l2_normalize(load_embedder(args.backbone, batch_size=64).raw(vs.images[0::2]))
    np.savez(cache, images=data.images, labels=data.labels, embeddings=data.embeddings, test_images=vs.images,
             test_issame=vs.issame, test_embeddings=emb)
    log(f"held-out: {vs.pairs} pairs from generated identities disjoint from training ({time.time() - t:.0f} s)")
    return data, (vs.images, vs.issame, emb)


def _theta0_path(args, seed):
    return os.path.join(args.work, f"direct-seed{seed}-theta.npy")


def run_hypernet(args, data, test, seed, config):
    """h_gen on the cached embeddings; with --warm-start it starts from this seed's direct f."""
    from lcefr.personal.evaluate import evaluate_hypernet
    from lcefr.personal.hypernet import load_hypernet
    from lcefr.personal.train import train_hypernet

    out = os.path.join(args.work, f"hypernet-seed{seed}")
    theta0 = None
    if config.warm_start_epochs:
        if not os.path.exists(_theta0_path(args, seed)):
            run_direct(args, data, test, seed, config)
        theta0 = np.load(_theta0_path(args, seed))
    t = time.time()
    train_hypernet(data, out, config=config, backbone=args.backbone, on_message=log, log_every=50, theta0=theta0)
    seconds = time.time() - t
    images, issame, emb = test
    return evaluate_hypernet(load_hypernet(out), images, issame, embeddings=emb), seconds


def run_direct(args, data, test, seed, config):
    """f's architecture trained directly as an embedding network (ArcFace); cosine scores."""
    from lcefr.personal.evaluate import direct_pair_scores, pair_metrics
    from lcefr.personal.train import theta_from_direct, train_direct
    from lcefr.preprocess import preprocess

    t = time.time()
    model = train_direct(data, epochs=args.direct_epochs, seed=seed, on_message=log)
    seconds = time.time() - t
    np.save(_theta0_path(args, seed), theta_from_direct(model, VerifierSpec(), seed=seed))
    images, issame, _ = test
    scores = direct_pair_scores(model, preprocess(images[0::2]), preprocess(images[1::2]))
    return pair_metrics(scores, issame), seconds


def table(rows, seeds):
    from lcefr.cli._common import format_table

    methods = [m for m in ("hypernet", "direct") if any(r["method"] == m for r in rows)]
    body = []
    means = {}
    for m in methods:
        acc = {r["seed"]: r["accuracy"] for r in rows if r["method"] == m}
        tar = [r.get("tar@far=0.01") for r in rows if r["method"] == m and r["seed"] in seeds]
        vals = [acc[s] for s in seeds if s in acc]
        means[m] = float(np.mean(vals)) if vals else float("nan")
        tar_vals = [v for v in tar if v is not None]
        body.append([m] + [f"{100 * acc[s]:.2f}" if s in acc else "-" for s in seeds]
                    + [f"{100 * means[m]:.2f}", f"{100 * np.mean(tar_vals):.2f}" if tar_vals else "-"])
    text = format_table(["method"] + [f"seed {s}" for s in seeds] + ["mean", "TAR@FAR=1e-2 mean"], body)
    if "hypernet" in means and "direct" in means:
        text += f"\nhypernetwork - direct f: {100 * (means['hypernet'] - means['direct']):+.2f} accuracy points"
    return text


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default=DEFAULT_BACKBONE if os.path.exists(DEFAULT_BACKBONE) else "quicknet_small",
                   help="h_bb: backbone file or registry name (random init)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=["direct", "hypernet"], choices=["hypernet", "direct"])
    p.add_argument("--warm-start", type=int, default=1, help="1: every generated f starts from this seed's direct f")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--identities", type=int, default=200)
    p.add_argument("--per-identity", type=int, default=8)
    p.add_argument("--pairs", type=int, default=600)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--direct-epochs", type=int, default=30)
    p.add_argument("--work", default="build/study-personal")
    p.add_argument("--results", default="build/study-personal.jsonl")
    args = p.parse_args(argv)

    from lcefr.personal.train import PersonalConfig

    os.makedirs(args.work, exist_ok=True)
    base = dict(steps=args.steps, synth_identities=args.identities, synth_per_identity=args.per_identity,
                warm_start_epochs=args.direct_epochs if args.warm_start else 0)
    data, test = prepare(args, PersonalConfig(seed=args.data_seed, **base))
    for seed in args.seeds:
        for method in args.methods:
            done = {(r["method"], r["seed"]) for r in load_rows(args.results)}
            if (method, seed) in done:
                log(f"{method} seed {seed}: done, skipped")
                continue
            log(f"{method} seed {seed}: training")
            config = PersonalConfig(seed=seed, **base)
            run = run_hypernet if method == "hypernet" else run_direct
            metrics, seconds = run(args, data, test, seed, config)
            row = {"method": method, "seed": seed, **metrics, "train_s": round(seconds, 1), "steps": args.steps,
                   "direct_epochs": args.direct_epochs, "warm_start": bool(args.warm_start), "identities": args.identities,
                   "per_identity": args.per_identity, "backbone": args.backbone}
            append_row(args.results, row)
            log(f"{method} seed {seed}: accuracy {100 * metrics['accuracy']:.2f}%")
    rows = [r for r in load_rows(args.results) if r["seed"] in args.seeds]
    print(table(rows, args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
