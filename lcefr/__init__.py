"""lcefr: binarized face recognition from Larq/Keras training to measured FPS on embedded boards.

Importing this package selects Keras 2 (``tf-keras``) for TensorFlow, which larq and the
Larq Compute Engine converter need; Keras 3 breaks both.
"""
import os as _os
import sys as _sys

__version__ = "0.1.0"
__all__ = ["__version__", "KerasModeError"]


class KerasModeError(ImportError):
    """Raised when TensorFlow is (or would be) running Keras 3 instead of tf-keras."""


def _select_legacy_keras() -> None:
    value = _os.environ.get("TF_USE_LEGACY_KERAS")
    if value is None:
        _os.environ["TF_USE_LEGACY_KERAS"] = "1"
    elif value.strip().lower() not in ("1", "true", "yes"):
        raise KerasModeError(
            f"lcefr needs tf-keras (Keras 2) but TF_USE_LEGACY_KERAS={value!r}; unset it or set it to 1"
        )
    keras = _sys.modules.get("keras")
    version = getattr(keras, "__version__", "") if keras is not None else ""
    if version.startswith("3"):
        raise KerasModeError(
            f"Keras {version} was imported before lcefr; import lcefr (or set TF_USE_LEGACY_KERAS=1) "
            "before keras/tensorflow, larq and LCE need tf-keras"
        )


_select_legacy_keras()
if _os.environ.get("LCEFR_VERBOSE", "").strip().lower() in ("", "0", "false", "no", "off"):
    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # LCEFR_VERBOSE=1: TensorFlow's INFO lines too
