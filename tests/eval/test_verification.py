"""lcefr.eval.verification: hand-checked cases, then insightface's own numbers (fixture)."""
import dataclasses
import hashlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from lcefr.eval import verification as V
from lcefr.eval import (
    TarAtFar,
    evaluate,
    flip_fuse,
    l2_normalize,
    plot_roc,
    roc_points,
    squared_l2_to_cosine,
    tar_at_far,
)

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "verification", "insightface_reference.json")
ROC_GRID = np.arange(0, 4, 0.01)


def pairs_from_distances(x):
    """1-D embeddings (0, x_i) for pair i, so that the squared distance x_i**2 is exact.

    Not unit vectors: ``evaluate`` only uses distances, and dyadic x (0.5, 0.75, 1.5, 1.75) give
    exact squares, so every comparison with a threshold below can be checked by hand.
    """
    x = np.asarray(x, dtype=np.float64)
    emb = np.zeros((2 * len(x), 1))
    emb[1::2, 0] = x
    return emb


def hand_case():
    """20 pairs, 10 folds of 2: pair 2k is a same pair, pair 2k+1 a different pair.

    Same-pair distances 0.25, except fold 4 (index 3): 2.25 (a hard positive).
    Different-pair distances 3.0625, except fold 8 (index 7): 0.5625 (an impostor).
    """
    p = np.full(10, 0.5)
    p[3] = 1.5
    n = np.full(10, 1.75)
    n[7] = 0.75
    x = np.empty(20)
    x[0::2], x[1::2] = p, n
    issame = np.zeros(20, dtype=bool)
    issame[0::2] = True
    return pairs_from_distances(x), issame


# ------------------------------------------------------------------------------------------------
# Hand-checked protocol
# ------------------------------------------------------------------------------------------------


def test_hand_case_accuracy_thresholds_and_roc():
    emb, issame = hand_case()
    tpr, fpr, accuracy, best_thresholds, val, val_std, far = evaluate(emb, issame)
    # Folds other than 4 and 8 train on 9 same pairs (8 at 0.25, one at 2.25) and 9 different
    # pairs (8 at 3.0625, one at 0.5625). Training accuracy by threshold t (accept iff dist < t):
    #   t <= 0.25: 9/18;  (0.25, 0.5625]: 17/18;  (0.5625, 2.25]: 16/18;  (2.25, 3.0625]: 17/18.
    # The maximum 17/18 is reached twice; the first one wins: t = 0.26 (first grid point > 0.25).
    # Their test fold (0.25 same, 3.0625 different) is then right twice: accuracy 1.
    # Fold 4 trains on 9 same pairs at 0.25 and 8 + 1 impostor: 18/18 on (0.25, 0.5625] -> t = 0.26;
    # its test same pair at 2.25 is rejected: accuracy 1/2.
    # Fold 8 trains on 8 + 1 hard same pairs and 9 different pairs at 3.0625: 18/18 on (2.25, 3.0625];
    # 2.25 itself is a grid point and is not accepted (strict <), so t = 2.26; its test impostor
    # at 0.5625 is accepted: accuracy 1/2.
    np.testing.assert_array_equal(accuracy, [1, 1, 1, 0.5, 1, 1, 1, 0.5, 1, 1])
    expected = np.full(10, ROC_GRID[26])
    expected[7] = ROC_GRID[226]
    np.testing.assert_array_equal(best_thresholds, expected)
    np.testing.assert_allclose(best_thresholds[[0, 7]], [0.26, 2.26], rtol=0, atol=1e-15)
    # TPR on the test folds, averaged: the same pair of a fold is accepted from t > 0.25 in 9 folds
    # and from t > 2.25 in fold 4. FPR: the impostor from t > 0.5625, the others from t > 3.0625.
    expected_tpr = np.where(ROC_GRID > 2.25, 1.0, np.where(ROC_GRID > 0.25, 0.9, 0.0))
    expected_fpr = np.where(ROC_GRID > 3.0625, 1.0, np.where(ROC_GRID > 0.5625, 0.1, 0.0))
    np.testing.assert_array_equal(tpr, expected_tpr)
    np.testing.assert_array_equal(fpr, expected_fpr)
    assert tpr.shape == fpr.shape == (400,)
    # 9 different pairs in each fold's training part cannot resolve FAR 1e-3.
    assert math.isnan(val) and math.isnan(val_std) and math.isnan(far)


