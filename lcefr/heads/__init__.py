"""Margin softmax heads (ArcFace, CosFace, AdaFace) and distillation losses (EKD, QuantFace MSE).

``make_head(name, num_classes=..., embedding_size=...)`` builds a head by name
(``list_heads()``); heads are called as ``head(embeddings, norms, labels, training=...)`` and
return logits for softmax cross-entropy.
"""
from lcefr.heads.distill import EKD_ANCHORS, EKDLoss, embedding_mse, soft_rank
from lcefr.heads.margin import (
    HEADS,
    AdaFace,
    ArcFace,
    CombinedMargin,
    CosFace,
    adaface_logits,
    combined_margin_logits,
    list_heads,
    make_head,
)

__all__ = [
    "HEADS",
    "AdaFace",
    "ArcFace",
    "CombinedMargin",
    "CosFace",
    "adaface_logits",
    "combined_margin_logits",
    "list_heads",
    "make_head",
    "EKD_ANCHORS",
    "EKDLoss",
    "embedding_mse",
    "soft_rank",
]
