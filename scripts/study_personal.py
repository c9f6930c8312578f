"""Acceptance study of issue 11: personal verifiers from a hypernetwork vs ``f`` trained directly.

Generated identities for training (by default in look-alike pairs, so both methods see hard negatives),
two held-out ``.bin`` sets of generated identities disjoint from them (random and look-alike negatives;
the same pairs for every method), three seeds each, and ``h_bb`` alone as the ceiling. ``h_bb`` is frozen,
so the backbone embeddings of all images are computed once and cached under ``--work``. Results are
appended to ``--results`` as each (method, seed) finishes; a rerun skips finished ones and the tables
show only rows of the current settings. Prints per-seed numbers and the mean of the seeds.

    make study-teacher   # the default h_bb: ir18 trained on generated faces
    .venv/bin/python scripts/study_personal.py [--backbone FILE] [--seeds 0 1 2] [--no-lookalikes]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from lcefr.data.pairs import NEGATIVES
from lcefr.personal.verifier import VerifierSpec

DEFAULT_BACKBONE = "build/study-train/ir18-teacher-seed0/backbone.keras"  # from `make study-teacher`


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


def _heldout(args, negatives: str):
    """``(images, issame, backbone embeddings of the first faces)`` of one held-out set, cached."""
    from lcefr.data.binset import read_bin
    from lcefr.data.pairs import synthetic_bin
    from lcefr.embed import load_embedder
    from lcefr.eval.verification import l2_normalize

    name = "heldout" if negatives == "random" else f"heldout-{negatives}"
    cache = os.path.join(args.work, f"{name}.npz")
    if os.path.exists(cache):
        z = np.load(cache)
        return z["images"], z["issame"], z["embeddings"]
    t = time.time()
    bin_path = os.path.join(args.work, f"{name}.bin")
    if not os.path.exists(bin_path):
        synthetic_bin(bin_path, pairs=args.pairs, seed=args.data_seed, negatives=negatives)
    vs = read_bin(bin_path)
    emb = l2_normalize(load_embedder(args.backbone, batch_size=64).raw(vs.images[0::2]))
    np.savez(cache, images=vs.images, issame=vs.issame, embeddings=emb)
    log(f"held-out ({negatives} negatives): {vs.pairs} pairs from generated identities disjoint from training "
        f"({time.time() - t:.0f} s)")
    return vs.images, vs.issame, emb


def _check_work(args) -> None:
    """The cached embeddings belong to one backbone and one training set: refuse to mix them."""
    want = {"backbone": os.path.abspath(args.backbone) if os.path.exists(args.backbone) else args.backbone,
            "identities": args.identities, "per_identity": args.per_identity, "data_seed": args.data_seed,
            "lookalikes": args.lookalikes, "pairs": args.pairs}
    path = os.path.join(args.work, "cache.json")
    if os.path.exists(path):
        with open(path) as f:
            have = json.load(f)
        if have != want:
            raise SystemExit(f"error: {args.work} caches data for {have}, not {want}; give another --work")
    elif os.path.exists(os.path.join(args.work, "data.npz")):
        raise SystemExit(f"error: {args.work} holds cached data of unknown origin; give another --work")
    else:
        from lcefr.fileio import write_atomic

        os.makedirs(args.work, exist_ok=True)
        write_atomic(path, (json.dumps(want, indent=2) + "\n").encode())


def _matches(row: dict, args) -> bool:
    """Rows of this configuration (the results file may hold earlier studies)."""
    return (row.get("backbone") == args.backbone and row.get("identities") == args.identities
            and row.get("per_identity") == args.per_identity and row.get("pool", 4) == args.pool
            and bool(row.get("lookalikes", False)) == args.lookalikes
            and (row["method"] == "backbone" or (row.get("steps") == args.steps
                                                 and row.get("direct_epochs") == args.direct_epochs
                                                 and bool(row.get("warm_start")) == bool(args.warm_start))))


def prepare(args, config):
    """Training data with embeddings and the held-out sets (random and look-alike negatives), cached."""
    from lcefr.personal.train import TrainingData, prepare_data

    _check_work(args)
    cache = os.path.join(args.work, "data.npz")
    if os.path.exists(cache):
        z = np.load(cache)
        data = TrainingData(images=z["images"], labels=z["labels"], embeddings=z["embeddings"], source="synthetic")
    else:
        t = time.time()
        data = prepare_data("synthetic", args.backbone, config=config)
        np.savez(cache, images=data.images, labels=data.labels, embeddings=data.embeddings)
        log(f"training data: {len(data.labels)} images of {len(np.unique(data.labels))} identities, embedded "
            f"({time.time() - t:.0f} s)")
    return data, {negatives: _heldout(args, negatives) for negatives in NEGATIVES}


def run_backbone(args, data, tests, seed, config):
    """The ceiling: ``h_bb`` alone, cosine of its embeddings of both faces of a pair (no training)."""
    from lcefr.embed import load_embedder
    from lcefr.eval.verification import l2_normalize
    from lcefr.personal.evaluate import pair_metrics

    embedder = load_embedder(args.backbone, batch_size=64)
    out = {}
    for negatives, (images, issame, emb) in tests.items():
        second = l2_normalize(embedder.raw(images[1::2]))
        out[negatives] = pair_metrics(np.sum(emb * second, axis=1), issame)
    return out, 0.0


def _spec(args) -> VerifierSpec:
    return VerifierSpec(pool=args.pool).validate()


def _theta0_path(args, seed):
    return os.path.join(args.work, f"direct-seed{seed}-theta.npy")


def run_hypernet(args, data, tests, seed, config):
    """h_gen on the cached embeddings; with --warm-start it starts from this seed's direct f."""
    from lcefr.personal.evaluate import evaluate_hypernet
    from lcefr.personal.hypernet import load_hypernet
    from lcefr.personal.train import train_hypernet

    out = os.path.join(args.work, f"hypernet-seed{seed}")
    theta0 = None
    if config.warm_start_epochs:
        if not os.path.exists(_theta0_path(args, seed)):
            run_direct(args, data, tests, seed, config)
        theta0 = np.load(_theta0_path(args, seed))
    t = time.time()
    train_hypernet(data, out, config=config, backbone=args.backbone, on_message=log, log_every=50, theta0=theta0,
                   spec=_spec(args))
    seconds = time.time() - t
    hypernet = load_hypernet(out)
    return {negatives: evaluate_hypernet(hypernet, images, issame, embeddings=emb)
            for negatives, (images, issame, emb) in tests.items()}, seconds