def test_strict_less_at_a_grid_point():
    # Both distances sit exactly on grid points (0.25 = grid[25], 2.25 = grid[225]).
    emb, issame = hand_case()
    assert ROC_GRID[25] == 0.25 and ROC_GRID[225] == 2.25
    tpr = evaluate(emb, issame)[0]
    assert tpr[25] == 0.0 and tpr[26] == 0.9
    assert tpr[225] == 0.9 and tpr[226] == 1.0


def test_first_maximum_wins_on_ties():
    # Two same pairs at 0.25 and two different pairs at 3.0625, one impostor at 0.5625 and one hard
    # same pair at 2.25, with nrof_folds=1 (train = test = all 6 pairs): accuracy 5/6 on
    # (0.25, 0.5625] and again on (2.25, 3.0625]; argmax keeps the first: 0.26.
    emb = pairs_from_distances([0.5, 0.5, 1.5, 1.75, 1.75, 0.75])
    issame = [True, True, True, False, False, False]
    _, _, accuracy, best, *_ = evaluate(emb, issame, nrof_folds=1)
    assert best[0] == ROC_GRID[26]
    assert accuracy[0] == 5 / 6


def test_val_at_far_hand_case_uses_neighbouring_grid_thresholds():
    emb, issame = hand_case()
    r = tar_at_far(emb, issame, 0.5)
    # Grid step 0.001. In the 9 folds whose training part has the impostor, training FAR is 0 up to
    # t = 0.562, 1/9 from 0.563 to 3.062 (repeated 2500 times) and 1 from 3.063. FAR 0.5 lies between
    # the last threshold with FAR 1/9 (3.062) and the first with FAR 1 (3.063):
    #   t = 3.062 + (0.5 - 1/9) / (1 - 1/9) * 0.001 = 3.0624375
    # Fold 8's training part has FAR 0 up to 3.062 and 1 from 3.063: t = 3.062 + 0.5 * 0.001 = 3.0625.
    # (Taking the smallest threshold with FAR 1/9 instead would give 0.563 + 0.4375 * 2.5 = 1.656.)
    expected = np.full(10, 3.0624375)
    expected[7] = 3.0625
    np.testing.assert_allclose(r.fold_thresholds, expected, rtol=0, atol=1e-12)
    # Every test same pair (<= 2.25) is accepted; only fold 8's impostor (0.5625) is: FAR 1/10.
    assert r.resolvable and r.reason == ""
    assert r.value == 1.0 and r.std == 0.0 and r.far == pytest.approx(0.1, abs=1e-15)
    assert r.threshold == pytest.approx(np.mean(expected), abs=1e-12)
    assert r.to_dict()["fold_thresholds"] == list(r.fold_thresholds)


def test_val_at_far_equal_to_a_repeated_far_takes_the_last_threshold():
    emb, issame = hand_case()
    r = tar_at_far(emb, issame, 1 / 9)
    # FAR 1/9 is reached on 0.563 .. 3.062 in 9 folds: the last one (3.062) is used, as SciPy 1.8 did.
    # Fold 8 never has FAR 1/9: 3.062 + (1/9) * 0.001.
    expected = np.full(10, 3.062)
    expected[7] = 3.062 + 0.001 / 9
    np.testing.assert_allclose(r.fold_thresholds, expected, rtol=0, atol=1e-12)


def test_threshold_at_far_reproduces_scipy_1_8_slinear_on_repeated_far():
    # Expected values: scipy 1.8.1, interp1d(far, thresholds, kind='slinear')(target).
    far = np.array([0, 0, 0, 0.0005, 0.0005, 0.002, 0.002, 0.01, 0.01])
    thresholds = np.arange(len(far)) * 0.001
    scipy_1_8 = {
        0.0: 0.002,
        0.0002: 0.0024000000000000002,
        0.0005: 0.004,
        0.001: 0.004333333333333333,
        0.002: 0.006,
        0.005: 0.0063750000000000005,
    }
    for target, expected in scipy_1_8.items():
        assert V._threshold_at_far(far, thresholds, target) == pytest.approx(expected, abs=1e-15), target
    # At the top, SciPy 1.8 returned 0.0 (empty knot interval); the rule "last threshold with the
    # target's FAR" gives 0.008.
    assert V._threshold_at_far(far, thresholds, 0.01) == thresholds[-1]
    with pytest.raises(ValueError):
        V._threshold_at_far(far, thresholds, 0.02)


