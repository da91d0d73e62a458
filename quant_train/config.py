"""Training configuration: YAML, validated strictly (an unknown key or impossible value is one line)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from xnorkit.errors import XnorkitError


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "binary_mlp"
    hidden: list[int] = field(default_factory=lambda: [256, 256, 256])
    input_bits: int = 5
    dropout: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 40
    batch_size: int = 64
    lr: float = 0.01
    weight_decay: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class HwConfig:
    target_cycles: int = 128  # initiation interval the folding solver aims for
    simulator: str = "verilator"


@dataclass(frozen=True)
class Config:
    dataset: str = "digits"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    hw: HwConfig = field(default_factory=HwConfig)

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT = Config()


def _build(cls: type, data: object, where: str):
    if not isinstance(data, dict):
        raise XnorkitError(f"config: '{where or 'top level'}' must be a mapping")
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in known:
            raise XnorkitError(f"config: unknown key '{path}'; allowed: {', '.join(known)}")
        default = getattr(cls(), key)
        if hasattr(default, "__dataclass_fields__"):
            kwargs[key] = _build(type(default), value, path)
            continue
        expected = type(default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or isinstance(value, bool) != isinstance(default, bool):
            raise XnorkitError(f"config: '{path}' must be {expected.__name__}, got {value!r}")
        if expected is list and not all(isinstance(v, int) and v > 0 for v in value):
            raise XnorkitError(f"config: '{path}' must be a list of positive integers, got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


def validate(cfg: Config) -> Config:
    checks = [
        (cfg.dataset in ("digits", "mnist"), "dataset", "must be digits or mnist"),
        (cfg.model.kind == "binary_mlp", "model.kind", "must be binary_mlp"),
        (len(cfg.model.hidden) >= 1, "model.hidden", "needs at least one hidden layer"),
        (2 <= cfg.model.input_bits <= 16, "model.input_bits", "must be 2..16"),
        (0.0 <= cfg.model.dropout < 1.0, "model.dropout", "must be in [0, 1)"),
        (cfg.train.epochs >= 1, "train.epochs", "must be >= 1"),
        (cfg.train.batch_size >= 2, "train.batch_size", "must be >= 2"),
        (cfg.train.lr > 0, "train.lr", "must be > 0"),
        (cfg.hw.target_cycles >= 1, "hw.target_cycles", "must be >= 1"),
        (cfg.hw.simulator in ("verilator", "icarus"), "hw.simulator", "must be verilator or icarus"),
    ]
    for ok, key, why in checks:
        if not ok:
            raise XnorkitError(f"config: '{key}' {why}")
    return cfg


def load(path: str | Path | None) -> Config:
    if path is None:
        return DEFAULT
    p = Path(path)
    if not p.is_file():
        raise XnorkitError(f"config file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise XnorkitError(f"config file {p} is not valid YAML: {str(e).splitlines()[0]}") from None
    return validate(_build(Config, data, ""))
