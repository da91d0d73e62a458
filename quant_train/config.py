"""Training configuration: YAML validated by a pydantic schema. An unknown key or an impossible value is
one line naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from xnorkit.errors import XnorkitError
from xnorkit.quant_train import zoo
from xnorkit.yamlfile import load_plain

WEIGHTS = ("binary", "xnor", "ternary", *(f"int{b}" for b in range(2, 9)), *(f"dorefa{b}" for b in range(2, 9)))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ModelConfig(_Section):
    kind: str = "mlp"  # "mlp" (the hidden sizes below) or a zoo name (quant_train.zoo.NAMES)
    hidden: list[int] = Field(default_factory=lambda: [256, 256], min_length=1)  # fits the iCE40 UP5K
    weights: str = "binary"  # binary (BNN), xnor (XNOR-Net alpha per channel), ternary, int2..int8, dorefa2..dorefa8
    a_bits: int = Field(1, ge=1, le=8)  # 1: binary sign; 2..8: unsigned after ReLU
    activations: Literal["learned", "dorefa"] = "learned"  # k-bit scale: learned, or DoReFa's clip to [0, 1]
    input_bits: int = Field(5, ge=2, le=16)  # integer pixels: 5 bits hold digits' 0..16, 8 bits MNIST's 0..255
    exit_weights: list[float] = Field(default_factory=lambda: [1.0])  # one per early exit; the final output weighs 1
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # after each hidden layer of an MLP (FINN's LFC uses 0.2)
    survival: float = Field(1.0, gt=0.0, le=1.0)  # resnet: stochastic depth, the last block's survival probability

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in ("mlp", *zoo.NAMES):
            raise ValueError(f"must be mlp or one of {', '.join(zoo.NAMES)}")
        return v

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: str) -> str:
        if v not in WEIGHTS:
            raise ValueError(f"must be one of {', '.join(WEIGHTS)}")
        return v

    @field_validator("hidden")
    @classmethod
    def _hidden(cls, v: list[int]) -> list[int]:
        if any(h < 1 for h in v):
            raise ValueError("must be positive layer widths")
        return v

    @property
    def w_bits(self) -> int | str:
        """The zoo's weight spec (quant_train.zoo.weight_quant)."""
        if self.weights.startswith("int"):
            return int(self.weights[3:])
        return {"binary": 1, "ternary": "t"}.get(self.weights, self.weights)

    @property
    def a_spec(self) -> int | str:
        """The zoo's activation spec (quant_train.zoo.activation)."""
        return f"dorefa{self.a_bits}" if self.activations == "dorefa" and self.a_bits > 1 else self.a_bits


class TrainConfig(_Section):
    epochs: int = Field(40, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(0.01, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    seed: int = 0
    clip_weights: bool = True  # BNN: latent binary weights clipped to the quantizer's range after each step
    shift: int = Field(0, ge=0, le=8)  # augmentation: random translation of each image by up to this many pixels
    grad_bits: int | None = Field(None, ge=2, le=16)  # DoReFa: quantize activation gradients (experiments)
    # torch's CPU threads (default: torch's choice, the machine's cores). Float sums split over threads round
    # differently, so a run repeats bit for bit only at the same count: `xnorkit explore` sets its trials' count
    threads: int | None = Field(None, ge=1, le=256)


class DistillConfig(_Section):
    """Knowledge distillation into the configured (student) model (quant_train.distill)."""

    teacher: str  # "float:<mlp zoo name>" (trained first, e.g. float:lfc) or a training run folder (checkpoint.pt)
    kind: Literal["hinton", "mimic", "noisy"] = "hinton"
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.9, ge=0, le=1)  # weight of the teacher's term; 1 - alpha goes to the labels
    noise: float = Field(0.0, ge=0)  # noisy teacher: relative Gaussian noise on its logits
    teacher_epochs: int = Field(10, ge=1)  # for a float teacher
    teacher_dropout: float = Field(0.0, ge=0, lt=1)  # for a float teacher: after each hidden layer (Hinton et al.)
    hints: bool = False  # FitNets: first train the student's middle layer on the teacher's (MLPs)
    hint_epochs: int = Field(2, ge=1)


class SparsityConfig(_Section):
    """Structured sparsity (SSL): group lasso during training, then small groups removed or zeroed and the
    network fine-tuned."""

    groups: Literal["neurons", "inputs", "filters", "channels", "shapes", "blocks"]
    weight: float = Field(1e-4, gt=0)  # of the group-lasso term
    threshold: float = Field(0.1, gt=0, lt=1)  # groups below this fraction of their layer's largest go
    epochs: int = Field(2, ge=1)  # fine-tuning afterwards


class PruneConfig(_Section):
    """Deep Compression stage 1: iterative magnitude (or correlation-based) pruning with retraining."""

    method: Literal["magnitude", "correlation"] = "magnitude"
    density: float | dict[str, float] = 0.1  # weights kept: one fraction, or one per layer name
    steps: int = Field(3, ge=1)  # the density is reached geometrically over this many prune-retrain steps
    epochs: int = Field(2, ge=1)  # retraining per step
    lr: float = Field(1e-3, gt=0)
    # magnitude pruning of whole (rows, columns) blocks of each layer's matrix, e.g. the PE x SIMD tiles of the
    # folding the design will use: the generated units skip them (cycles drop with density)
    block: list[Annotated[int, Field(ge=1)]] | None = Field(None, min_length=2, max_length=2)  # [rows, columns]

    @field_validator("density")
    @classmethod
    def _density(cls, v):
        values = v.values() if isinstance(v, dict) else [v]
        if any(not 0 < d <= 1 for d in values):
            raise ValueError("must be fractions in (0, 1]")
        return v


class ShareConfig(_Section):
    """Deep Compression stages 2 and 3: k-means weight sharing with centroid fine-tuning; the Huffman-coded
    size goes into metrics.json."""

    bits: int | dict[str, int] = 5  # codebook index bits: one for all layers, or one per layer name
    epochs: int = Field(2, ge=1)
    lr: float = Field(1e-4, gt=0)

    @field_validator("bits")
    @classmethod
    def _bits(cls, v):
        values = v.values() if isinstance(v, dict) else [v]
        if any(not 1 <= b <= 8 for b in values):
            raise ValueError("must be 1 .. 8 bits")
        return v


class HwConfig(_Section):
    target_cycles: int = Field(128, ge=1)  # initiation interval the folding solver aims for
    simulator: Literal["verilator", "icarus"] = "verilator"


class Config(_Section):
    dataset: Literal["digits", "mnist"] = "digits"
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    distill: DistillConfig | None = None
    sparsity: SparsityConfig | None = None
    prune: PruneConfig | None = None
    share: ShareConfig | None = None
    hw: HwConfig = Field(default_factory=HwConfig)

    def to_dict(self) -> dict:
        return self.model_dump()


DEFAULT = Config()


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"config: unknown key '{key}'"
    message = first["msg"].removeprefix("Value error, ")
    got = repr(first.get("input"))
    return f"config: '{key[:80]}': {message[:200]} (got {got[:80]}{'...' if len(got) > 80 else ''})"


def validate(data: object) -> Config:
    if not isinstance(data, dict):
        raise XnorkitError("config: the top level must be a mapping")
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise XnorkitError(_one_line(e)) from None


MAX_CONFIG_BYTES = 1 << 20


def load(path: str | Path | None) -> Config:
    if path is None:
        return DEFAULT
    return validate(load_plain(path, "config file", MAX_CONFIG_BYTES))
