"""The training configuration: one frozen dataclass, YAML files and dotted ``key=value`` overrides."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = ["TrainConfig", "load_config", "apply_overrides", "parse_overrides", "config_to_yaml"]

from lcefr.vocab import DISTILL_LOSSES, HEAD_NAMES, OPTIMIZERS, STRATEGIES


@dataclass(frozen=True)
class TrainConfig:
    """Everything one `lcefr train` run depends on; written to ``DIR/config.yaml``."""

    model: str = "test_quicknet"
    data: str = "synthetic"
    head: str = "arcface"
    epochs: int = 3
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.5
    margin: Optional[float] = None
    scale: Optional[float] = None
    val_bin: Tuple[str, ...] = ()
    teacher: Optional[str] = None
    distill: Optional[str] = None
    distill_weight: float = 1.0
    init_from: Optional[str] = None
    seed: int = 0
    strategy: str = "default"
    augment: bool = True
    synth_identities: int = 100
    synth_per_identity: int = 20
    synth_lookalikes: bool = False
    steps_per_epoch: Optional[int] = None
    bop_threshold: float = 1e-8
    bop_gamma: float = 1e-4

    def validate(self) -> "TrainConfig":
        problems: List[str] = []
        if self.head not in HEAD_NAMES:
            problems.append(f"head {self.head!r} is not one of {', '.join(HEAD_NAMES)}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.strategy not in STRATEGIES:
            problems.append(f"strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if self.distill is not None and self.distill not in DISTILL_LOSSES:
            problems.append(f"distill {self.distill!r} is not one of {', '.join(DISTILL_LOSSES)}")
        if (self.distill is None) != (self.teacher is None):
            problems.append("--teacher and --distill go together")
        for name in ("epochs", "batch_size", "synth_identities", "synth_per_identity"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.synth_per_identity < 2 and self.data == "synthetic":
            problems.append("synth_per_identity must be >= 2")
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            problems.append("lr must be > 0, weight_decay and warmup_epochs >= 0")
        if problems:
            raise ValueError("; ".join(problems))
        return self


_FIELDS = {f.name: f for f in fields(TrainConfig)}


def _coerce(name: str, value: Any) -> Any:
    default = _FIELDS[name].default
    if name == "val_bin":
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        return tuple(str(v) for v in (value or ()))
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
        if default is not None:
            raise ValueError(f"{name} cannot be empty")
        return None
    kind = type(default) if default is not None else {"margin": float, "scale": float, "steps_per_epoch": int}.get(name, str)
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected {kind.__name__}, got {value!r}") from None


def apply_overrides(config: TrainConfig, overrides: Dict[str, Any]) -> TrainConfig:
    """A copy with ``overrides`` applied; unknown keys are an error (listing the known ones)."""
    unknown = sorted(set(overrides) - set(_FIELDS))
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}")
    return dataclasses.replace(config, **{k: _coerce(k, v) for k, v in overrides.items()})


def parse_overrides(items: Sequence[str]) -> Dict[str, str]:
    """``["lr=0.1", "epochs=2"]`` -> dict; dashes in keys become underscores."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"expected key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def load_config(path: Optional[str]) -> TrainConfig:
    """Defaults, updated by a YAML file of top-level keys."""
    if not path:
        return TrainConfig()
    import yaml

    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"no such config file: {path}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return apply_overrides(TrainConfig(), {str(k).replace("-", "_"): v for k, v in data.items()})


def config_to_yaml(config: TrainConfig) -> str:
    import yaml

    data = dataclasses.asdict(config)
    data["val_bin"] = list(config.val_bin)
    return yaml.safe_dump(data, sort_keys=False)
