"""Training configuration: YAML, validated strictly (an unknown key or impossible value is one line)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from quant_train import zoo
from xnorkit.errors import XnorkitError

WEIGHTS = ("binary", "ternary", *(f"int{b}" for b in range(2, 9)))


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "mlp"  # "mlp" (the hidden sizes below) or a zoo name (quant_train.zoo.NAMES)
    hidden: list[int] = field(default_factory=lambda: [256, 256, 256])
    weights: str = "binary"  # binary, ternary, int2 .. int8
    a_bits: int = 1  # 1: binary sign; 2..8: unsigned after ReLU
    input_bits: int = 5  # the integer pixels: 5 bits hold digits' 0..16, 8 bits MNIST's 0..255
    exit_weights: list[float] = field(default_factory=lambda: [1.0, 1.0])  # joint loss of early exits, then final

    @property
    def w_bits(self) -> int | str:
        return {"binary": 1, "ternary": "t"}.get(self.weights) or int(self.weights[3:])


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
        if expected is list and not all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0
                                        for v in value):
            raise XnorkitError(f"config: '{path}' must be a list of positive numbers, got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


def validate(cfg: Config) -> Config:
    checks = [
        (cfg.dataset in ("digits", "mnist"), "dataset", "must be digits or mnist"),
        (cfg.model.kind in ("mlp", *zoo.NAMES), "model.kind", f"must be mlp or one of {', '.join(zoo.NAMES)}"),
        (len(cfg.model.hidden) >= 1, "model.hidden", "needs at least one hidden layer"),
        (cfg.model.weights in WEIGHTS, "model.weights", f"must be one of {', '.join(WEIGHTS)}"),
        (1 <= cfg.model.a_bits <= 8, "model.a_bits", "must be 1..8"),
        (2 <= cfg.model.input_bits <= 16, "model.input_bits", "must be 2..16"),
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
