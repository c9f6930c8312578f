"""The 10-fold pair-verification protocol of insightface (LFW, CFP-FP, AgeDB-30, CALFW, CPLFW), in numpy.

It reproduces ``recognition/arcface_torch/eval/verification.py`` of insightface (David Sandberg's
facenet lineage, Schroff et al., arXiv:1503.03832 for VAL@FAR): pair ``i`` is rows ``2i`` and
``2i + 1`` of the embeddings; the score is the squared L2 distance (``2 - 2 cos`` for unit vectors);
a pair is predicted "same" iff ``dist < threshold`` (strict); the pairs are cut into contiguous folds
exactly as ``sklearn.model_selection.KFold(n_splits, shuffle=False)`` cuts them; for each fold the
threshold (grid ``np.arange(0, 4, 0.01)``) that maximises accuracy on the other folds is applied to
the held-out fold, the first one on ties. VAL@FAR (grid ``np.arange(0, 4, 0.001)``): per fold the
threshold at which the training folds' FAR equals the target (interpolated, see below; 0.0 if no grid
threshold reaches the target, as in insightface), VAL and FAR measured with it on the held-out fold.
Inputs that insightface silently truncates (more rows than ``2 * len(issame)``) are an error here.

Two places where insightface's code gives no usable answer are made explicit:

* Repeated FAR values. The VAL@FAR threshold comes from ``interp1d(far, thresholds, kind='slinear')``
  over a grid on which FAR repeats (it is a step function of the threshold). SciPy <= 1.8 accepted
  that; SciPy >= 1.9 raises ``ValueError: Expect x to not have duplicates``. This module reproduces
  what SciPy 1.8 computed: linear interpolation between the *largest* threshold whose FAR is <= the
  target and the *smallest* threshold whose FAR is above it (two neighbours on the grid), and, when
  the target equals a FAR that repeats, the largest threshold with that FAR. The one difference:
  when the target equals the highest FAR on the grid and that FAR repeats, SciPy 1.8 returned 0.0
  (an empty knot interval); here it is again the largest threshold with that FAR.
* FAR targets the data cannot resolve. With ``n`` different-identity pairs in the training folds
  the smallest non-zero FAR is ``1 / n``; below it the interpolation invents a threshold between
  "no false accept" and "one false accept". Such a VAL@FAR is reported as unresolvable: ``evaluate``
  returns NaN for it and :func:`tar_at_far` says why.
"""
from __future__ import annotations

import operator
from dataclasses import asdict, dataclass
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

__all__ = [
    "evaluate",
    "tar_at_far",
    "TarAtFar",
    "l2_normalize",
    "flip_fuse",
    "squared_l2_to_cosine",
    "roc_points",
]

_ROC_STEP = 0.01
_VAL_STEP = 0.001


def _roc_thresholds() -> np.ndarray:
    return np.arange(0, 4, _ROC_STEP)


def _val_thresholds() -> np.ndarray:
    return np.arange(0, 4, _VAL_STEP)


# ---------------------------------------------------------------------------------------------
# Embedding helpers
# ---------------------------------------------------------------------------------------------


