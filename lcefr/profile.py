"""Exact size and MAC accounting from larq's model profile, for the backbone and the whole model."""
from __future__ import annotations

import math
from typing import Dict

import larq as lq

from lcefr.layers import HEAD_PREFIX

__all__ = ["profile_counts", "summarize"]


def _counts(layer_profiles) -> Dict[str, int]:
    params = sum(lp.weight_count() for lp in layer_profiles)
    binary = sum(lp.op_count("mac", 1) or 0 for lp in layer_profiles)
    floating = sum(lp.op_count("mac", 32) or 0 for lp in layer_profiles)
    bits = sum(lp.memory for lp in layer_profiles)
    return {
        "params": int(params),
        "binary_macs": int(binary),
        "float_macs": int(floating),
        "memory_bytes": int(math.ceil(bits / 8)),
    }


def profile_counts(model) -> Dict[str, Dict[str, int]]:
    """``{"backbone": counts, "total": counts}``; the backbone is every layer outside the head.

    Counts follow larq's ``ModelProfile``: parameters as larq counts them (BatchNorm folded to
    two per channel), MACs split by precision (1-bit vs 32-bit), memory = ceil(bits / 8).
    """
    profile = lq.models.ModelProfile(model)
    layers = profile.layer_profiles
    backbone = [lp for lp in layers if not lp.name.startswith(HEAD_PREFIX)]
    return {"backbone": _counts(backbone), "total": _counts(layers)}


def summarize(name: str, model) -> Dict:
    """The ``lcefr models summary --json`` record for a built model."""
    counts = profile_counts(model)
    return {
        "name": name,
        "input_shape": [int(d) for d in model.input_shape[1:]],
        "embedding_size": int(model.output_shape[-1]),
        **counts,
    }
