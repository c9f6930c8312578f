"""KCS sampling, schedules and the weighted BCE of seed 003."""
import numpy as np
import pytest

from lcefr.personal.sampling import IdentitySampler, alpha_norm_at, batch_identities_at, kmeans
from lcefr.personal.train import bce_weight_for, weighted_bce


def test_kmeans_separates_clear_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[10, 0], [0, 10], [-10, -10]])
    points = np.concatenate([c + rng.normal(0, 0.5, (20, 2)) for c in centres])
    labels = kmeans(points, 3, seed=1)
    for block in range(3):
        assert len(set(labels[block * 20:(block + 1) * 20])) == 1
    assert len(set(labels)) == 3
    with pytest.raises(ValueError):
        kmeans(points, 0)


def test_kcs_batches_stay_in_one_cluster_and_uniform_ones_do_not():
    labels = np.repeat(np.arange(40), 3)
    clusters = np.repeat(np.arange(4), 10)  # identities 0-9 cluster 0, ...
    sampler = IdentitySampler(labels, per_identity=2, seed=3, clusters=clusters)
    mixed = 0
    for step in range(20):
        index, who = sampler.batch(step, 8, kcs=True)
        assert len(index) == 16 and len(set(who)) == 8
        assert len({c for c in clusters[who]}) == 1
        assert np.array_equal(labels[index], who)
        _, uni = sampler.batch(step, 8, kcs=False)
        mixed += len(set(clusters[uni])) > 1
    assert mixed > 15
    a, _ = sampler.batch(7, 8, kcs=True)
    b, _ = sampler.batch(7, 8, kcs=True)
    assert np.array_equal(a, b)  # a resumed run draws the same batches


def test_small_clusters_are_topped_up_from_the_nearest():
    labels = np.arange(12)
    clusters = np.array([0] * 3 + [1] * 4 + [2] * 5)
    centres = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0]])
    sampler = IdentitySampler(labels, per_identity=1, seed=0, clusters=clusters, centres=centres)
    for step in range(20):
        _, who = sampler.batch(step, 6, kcs=True)
        who = set(who)
        assert len(who) == 6
        # clusters 0 and 2 are far apart: topping up never reaches across cluster 1 to the other end
        assert not (who & {0, 1, 2} and who & {7, 8, 9, 10, 11})
        assert who >= {0, 1, 2} or who >= {3, 4, 5, 6} or who >= {7, 8, 9, 10, 11}


def test_batch_doubles_three_times_during_warm_up():
    sizes = [batch_identities_at(s, final=32, warmup_steps=100) for s in range(0, 140, 5)]
    assert sizes[0] == 4 and sizes[-1] == 32
    assert sorted(set(sizes)) == [4, 8, 16, 32] and sizes == sorted(sizes)
    assert batch_identities_at(0, final=8, warmup_steps=100) == 2  # never fewer than two identities
    assert alpha_norm_at(0, final=1e-4, warmup_steps=10) == pytest.approx(1e-5)
    assert alpha_norm_at(50, final=1e-4, warmup_steps=10) == pytest.approx(1e-4)


def test_lambda_and_weighted_bce():
    assert bce_weight_for(16, 2.0) == pytest.approx(1 - 2 / 16)
    assert bce_weight_for(2, 2.0) == 0.5
    logits = np.array([[2.0, -1.0], [0.5, 3.0]], np.float32)
    same = np.eye(2, dtype=bool)
    lam = 0.75
    sp = lambda v: np.log1p(np.exp(v))  # noqa: E731
    want = (lam * (sp(-2.0) + sp(-3.0)) + (1 - lam) * (sp(-1.0) + sp(0.5))) / 2
    assert float(weighted_bce(logits, same, lam)) == pytest.approx(want, rel=1e-5)