def test_unresolvable_far_says_why():
    emb, issame = hand_case()
    r = tar_at_far(emb, issame, 1e-3)
    assert not r.resolvable
    assert r.value is r.std is r.far is r.threshold is r.fold_thresholds is None
    assert "needs at least 1000 different-identity pairs" in r.reason and "has 9" in r.reason
    assert tar_at_far(emb, issame, 1 / 9).resolvable  # 1/9 is the smallest FAR 9 pairs can show
    assert not tar_at_far(emb, issame, 0.1).resolvable


def test_test_fold_without_one_kind_is_unresolvable():
    emb, issame = hand_case()
    issame = issame.copy()
    issame[0] = False  # fold 1 now holds two different pairs
    r = tar_at_far(emb, issame, 0.5)
    assert not r.resolvable
    assert r.reason == "no same-identity pairs in test fold(s) 1"
    assert math.isnan(evaluate(emb, issame, far_target=0.5)[4])


def test_kfold_layout_as_sklearn():
    folds = V._kfold(23, 10)
    # KFold(10) on 23 samples: the first 23 % 10 = 3 folds get 3, the other 7 get 2, contiguous.
    assert [len(test) for _, test in folds] == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    np.testing.assert_array_equal(np.concatenate([test for _, test in folds]), np.arange(23))
    np.testing.assert_array_equal(folds[1][1], [3, 4, 5])
    for train, test in folds:
        np.testing.assert_array_equal(np.sort(np.r_[train, test]), np.arange(23))
    np.testing.assert_array_equal(folds[1][0], np.r_[0:3, 6:23])
    [(train, test)] = V._kfold(5, 1)
    np.testing.assert_array_equal(train, test)
    with pytest.raises(ValueError, match="10 folds for 9 pairs"):
        V._kfold(9, 10)


def test_uneven_folds_through_evaluate():
    # 23 pairs: same pairs at distance 0.25 except pair 4 (fold 2 = pairs 3..5) at 2.25.
    x = np.where(np.arange(23) % 2 == 0, 0.5, 1.75)
    x[4] = 1.5
    issame = np.arange(23) % 2 == 0
    _, _, accuracy, best, *_ = evaluate(pairs_from_distances(x), issame)
    assert accuracy.shape == best.shape == (10,)
    # Fold 2 (pairs 3, 4, 5) loses pair 4; the others are perfect.
    np.testing.assert_array_equal(accuracy, [1, 2 / 3, 1, 1, 1, 1, 1, 1, 1, 1])


# ------------------------------------------------------------------------------------------------
# insightface's own numbers (scripts/insightface_reference.py)
# ------------------------------------------------------------------------------------------------


def synthetic_pairs(n_pairs, dim, seed, noise, dtype):
    """The generator of scripts/insightface_reference.py (the fixture's input digest guards the copy)."""
    rng = np.random.default_rng(seed)
    issame = rng.random(n_pairs) < 0.5
    a = rng.standard_normal((n_pairs, dim))
    b = rng.standard_normal((n_pairs, dim))
    b = np.where(issame[:, None], a + noise * b, b)
    emb = np.empty((2 * n_pairs, dim))
    emb[0::2] = a
    emb[1::2] = b
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    return emb.astype(dtype), issame


def _reference():
    with open(FIXTURE) as f:
        return json.load(f)


REFERENCE_CASES = _reference()["cases"]


