"""Pair verification with personal verifiers: ``f`` generated from the first face of a pair scores the second.

Scores feed the same 10-fold protocol as ``lcefr eval`` (:mod:`lcefr.eval.verification`): the protocol
sweeps thresholds over squared L2 distances of unit embeddings, so each pair's score is turned into a
two-dimensional unit-vector pair whose distance falls with the score's rank. Only the order of the scores
matters to the protocol (thresholds are chosen on the training folds), so accuracy and TAR@FAR are those of
thresholding the scores themselves, to within the protocol's grid (400 accuracy thresholds).
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from lcefr.eval.verification import evaluate, l2_normalize, tar_at_far
from lcefr.personal.verifier import score_logits
from lcefr.preprocess import preprocess

__all__ = ["scores_to_pairs", "pair_metrics", "hypernet_pair_scores", "direct_pair_scores", "evaluate_hypernet"]


def scores_to_pairs(scores) -> np.ndarray:
    """Unit vectors ``(2 * pairs, 2)`` whose pair distances decrease strictly with ``scores`` (ties stay ties)."""
    s = np.asarray(scores, np.float64).reshape(-1)
    if s.size == 0 or not np.all(np.isfinite(s)):
        raise ValueError(f"Expected finite scores, got {s.size} values")
    unique = np.unique(s)
    rank = np.searchsorted(unique, s)
    dist = 3.99 * (1.0 - (rank + 0.5) / len(unique))  # squared L2 in (0, 4)
    cos = 1.0 - dist / 2.0
    out = np.zeros((2 * len(s), 2))
    out[0::2, 0] = 1.0
    out[1::2, 0] = cos
    out[1::2, 1] = np.sqrt(np.maximum(0.0, 1.0 - cos ** 2))
    return out


def pair_metrics(scores, issame, *, fars: Sequence[float] = (1e-2, 1e-3), folds: int = 10) -> Dict:
    """Accuracy (mean and std over folds) and TAR at each FAR, as ``lcefr eval`` reports them."""
    issame = np.asarray(issame, bool)
    emb = scores_to_pairs(scores)
    accuracy = evaluate(emb, issame, nrof_folds=folds)[2]
    out = {"pairs": int(len(issame)), "accuracy": float(np.mean(accuracy)), "accuracy_std": float(np.std(accuracy))}
    for far in fars:
        t = tar_at_far(emb, issame, far, nrof_folds=folds)
        out[f"tar@far={far:g}"] = t.value if t.resolvable else None
    return out


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def hypernet_pair_scores(theta: np.ndarray, probes: np.ndarray, spec, *, batch: int = 32) -> np.ndarray:
    """Logit of network ``i`` on preprocessed probe ``i`` for every pair (a diagonal, computed in chunks)."""
    out = []
    for sl in _chunks(len(probes), batch):
        out.append(np.diag(np.asarray(score_logits(probes[sl], theta[sl], spec))))
    return np.concatenate(out)


def direct_pair_scores(model, images_a: np.ndarray, images_b: np.ndarray, *, batch: int = 128) -> np.ndarray:
    """Cosine similarity of the embeddings of preprocessed faces ``a[i]`` and ``b[i]``."""
    def embed(x):
        e = np.concatenate([np.asarray(model(x[sl], training=False)) for sl in _chunks(len(x), batch)])
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)

    return np.sum(embed(images_a) * embed(images_b), axis=1)


def evaluate_hypernet(hypernet, images: np.ndarray, issame, *, embeddings=None) -> Dict:
    """Metrics of ``hypernet`` on pairs ``images[2i], images[2i + 1]`` (uint8 faces).

    ``embeddings`` (L2-normalised ``h_bb`` output of ``images[0::2]``) skips the backbone when given.
    """
    images = np.asarray(images)
    if embeddings is None:
        embeddings = l2_normalize(hypernet.embedder().raw(images[0::2]))
    theta = hypernet.generate(embeddings)
    scores = hypernet_pair_scores(theta, preprocess(images[1::2]), hypernet.spec)
    return pair_metrics(scores, issame)