def run_direct(args, data, tests, seed, config):
    """f's architecture trained directly as an embedding network (ArcFace); cosine scores."""
    from lcefr.personal.evaluate import direct_pair_scores, pair_metrics
    from lcefr.personal.train import theta_from_direct, train_direct
    from lcefr.preprocess import preprocess

    t = time.time()
    model = train_direct(data, spec=_spec(args), epochs=args.direct_epochs, seed=seed, on_message=log)
    seconds = time.time() - t
    np.save(_theta0_path(args, seed), theta_from_direct(model, _spec(args), seed=seed))
    out = {}
    for negatives, (images, issame, _) in tests.items():
        out[negatives] = pair_metrics(direct_pair_scores(model, preprocess(images[0::2]), preprocess(images[1::2])),
                                      issame)
    return out, seconds


LABELS = {"backbone": "h_bb alone (ceiling)", "hypernet": "hypernetwork", "direct": "f trained directly"}


def _metrics(row: dict, negatives: str):
    """A row's metrics on one held-out set (rows keep the random-negative set at the top level)."""
    return row if negatives == "random" else row.get(negatives)


def table(rows, seeds, negatives: str = "random"):
    from lcefr.cli._common import format_table

    body = []
    means = {}
    for m in ("backbone", "hypernet", "direct"):
        mine = [r for r in rows if r["method"] == m and _metrics(r, negatives)]
        if not mine:
            continue
        if m == "backbone":  # no training, the same for every seed
            mine = [{**mine[-1], "seed": s} for s in seeds]
        acc = {r["seed"]: _metrics(r, negatives)["accuracy"] for r in mine}
        tar = [_metrics(r, negatives).get("tar@far=0.01") for r in mine if r["seed"] in seeds]
        vals = [acc[s] for s in seeds if s in acc]
        means[m] = float(np.mean(vals)) if vals else float("nan")
        tar_vals = [v for v in tar if v is not None]
        body.append([LABELS[m]] + [f"{100 * acc[s]:.2f}" if s in acc else "-" for s in seeds]
                    + [f"{100 * means[m]:.2f}", f"{100 * np.mean(tar_vals):.2f}" if tar_vals else "-"])
    if not body:
        return f"{negatives} negatives: no results"
    text = f"held-out pairs, {negatives} negatives\n" + format_table(
        ["method"] + [f"seed {s}" for s in seeds] + ["mean", "TAR@FAR=1e-2 mean"], body)
    if "hypernet" in means and "direct" in means:
        text += f"\nhypernetwork - direct f: {100 * (means['hypernet'] - means['direct']):+.2f} accuracy points"
    return text


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default=DEFAULT_BACKBONE if os.path.exists(DEFAULT_BACKBONE) else "quicknet_small",
                   help="h_bb: backbone file or registry name (random init)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=["backbone", "direct", "hypernet"],
                   choices=["backbone", "hypernet", "direct"])
    p.add_argument("--warm-start", type=int, default=1, help="1: every generated f starts from this seed's direct f")
    p.add_argument("--steps", type=int, default=2400)
    p.add_argument("--identities", type=int, default=200)
    p.add_argument("--per-identity", type=int, default=8)
    p.add_argument("--pairs", type=int, default=600)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--direct-epochs", type=int, default=30)
    p.add_argument("--lookalikes", action=argparse.BooleanOptionalAction, default=True,
                   help="training identities come in look-alike pairs (hard negatives for both methods)")
    p.add_argument("--pool", type=int, default=VerifierSpec.pool, help="f's input average pool (4: 28x28, 2: 56x56)")
    p.add_argument("--work", default="build/study-personal")
    p.add_argument("--results", default="build/study-personal.jsonl")
    args = p.parse_args(argv)

    from lcefr.personal.train import PersonalConfig

    os.makedirs(args.work, exist_ok=True)
    base = dict(steps=args.steps, synth_identities=args.identities, synth_per_identity=args.per_identity,
                synth_lookalikes=args.lookalikes, warm_start_epochs=args.direct_epochs if args.warm_start else 0)
    data, tests = prepare(args, PersonalConfig(seed=args.data_seed, **base))
    for seed in args.seeds:
        for method in args.methods:
            done = {(r["method"], r["seed"] if r["method"] != "backbone" else None) for r in load_rows(args.results)
                    if _matches(r, args) and all(_metrics(r, n) for n in NEGATIVES)}
            if (method, seed if method != "backbone" else None) in done:
                log(f"{method} seed {seed}: done, skipped")
                continue
            log(f"{method} seed {seed}: training")
            config = PersonalConfig(seed=seed, **base)
            run = {"hypernet": run_hypernet, "direct": run_direct, "backbone": run_backbone}[method]
            metrics, seconds = run(args, data, tests, seed, config)
            row = {"method": method, "seed": seed, **metrics["random"],
                   **{n: metrics[n] for n in NEGATIVES if n != "random"}, "train_s": round(seconds, 1), "steps": args.steps,
                   "direct_epochs": args.direct_epochs, "warm_start": bool(args.warm_start), "identities": args.identities,
                   "per_identity": args.per_identity, "backbone": args.backbone, "pool": args.pool,
                   "lookalikes": args.lookalikes}
            append_row(args.results, row)
            log(f"{method} seed {seed}: accuracy " + ", ".join(
                f"{100 * metrics[n]['accuracy']:.2f}% ({n} negatives)" for n in NEGATIVES))
    rows = [r for r in load_rows(args.results)
            if _matches(r, args) and (r["seed"] in args.seeds or r["method"] == "backbone")]
    for negatives in NEGATIVES:
        print(table(rows, args.seeds, negatives))
    return 0


if __name__ == "__main__":
    sys.exit(main())