@pytest.mark.parametrize("case", REFERENCE_CASES, ids=[c["name"] for c in REFERENCE_CASES])
def test_matches_insightface(case):
    emb, issame = synthetic_pairs(case["n_pairs"], case["dim"], case["seed"], case["noise"], case["dtype"])
    digest = hashlib.sha256(emb.tobytes() + issame.tobytes()).hexdigest()
    assert digest == case["input_sha256"], "the regenerated inputs differ from those insightface saw"

    tpr, fpr, accuracy, best_thresholds, *_ = evaluate(emb, issame, nrof_folds=case["nrof_folds"], pca=case["pca"])
    np.testing.assert_array_equal(accuracy, case["accuracy"])
    np.testing.assert_array_equal(best_thresholds, case["best_thresholds"])
    np.testing.assert_allclose(tpr, case["tpr"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(fpr, case["fpr"], rtol=0, atol=1e-12)

    folds = V._kfold(case["n_pairs"], case["nrof_folds"])
    dist = V._squared_l2(emb[0::2], emb[1::2])
    for key, ref in case["val"].items():
        far_target = float(key)
        # Per fold, resolvable or not, the same thresholds and rates as insightface's calculate_val.
        vf = V._val_far_folds(dist, issame, folds, far_target)
        np.testing.assert_allclose(vf.thresholds, ref["fold_thresholds"], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(vf.val, ref["fold_val"])
        np.testing.assert_array_equal(vf.far, ref["fold_far"])

        r = tar_at_far(emb, issame, far_target, nrof_folds=case["nrof_folds"])
        val, val_std, far = evaluate(emb, issame, pca=case["pca"], far_target=far_target)[4:]
        if r.resolvable:
            assert r.value == pytest.approx(ref["val"], rel=0, abs=1e-12)
            assert r.std == pytest.approx(ref["val_std"], rel=0, abs=1e-12)
            assert r.far == pytest.approx(ref["far"], rel=0, abs=1e-12)
            assert (val, val_std, far) == (r.value, r.std, r.far)
        else:
            # 600 pairs: about 270 different pairs per training part cannot resolve FAR 1e-3, where
            # insightface still prints a number.
            assert case["n_pairs"] == 600 and far_target == 1e-3
            assert "needs at least 1000" in r.reason
            assert math.isnan(val) and math.isnan(val_std) and math.isnan(far)


def test_reference_fixture_exercises_repeated_far():
    # The FAR-on-training curves of the 6000-pair case repeat values thousands of times (what SciPy
    # >= 1.9 refuses), and FAR 1e-3 is resolvable there.
    case = next(c for c in REFERENCE_CASES if c["name"] == "n6000_pca0")
    emb, issame = synthetic_pairs(case["n_pairs"], case["dim"], case["seed"], case["noise"], case["dtype"])
    dist = V._squared_l2(emb[0::2], emb[1::2])
    train, _ = V._kfold(case["n_pairs"], 10)[0]
    neg = np.sort(dist[train][~issame[train]])
    far_train = V._below(neg, np.arange(0, 4, 0.001)) / len(neg)
    assert len(np.unique(far_train)) < len(far_train) - 1000
    assert tar_at_far(emb, issame, 1e-3).resolvable


# ------------------------------------------------------------------------------------------------
# Input checks and helpers
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "embeddings, issame, kwargs, message",
    [
        (np.zeros((5, 2)), [True, False], {}, "need 4 rows, got 5"),
        (np.zeros((4,)), [True, False], {}, "shape"),
        (np.zeros((4, 2)), [0.5, 1.0], {}, "boolean pair labels"),
        (np.zeros((4, 2)), [2, 1], {}, "boolean pair labels"),
        (np.full((4, 2), np.nan), [True, False], {}, "NaN"),
        (np.zeros((0, 2)), [], {}, "at least one pair"),
        (np.zeros((4, 2)), [True, False], {"nrof_folds": 0}, "nrof_folds >= 1"),
        (np.zeros((4, 2)), [True, False], {"nrof_folds": 2.5}, "integer nrof_folds"),
        (np.zeros((4, 2)), [True, False], {"nrof_folds": 3}, "3 folds for 2 pairs"),
        (np.zeros((4, 2)), [True, False], {"far_target": 0}, "FAR target"),
        (np.eye(40, 3), [True, False] * 10, {"pca": 4}, "pca <= min"),
    ],
)
def test_evaluate_rejects_bad_input(embeddings, issame, kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate(embeddings, issame, **kwargs)


def test_labels_as_ints_and_lists():
    emb, issame = hand_case()
    a = evaluate(emb, issame)
    b = evaluate(emb.tolist(), issame.astype(int).tolist())
    np.testing.assert_array_equal(a[2], b[2])
    np.testing.assert_array_equal(a[3], b[3])


def test_pca_is_fitted_on_centred_data_and_ignores_rotations():
    emb, issame = synthetic_pairs(400, 6, 7, 1.0, "float64")
    reference = evaluate(emb, issame, pca=3, far_target=0.05)
    # Centring: a common shift of all embeddings leaves the projected distances unchanged.
    shifted = evaluate(emb + 3.0, issame, pca=3, far_target=0.05)
    # The principal subspace turns with the data: a rotation changes nothing either.
    q = np.linalg.qr(np.random.default_rng(0).standard_normal((6, 6)))[0]
    rotated = evaluate(emb @ q, issame, pca=3, far_target=0.05)
    for other in (shifted, rotated):
        np.testing.assert_array_equal(other[2], reference[2])
        np.testing.assert_array_equal(other[3], reference[3])
        np.testing.assert_allclose(other[0], reference[0], rtol=0, atol=1e-12)
    # Projection and re-normalisation do change the accuracy sweep, but not VAL@FAR (as insightface).
    plain = evaluate(emb, issame, far_target=0.05)
    assert not np.array_equal(plain[2], reference[2])
    assert plain[4:] == reference[4:]


def test_l2_normalize_flip_fuse_and_cosine():
    x = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    y = l2_normalize(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)
    assert l2_normalize([[1, 1]]).dtype == np.float64
    fused = flip_fuse(np.array([[1.0, 0.0]], dtype=np.float32), np.array([[0.0, 1.0]], dtype=np.float32))
    assert fused.dtype == np.float64
    np.testing.assert_allclose(fused, [[2 ** -0.5, 2 ** -0.5]], rtol=1e-15)
    with pytest.raises(ValueError):
        flip_fuse(np.zeros((2, 3)), np.zeros((3, 3)))
    assert squared_l2_to_cosine(0) == 1.0 and squared_l2_to_cosine(4.0) == -1.0
    np.testing.assert_array_equal(squared_l2_to_cosine([0.0, 2.0, 1.24]), [1.0, 0.0, 0.38])


def test_roc_points_with_tied_distances():
    # Distances 0.25 (same), 0.5625 (different), 0.5625 (same), 1 (different).
    emb = pairs_from_distances([0.5, 0.75, 0.75, 1.0])
    fpr, tpr = roc_points(emb, [True, False, True, False])
    np.testing.assert_array_equal(fpr, [0, 0, 0.5, 1])
    np.testing.assert_array_equal(tpr, [0, 0.5, 1, 1])
    with pytest.raises(ValueError, match="both same- and different"):
        roc_points(emb, [True] * 4)


def test_tar_at_far_dataclass_is_frozen():
    r = TarAtFar(1e-3, None, None, None, None, None, False, "why")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.value = 1.0


# ------------------------------------------------------------------------------------------------
# Plots and imports
# ------------------------------------------------------------------------------------------------


def test_plot_roc_writes_png_and_svg(tmp_path):
    pytest.importorskip("matplotlib")
    emb, issame = synthetic_pairs(300, 8, 1, 1.0, "float64")
    curves = {"a": roc_points(emb, issame), "b": ([0.0, 0.01, 1.0], [0.0, 0.5, 1.0])}
    png = tmp_path / "out" / "roc.png"
    assert plot_roc(curves, str(png), title="ROC") == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "roc.svg"
    plot_roc(curves, str(svg), log_far=False)
    assert b"<svg" in svg.read_bytes()[:500]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out", "roc.png", "roc.svg"]
    with pytest.raises(ValueError, match="extension"):
        plot_roc(curves, str(tmp_path / "roc.xyz"))
    with pytest.raises(ValueError, match="curve 'c'"):
        plot_roc({"c": ([0, 1], [0])}, str(png))


def test_plot_roc_without_matplotlib(monkeypatch, tmp_path):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"lcefr\[plot\]"):
        plot_roc({"a": ([0, 1], [0, 1])}, str(tmp_path / "roc.png"))
    assert not (tmp_path / "roc.png").exists()


def test_import_needs_neither_tensorflow_nor_matplotlib():
    code = (
        "import sys, lcefr.eval, lcefr.eval.verification; "
        "bad = [m for m in ('tensorflow', 'matplotlib', 'scipy', 'sklearn') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
