"""The pinned software stack and a check of what is installed (``lcefr env``)."""
from __future__ import annotations

import importlib.metadata as md
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Dict, List, Optional

__all__ = ["PINS", "StackReport", "check_stack", "nvcc_version"]

#: Exact versions the toolkit is tested with (setup.cfg pins the same).
PINS: Dict[str, str] = {
    "tensorflow": "2.16.2",
    "tf-keras": "2.16.0",
    "larq": "0.14.0",
    "larq-zoo": "2.4.0",
    "larq-compute-engine": "0.16.0",
    "protobuf": "3.20.3",
}
_OPENCV = ("opencv-python-headless", "opencv-python")


@dataclass
class StackReport:
    versions: Dict[str, Optional[str]]
    problems: List[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _version(dist: str) -> Optional[str]:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def nvcc_version() -> Optional[str]:
    """``release X.Y`` of the nvcc on PATH (or /usr/local/cuda), None when there is none."""
    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if shutil.os.path.exists("/usr/local/cuda/bin/nvcc") else None)
    if not nvcc:
        return None
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"release ([\d.]+)", out)
    return match.group(1) if match else out.strip().splitlines()[-1] if out.strip() else None


def check_stack() -> StackReport:
    """Versions of the stack and a list of problems (empty when it matches the pins)."""
    versions: Dict[str, Optional[str]] = {"python": platform.python_version()}
    problems: List[str] = []
    for dist, pin in PINS.items():
        found = _version(dist)
        versions[dist] = found
        if found is None:
            problems.append(f"{dist} is not installed (need {pin})")
        elif found != pin:
            problems.append(f"{dist} {found} is installed, lcefr needs {pin}")
    numpy = _version("numpy")
    versions["numpy"] = numpy
    if numpy is None or int(numpy.split(".")[0]) >= 2:
        problems.append(f"numpy {numpy} found, lcefr needs numpy < 2")
    cv = {d: _version(d) for d in _OPENCV}
    installed = [d for d, v in cv.items() if v]
    versions["opencv"] = next((cv[d] for d in installed), None)
    if len(installed) > 1:
        problems.append("both opencv-python and opencv-python-headless are installed; keep one")
    if not installed:
        problems.append("OpenCV is missing (pip install opencv-python-headless)")
    if platform.python_version_tuple()[:2] != ("3", "11"):
        problems.append(f"Python {platform.python_version()} is untested; lcefr is pinned for 3.11")
    versions["keras_backend"] = _keras_version(problems)
    versions["nvcc"] = nvcc_version()
    return StackReport(versions=versions, problems=problems)


def _keras_version(problems: List[str]) -> Optional[str]:
    """Which Keras ``tf.keras`` resolves to: "tf-keras X" (Keras 2) is what larq and LCE need."""
    try:
        import tensorflow as tf

        module = tf.keras.__name__
    except Exception as err:  # a broken TF install is exactly what this check reports
        problems.append(f"tensorflow does not import: {type(err).__name__}: {err}")
        return None
    if module.startswith("tf_keras"):
        import tf_keras

        return f"tf-keras {tf_keras.__version__}"
    import keras

    problems.append(f"tf.keras is Keras {keras.__version__}; set TF_USE_LEGACY_KERAS=1 before importing TensorFlow")
    return f"keras {keras.__version__}"
