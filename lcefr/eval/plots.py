"""ROC plots of verification results (matplotlib, the ``[plot]`` extra, Agg canvas: no display needed)."""
from __future__ import annotations

import io
import os
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

from lcefr.fileio import write_atomic

__all__ = ["plot_roc"]


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "Plotting needs matplotlib, which is in lcefr's [plot] extra: pip install 'lcefr[plot]'"
        ) from err
    return Figure, FigureCanvasAgg


def plot_roc(
    curves: Mapping[str, Tuple[Sequence[float], Sequence[float]]],
    path: str,
    *,
    title: Optional[str] = None,
    log_far: bool = True,
) -> str:
    """Draw ROC curves, one per ``name -> (fpr, tpr)`` (e.g. from ``roc_points``), into an image file.

    The format follows the extension of ``path`` (``.png`` if none is given: ``.svg``, ``.pdf`` work
    too); the file is written atomically. With ``log_far`` the FAR axis is logarithmic and points at
    FAR 0 are left out. Returns ``path``.
    """
    if not curves:
        raise ValueError("Expected at least one curve to plot, got none")
    checked = {}
    for name, curve in curves.items():
        try:
            fpr, tpr = curve
        except (TypeError, ValueError):
            raise ValueError(f"Expected (fpr, tpr) for curve {name!r}, got {type(curve).__name__}") from None
        fpr = np.asarray(fpr, dtype=np.float64)
        tpr = np.asarray(tpr, dtype=np.float64)
        if fpr.ndim != 1 or fpr.shape != tpr.shape or fpr.size == 0:
            raise ValueError(f"Expected fpr and tpr of one 1-D length for curve {name!r}, got {fpr.shape} and {tpr.shape}")
        checked[str(name)] = (fpr, tpr)

    Figure, FigureCanvasAgg = _matplotlib()
    ext = os.path.splitext(path)[1].lower().lstrip(".") or "png"
    supported = FigureCanvasAgg.get_supported_filetypes()
    if ext not in supported:
        raise ValueError(f"Expected an image extension among {sorted(supported)}, got {path!r}")

    fig = Figure(figsize=(6, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, (fpr, tpr) in checked.items():
        if log_far:
            keep = fpr > 0
            fpr, tpr = fpr[keep], tpr[keep]
        ax.plot(fpr, tpr, label=name, linewidth=1.5)
    if log_far:
        ax.set_xscale("log")
    ax.set_xlabel("False accept rate (FAR)")
    ax.set_ylabel("True accept rate (TAR)")
    ax.set_ylim(0, 1.005)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=ext)
    write_atomic(path, buf.getvalue())
    return path