def l2_normalize(x) -> np.ndarray:
    """Rows of ``x`` divided by their L2 norm; all-zero rows stay zero (as ``sklearn.preprocessing.normalize``).

    Floating inputs keep their dtype, integer inputs become float64.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"Expected a 2-D array (rows, dim), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms == 0] = 1
    return x / norms[:, np.newaxis]


def flip_fuse(emb, emb_flipped) -> np.ndarray:
    """The insightface test-time embedding: ``emb + emb_flipped`` summed in float64, then L2-normalised.

    ``emb_flipped`` holds the embeddings of the horizontally flipped images, row for row.
    """
    a = np.asarray(emb, dtype=np.float64)
    b = np.asarray(emb_flipped, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"Expected embeddings and flipped embeddings of one shape, got {a.shape} and {b.shape}")
    return l2_normalize(a + b)


def squared_l2_to_cosine(t):
    """Cosine similarity equal to squared L2 distance ``t`` between unit vectors: ``1 - t / 2``."""
    if np.ndim(t) == 0:
        return 1.0 - float(t) / 2
    return 1.0 - np.asarray(t, dtype=np.float64) / 2


# ---------------------------------------------------------------------------------------------
# Validation and folds
# ---------------------------------------------------------------------------------------------


def _check_pairs(embeddings, actual_issame) -> Tuple[np.ndarray, np.ndarray]:
    emb = np.asarray(embeddings)
    if emb.ndim != 2:
        raise ValueError(f"Expected embeddings of shape (2 * pairs, dim), got shape {emb.shape}")
    if not np.issubdtype(emb.dtype, np.floating):
        if not (np.issubdtype(emb.dtype, np.integer) or emb.dtype == bool):
            raise ValueError(f"Expected real-valued embeddings, got dtype {emb.dtype}")
        emb = emb.astype(np.float64)
    issame = np.asarray(actual_issame)
    if issame.ndim != 1:
        raise ValueError(f"Expected a 1-D list of pair labels, got shape {issame.shape}")
    if issame.dtype != bool:
        if issame.size and not (np.issubdtype(issame.dtype, np.integer) and np.isin(issame, (0, 1)).all()):
            raise ValueError(f"Expected boolean pair labels (or 0/1), got dtype {issame.dtype}")
        issame = issame.astype(bool)
    if len(issame) == 0:
        raise ValueError("Expected at least one pair, got none")
    if emb.shape[0] != 2 * len(issame):
        raise ValueError(
            f"Expected 2 embedding rows per pair: {len(issame)} pairs need {2 * len(issame)} rows, got {emb.shape[0]}"
        )
    if not np.isfinite(emb).all():
        raise ValueError("Embeddings contain NaN or infinite values")
    return emb, issame


def _check_int(name: str, value, minimum: int) -> int:
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"Expected an integer {name}, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"Expected {name} >= {minimum}, got {value}")
    return value


def _check_far(far) -> float:
    far = float(far)
    if not 0 < far <= 1:
        raise ValueError(f"Expected a FAR target in (0, 1], got {far}")
    return far


def _kfold(n: int, n_splits: int) -> List[Tuple[np.ndarray, np.ndarray]]:
    """(train, test) index arrays, contiguous, as ``KFold(n_splits, shuffle=False)`` (first ``n % k`` folds one longer).

    ``n_splits == 1`` trains and tests on everything (insightface's ``LFold``).
    """
    if n_splits > n:
        raise ValueError(f"Expected at most one fold per pair: {n_splits} folds for {n} pairs")
    indices = np.arange(n)
    if n_splits == 1:
        return [(indices, indices)]
    sizes = np.full(n_splits, n // n_splits, dtype=int)
    sizes[: n % n_splits] += 1
    folds = []
    start = 0
    for size in sizes:
        test = indices[start : start + size]
        train = np.concatenate([indices[:start], indices[start + size :]])
        folds.append((train, test))
        start += size
    return folds


# ---------------------------------------------------------------------------------------------
# Distances and counts
# ---------------------------------------------------------------------------------------------


def _squared_l2(e1: np.ndarray, e2: np.ndarray) -> np.ndarray:
    # Computed in the embeddings' dtype (as insightface), compared in float64 (as numpy compares
    # a float32 array with float64 thresholds).
    return np.sum(np.square(np.subtract(e1, e2)), 1).astype(np.float64)


def _pca_squared_l2(e1: np.ndarray, e2: np.ndarray, train: np.ndarray, n_components: int) -> np.ndarray:
    """Distances after a PCA fitted on the training pairs (both members, centred) and re-normalisation."""
    rows = np.concatenate((e1[train], e2[train]), axis=0)
    if n_components > min(rows.shape):
        raise ValueError(
            f"Expected pca <= min(training rows, dim) = {min(rows.shape)}, got pca={n_components}"
        )
    mean = rows.mean(axis=0)
    _, _, vt = np.linalg.svd(rows - mean, full_matrices=False)
    components = vt[:n_components]
    p1 = l2_normalize((e1 - mean) @ components.T)
    p2 = l2_normalize((e2 - mean) @ components.T)
    return _squared_l2(p1, p2)


def _below(sorted_values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many values are strictly below each threshold."""
    return np.searchsorted(sorted_values, thresholds, side="left")


def _accuracy(dist: np.ndarray, issame: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    pos = np.sort(dist[issame])
    neg = np.sort(dist[~issame])
    correct = _below(pos, thresholds) + (len(neg) - _below(neg, thresholds))
    return correct / dist.size


def _tpr_fpr(dist: np.ndarray, issame: np.ndarray, thresholds: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    pos = np.sort(dist[issame])
    neg = np.sort(dist[~issame])
    tpr = _below(pos, thresholds) / len(pos) if len(pos) else np.zeros(len(thresholds))
    fpr = _below(neg, thresholds) / len(neg) if len(neg) else np.zeros(len(thresholds))
    return tpr, fpr


class _Roc(NamedTuple):
    tprs: np.ndarray  # (folds, thresholds), on each test fold
    fprs: np.ndarray
    accuracy: np.ndarray  # (folds,)
    best_thresholds: np.ndarray  # (folds,)


def _roc_folds(e1, e2, issame, folds, pca: int) -> _Roc:
    thresholds = _roc_thresholds()
    k = len(folds)
    tprs = np.zeros((k, len(thresholds)))
    fprs = np.zeros((k, len(thresholds)))
    accuracy = np.zeros(k)
    best_thresholds = np.zeros(k)
    dist = None if pca > 0 else _squared_l2(e1, e2)
    for i, (train, test) in enumerate(folds):
        if pca > 0:
            dist = _pca_squared_l2(e1, e2, train, pca)
        best = int(np.argmax(_accuracy(dist[train], issame[train], thresholds)))
        best_thresholds[i] = thresholds[best]
        tprs[i], fprs[i] = _tpr_fpr(dist[test], issame[test], thresholds)
        accuracy[i] = _accuracy(dist[test], issame[test], thresholds[best : best + 1])[0]
    return _Roc(tprs, fprs, accuracy, best_thresholds)


# ---------------------------------------------------------------------------------------------
# VAL @ FAR
# ---------------------------------------------------------------------------------------------


def _threshold_at_far(far: np.ndarray, thresholds: np.ndarray, target: float) -> float:
    """Threshold where the step curve ``far(thresholds)`` (non-decreasing) reaches ``target``.

    What ``interp1d(far, thresholds, kind='slinear')(target)`` gave on SciPy <= 1.8, where a degree-1
    B-spline through repeated x is right-continuous: between neighbouring FAR values ``f0 <= target < f1``
    it interpolates from the last threshold with FAR ``f0`` to the first with FAR ``f1``. At
    ``target == max(far)`` it returns the last threshold (SciPy 1.8 returned 0.0 when that FAR repeated).
    """
    if not far[0] <= target <= far[-1]:
        raise ValueError(f"FAR target {target} outside the FAR range [{far[0]}, {far[-1]}]")
    hi = int(np.searchsorted(far, target, side="right"))
    if hi == len(far):
        return float(thresholds[-1])
    lo = hi - 1
    x0, x1 = far[lo], far[hi]
    w = 1.0 / (x1 - x0)
    # The evaluation order of SciPy's de Boor step, so that results agree to the last bit.
    return float(thresholds[lo] * (w * (x1 - target)) + thresholds[hi] * (w * (target - x0)))


class _ValFar(NamedTuple):
    thresholds: np.ndarray  # (folds,)
    val: np.ndarray  # (folds,) on the test folds; NaN where a test fold has no same pairs
    far: np.ndarray  # (folds,) on the test folds; NaN where a test fold has no different pairs
    resolvable: bool
    reason: str


def _val_far_folds(dist: np.ndarray, issame: np.ndarray, folds, far_target: float) -> _ValFar:
    """insightface's ``calculate_val`` per fold, plus whether the data can resolve ``far_target``."""
    grid = _val_thresholds()
    k = len(folds)
    thresholds = np.full(k, np.nan)
    val = np.full(k, np.nan)
    far = np.full(k, np.nan)
    n_neg_train = np.zeros(k, dtype=int)
    no_same, no_diff = [], []
    for i, (train, test) in enumerate(folds):
        neg_train = np.sort(dist[train][~issame[train]])
        n_neg_train[i] = len(neg_train)
        if len(neg_train):
            far_train = _below(neg_train, grid) / len(neg_train)
            if far_train.max() >= far_target:
                thresholds[i] = _threshold_at_far(far_train, grid, far_target)
            else:
                thresholds[i] = 0.0
        d, s = dist[test], issame[test]
        if not s.any():
            no_same.append(i + 1)
        if s.all():
            no_diff.append(i + 1)
        if not np.isnan(thresholds[i]):
            accept = d < thresholds[i]
            if s.any():
                val[i] = np.count_nonzero(accept & s) / np.count_nonzero(s)
            if not s.all():
                far[i] = np.count_nonzero(accept & ~s) / np.count_nonzero(~s)
    problems = []
    worst = int(np.argmin(n_neg_train))
    if n_neg_train[worst] == 0 or 1.0 / n_neg_train[worst] > far_target:
        problems.append(
            f"FAR {far_target:g} needs at least {int(np.ceil(1.0 / far_target - 1e-9))} different-identity pairs "
            f"in the training folds, fold {worst + 1} has {n_neg_train[worst]}"
        )
    if no_same:
        problems.append(f"no same-identity pairs in test fold(s) {', '.join(map(str, no_same))}")
    if no_diff:
        problems.append(f"no different-identity pairs in test fold(s) {', '.join(map(str, no_diff))}")
    reason = "; ".join(problems)
    return _ValFar(thresholds, val, far, not problems, reason)


# ---------------------------------------------------------------------------------------------
# Public protocol
# ---------------------------------------------------------------------------------------------


def evaluate(embeddings, actual_issame, nrof_folds=10, pca=0, far_target=1e-3):
    """insightface's ``evaluate`` with AdaFace's per-fold thresholds: accuracy, ROC and VAL@FAR by k-fold.

    Args:
        embeddings: (2 * pairs, dim) array, pair ``i`` = rows ``2i`` and ``2i + 1``, already
            L2-normalised by the caller (as insightface's ``test()`` does; see :func:`flip_fuse` and
            :func:`l2_normalize`). Distances are computed in the array's own floating dtype.
        actual_issame: (pairs,) booleans, True for same-identity pairs.
        nrof_folds: number of contiguous folds (``KFold(shuffle=False)``: with ``n`` pairs the first
            ``n % nrof_folds`` folds hold one pair more); 1 trains and tests on all pairs.
        pca: if > 0, per fold a PCA with that many components is fitted on the training pairs' embeddings
            (centred), all embeddings are projected and re-normalised before the accuracy sweep
            (VAL@FAR uses the original embeddings, as in insightface).
        far_target: FAR at which VAL is measured.

    Returns:
        ``(tpr, fpr, accuracy, best_thresholds, val, val_std, far)``: ``tpr``/``fpr`` (400,) on the
        test folds at thresholds ``np.arange(0, 4, 0.01)``, averaged over folds; ``accuracy`` and
        ``best_thresholds`` (folds,) per held-out fold (thresholds in squared L2 distance); ``val``,
        ``val_std`` the mean and population std over folds of VAL at ``far_target``, ``far`` the mean
        FAR measured on the test folds. All three are NaN when the data cannot resolve ``far_target``
        (too few different-identity pairs in some training folds, or a test fold without same or
        different pairs); :func:`tar_at_far` gives the reason.
    """
    emb, issame = _check_pairs(embeddings, actual_issame)
    nrof_folds = _check_int("nrof_folds", nrof_folds, 1)
    pca = _check_int("pca", pca, 0)
    far_target = _check_far(far_target)
    folds = _kfold(len(issame), nrof_folds)
    e1, e2 = emb[0::2], emb[1::2]
    roc = _roc_folds(e1, e2, issame, folds, pca)
    vf = _val_far_folds(_squared_l2(e1, e2), issame, folds, far_target)
    tpr = np.mean(roc.tprs, 0)
    fpr = np.mean(roc.fprs, 0)
    if vf.resolvable:
        val, val_std, far = float(np.mean(vf.val)), float(np.std(vf.val)), float(np.mean(vf.far))
    else:
        val = val_std = far = float("nan")
    return tpr, fpr, roc.accuracy, roc.best_thresholds, val, val_std, far


@dataclass(frozen=True)
class TarAtFar:
    """True accept rate (VAL) at a false accept rate, by the k-fold protocol of :func:`evaluate`.

    ``value``, ``std``, ``far`` and the thresholds are None when ``resolvable`` is False; ``reason``
    then says why (empty otherwise). Thresholds are squared L2 distances (see :func:`squared_l2_to_cosine`).
    """

    far_target: float
    value: Optional[float]
    std: Optional[float]
    far: Optional[float]
    threshold: Optional[float]
    fold_thresholds: Optional[Tuple[float, ...]]
    resolvable: bool
    reason: str

    def to_dict(self) -> Dict:
        d = asdict(self)
        d["fold_thresholds"] = list(self.fold_thresholds) if self.fold_thresholds is not None else None
        return d


def tar_at_far(embeddings, actual_issame, far, *, nrof_folds=10) -> TarAtFar:
    """VAL at FAR ``far`` as in :func:`evaluate`, or the reason the pairs cannot resolve that FAR.

    A FAR of ``far`` is resolvable only when every fold's training part holds at least ``1 / far``
    different-identity pairs (LFW's 10 folds have 2700: 1e-3 yes, 1e-4 no) and every test fold has
    pairs of both kinds. ``threshold`` is the mean of the per-fold thresholds.
    """
    emb, issame = _check_pairs(embeddings, actual_issame)
    nrof_folds = _check_int("nrof_folds", nrof_folds, 1)
    far = _check_far(far)
    folds = _kfold(len(issame), nrof_folds)
    vf = _val_far_folds(_squared_l2(emb[0::2], emb[1::2]), issame, folds, far)
    if not vf.resolvable:
        return TarAtFar(far, None, None, None, None, None, False, vf.reason)
    return TarAtFar(
        far_target=far,
        value=float(np.mean(vf.val)),
        std=float(np.std(vf.val)),
        far=float(np.mean(vf.far)),
        threshold=float(np.mean(vf.thresholds)),
        fold_thresholds=tuple(float(t) for t in vf.thresholds),
        resolvable=True,
        reason="",
    )


def roc_points(embeddings, actual_issame) -> Tuple[np.ndarray, np.ndarray]:
    """The empirical ROC over all pairs (no folds), for plots: ``(fpr, tpr)``, both non-decreasing.

    One point per distinct distance ``d`` (pairs with ``dist <= d`` accepted), preceded by (0, 0);
    the last point is (1, 1).
    """
    emb, issame = _check_pairs(embeddings, actual_issame)
    if issame.all() or not issame.any():
        raise ValueError("Expected both same- and different-identity pairs for a ROC curve")
    dist = _squared_l2(emb[0::2], emb[1::2])
    order = np.argsort(dist, kind="stable")
    d, s = dist[order], issame[order]
    tp = np.cumsum(s)
    fp = np.cumsum(~s)
    last = np.r_[np.flatnonzero(d[1:] != d[:-1]), len(d) - 1]
    fpr = np.r_[0.0, fp[last] / np.count_nonzero(~s)]
    tpr = np.r_[0.0, tp[last] / np.count_nonzero(s)]
    return fpr, tpr
