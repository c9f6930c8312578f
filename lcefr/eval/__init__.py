"""Verification metrics as pure numpy functions (insightface's 10-fold protocol) and ROC plots."""
from lcefr.eval.plots import plot_roc
from lcefr.eval.verification import (
    TarAtFar,
    evaluate,
    flip_fuse,
    l2_normalize,
    roc_points,
    squared_l2_to_cosine,
    tar_at_far,
)

__all__ = [
    "evaluate",
    "tar_at_far",
    "TarAtFar",
    "l2_normalize",
    "flip_fuse",
    "squared_l2_to_cosine",
    "roc_points",
    "plot_roc",
]
