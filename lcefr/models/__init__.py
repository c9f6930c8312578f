"""The model zoo: named builders for 112x112 face embedding networks.

``create_model(name, **kw)`` builds a ``tf.keras.Model`` taking preprocessed faces (see
:mod:`lcefr.preprocess`) and returning an embedding through a full-precision head;
``list_models(pattern)`` lists the names, ``model_info(name)`` the facts known without building.
"""
from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from typing import Dict, List

from lcefr.registry import Registry, UnknownNameError

__all__ = [
    "MODELS",
    "ModelInfo",
    "register_model",
    "create_model",
    "list_models",
    "model_info",
    "INPUT_SHAPE",
    "UnknownNameError",
]

INPUT_SHAPE = (112, 112, 3)
MODELS = Registry("model")

_FAMILY_MODULES = (
    "quicknet",
    "binary_densenet",
    "binaryfacenet",
    "binaryfacenet2",
    "iresnet",
    "adabin_resnet",
    "mobilefacenet",
)


@dataclass(frozen=True)
class ModelInfo:
    """What is known about a registered model without building it."""

    name: str
    family: str
    binary: bool
    embedding_size: int
    lce_native: bool
    test: bool
    exact_probe: bool = True

    def to_dict(self) -> Dict:
        return asdict(self)


def register_model(
    *, family: str, binary: bool, embedding_size: int = 512, lce_native: bool = True, exact_probe: bool = True
):
    """Decorator registering a builder ``fn(*, input_shape, embedding_size, **kw) -> Model``.

    ``lce_native`` is False for models whose binary layers are known not to lower to LCE binary
    ops (the conversion audit then warns instead of failing). ``exact_probe`` picks the kind of
    random inference constants parity probes use (see
    :func:`lcefr.source.randomize_batchnorm`): False for models whose binarizers read
    sums of parallel branches, where exact dyadic constants cancel to exact zeros.
    """

    def add(fn):
        return MODELS.register(
            fn,
            family=family,
            binary=binary,
            embedding_size=embedding_size,
            lce_native=lce_native,
            test=fn.__name__.startswith("test_"),
            exact_probe=exact_probe,
        )

    return add


_loaded = False


def _load_families() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _FAMILY_MODULES:
            importlib.import_module(f"lcefr.models.{module}")


def list_models(pattern: str = "*", *, include_tests: bool = True) -> List[str]:
    """Registered model names matching the glob ``pattern`` (sorted)."""
    _load_families()
    names = MODELS.list(pattern)
    if not include_tests:
        names = [n for n in names if not MODELS.entry(n).tags["test"]]
    return names


def model_info(name: str) -> ModelInfo:
    _load_families()
    entry = MODELS.entry(name)
    return ModelInfo(name=name, **entry.tags)


def create_model(name: str, **kwargs):
    """Build the registered model ``name``; keyword arguments go to its builder.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the known names).
        ValueError: an argument such as ``input_shape`` is not usable.
    """
    _load_families()
    entry = MODELS.entry(name)
    kwargs.setdefault("embedding_size", entry.tags["embedding_size"])
    shape = tuple(kwargs.get("input_shape", INPUT_SHAPE))
    if len(shape) != 3 or shape[-1] != 3 or min(shape[:2]) < 32:
        raise ValueError(f"Expected an input shape HxWx3 with H, W >= 32 (default 112x112x3), got {shape}")
    kwargs["input_shape"] = shape
    if int(kwargs["embedding_size"]) < 1:
        raise ValueError(f"embedding_size must be positive, got {kwargs['embedding_size']}")
    model = entry.fn(**kwargs)
    model._name = name
    return model
