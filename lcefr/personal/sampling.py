"""Batch sampling and schedules of seed 003: uniform identity batches, K-means centred sampling (KCS),
batch-size doubling and the ``alpha_norm`` ramp during warm-up. Pure numpy.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

__all__ = ["kmeans", "IdentitySampler", "batch_identities_at", "alpha_norm_at"]


def kmeans(points: np.ndarray, k: int, *, seed: int = 0, iterations: int = 50) -> np.ndarray:
    """Lloyd's K-means with k-means++ seeding; returns one cluster label per row of ``points``.

    Raises:
        ValueError: ``k`` outside ``[1, len(points)]``.
    """
    x = np.asarray(points, np.float64)
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"Expected 1 <= k <= {n} points, got k={k}")
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(n)]]
    for _ in range(1, k):
        d2 = np.min([np.sum((x - c) ** 2, axis=1) for c in centres], axis=0)
        total = d2.sum()
        centres.append(x[rng.choice(n, p=d2 / total)] if total > 0 else x[rng.integers(n)])
    c = np.stack(centres)
    labels = np.full(n, -1)
    for _ in range(iterations):
        d = ((x[:, None, :] - c[None]) ** 2).sum(-1)
        new = d.argmin(1)
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            if len(members):
                c[j] = members.mean(0)
    return labels


class IdentitySampler:
    """Batches of ``B`` identities x ``n`` images, drawn uniformly or within one K-means cluster (KCS).

    ``labels[i]`` is the identity of image ``i``. With ``clusters`` (one cluster id per identity), a KCS
    batch takes a random cluster and draws its identities from it; a cluster smaller than ``B`` is topped
    up with the identities of the clusters whose centres are nearest (``centres`` given) or random ones.
    Every batch depends only on ``(seed, step)``, so a resumed run draws the same batches.
    """

    def __init__(self, labels: Sequence[int], *, per_identity: int, seed: int = 0,
                 clusters: Optional[np.ndarray] = None, centres: Optional[np.ndarray] = None):
        labels = np.asarray(labels)
        self.identities = np.unique(labels)
        self.images = {int(i): np.flatnonzero(labels == i) for i in self.identities}
        self.per_identity = int(per_identity)
        if self.per_identity < 1:
            raise ValueError(f"per_identity must be >= 1, got {per_identity}")
        if min(len(v) for v in self.images.values()) < 1:
            raise ValueError("every identity needs at least one image")
        self.seed = int(seed)
        self.clusters = None if clusters is None else np.asarray(clusters)
        if self.clusters is not None and len(self.clusters) != len(self.identities):
            raise ValueError(f"Expected one cluster per identity ({len(self.identities)}), got {len(self.clusters)}")
        self.centres = centres

    def _rng(self, step: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(step)])

    def identities_for(self, step: int, count: int, *, kcs: bool) -> np.ndarray:
        if count > len(self.identities):
            raise ValueError(f"a batch of {count} identities needs at least that many identities, "
                             f"the data has {len(self.identities)}")
        rng = self._rng(step)
        if not kcs or self.clusters is None:
            return rng.choice(self.identities, count, replace=False)
        cluster = rng.choice(np.unique(self.clusters))
        order: List[int] = [int(cluster)]
        if self.centres is not None:
            d = np.sum((self.centres - self.centres[cluster]) ** 2, axis=1)
            order += [int(c) for c in np.argsort(d) if c != cluster]
        else:
            order += [int(c) for c in rng.permutation(np.unique(self.clusters)) if c != cluster]
        chosen: List[int] = []
        for c in order:
            pool = self.identities[self.clusters == c]
            take = min(count - len(chosen), len(pool))
            chosen += list(rng.choice(pool, take, replace=False))
            if len(chosen) == count:
                break
        return np.asarray(chosen)

    def batch(self, step: int, count: int, *, kcs: bool = False):
        """``(image indices, identity of each)`` for ``count`` identities x ``per_identity`` images."""
        rng = np.random.default_rng([self.seed, int(step), 1])
        ids = self.identities_for(step, count, kcs=kcs)
        index, who = [], []
        for i in ids:
            pool = self.images[int(i)]
            pick = rng.choice(pool, self.per_identity, replace=len(pool) < self.per_identity)
            index += list(pick)
            who += [int(i)] * self.per_identity
        return np.asarray(index), np.asarray(who)


def batch_identities_at(step: int, *, final: int, warmup_steps: int, doublings: int = 3, minimum: int = 2) -> int:
    """Identities per batch: ``final / 2**doublings`` at first (at least ``minimum``), doubled at evenly
    spaced warm-up steps until ``final``."""
    if warmup_steps <= 0 or doublings <= 0:
        return final
    stage = min(doublings, int(step * (doublings + 1) // warmup_steps))
    return max(min(minimum, final), final // 2 ** (doublings - stage))


def alpha_norm_at(step: int, *, final: float, warmup_steps: int, start_fraction: float = 0.1) -> float:
    """``alpha_norm`` rising linearly from ``start_fraction * final`` to ``final`` over the warm-up."""
    if warmup_steps <= 0:
        return float(final)
    t = min(1.0, step / warmup_steps)
    return float(final * (start_fraction + (1.0 - start_fraction) * t))
