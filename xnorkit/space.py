"""The search space of `xnorkit explore`: a normal xnorkit config plus a `search:` section naming, for any config
key, the choices or the range to try, the objectives and the constraints (docs/explore.md)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from xnorkit.errors import XnorkitError
from xnorkit.yamlfile import load_plain

# objective -> (what it measures, where a trial's report.json holds it)
OBJECTIVES = {
    "accuracy": "golden accuracy on the dataset's test split (what `xnorkit flow` reports)",
    "luts": "estimated LUTs of the design on search.board (the folding solver's model)",
    "synth_luts": "LUTs after Yosys synthesis for search.board",
    "cycles": "cycles per inference, analytical (the design's initiation interval)",
    "m4_instructions": "Cortex-M4 instructions per inference (QEMU -icount, 20 test images)",
    "flash_bytes": "flash the C library needs (weights and code)",
    "macs": "multiply-accumulates per inference",
}
# objectives that need the board named in search.board
BOARD_OBJECTIVES = ("luts", "synth_luts")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Range(_Section):
    """A numeric range: integers when both ends are integers (and `step`, if given, is), else floats."""

    low: int | float
    high: int | float
    log: bool = False
    step: int | float | None = None

    @model_validator(mode="after")
    def _order(self) -> Range:
        if not self.low < self.high:
            raise ValueError("low must be below high")
        if self.log and self.low <= 0:
            raise ValueError("a log range must start above 0")
        return self

    @property
    def integer(self) -> bool:
        return all(isinstance(v, int) for v in (self.low, self.high, self.step or 1))


class Constraints(_Section):
    fits: bool = False  # the design's estimate fits search.board (LUTs, FFs, BRAMs within its utilization limit)
    max_luts: int | None = Field(None, gt=0)  # estimated, on search.board
    max_cycles: int | None = Field(None, gt=0)
    max_flash_bytes: int | None = Field(None, gt=0)


class Search(_Section):
    params: dict[str, Annotated[list[Any], Field(min_length=1)] | Range] = Field(min_length=1)
    objectives: dict[str, Literal["maximize", "minimize"]] = Field(min_length=1)
    constraints: Constraints = Field(default_factory=Constraints)
    board: str | None = None  # the FPGA board of `luts`, `synth_luts` and the `fits` constraint
    trials: int = Field(16, ge=1)  # the study's size when --trials is not given
    sampler: Literal["nsga2", "tpe"] = "nsga2"
    population: int = Field(8, ge=2)  # NSGA-II: trials per generation (the first generation is random)
    seed: int = 0  # the sampler's; each trial trains with the config's train.seed
    # a trial still running after this many seconds is stopped (with the tools it started) and recorded failed
    trial_timeout_s: float | None = Field(None, gt=0)

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = [k for k in v if k not in OBJECTIVES]
        if unknown:
            raise ValueError(f"unknown objective '{unknown[0]}'; objectives are {', '.join(OBJECTIVES)}")
        return v

    @model_validator(mode="after")
    def _board(self) -> Search:
        needs = [k for k in self.objectives if k in BOARD_OBJECTIVES]
        if (needs or self.constraints.fits or self.constraints.max_luts) and not self.board:
            raise ValueError("name the FPGA board of the LUT objectives and constraints: search.board (xnorkit boards)")
        return self


class Space:
    """A base config (a plain mapping, as in a config file) and its search section."""

    def __init__(self, base: dict, search: Search) -> None:
        self.base, self.search = base, search

    @property
    def directions(self) -> list[str]:
        return list(self.search.objectives.values())

    @property
    def objectives(self) -> list[str]:
        return list(self.search.objectives)

    def suggest(self, trial) -> dict[str, Any]:
        """The values an Optuna trial picks for every searched key (lists and mappings as JSON strings, which
        Optuna's storage can hold; `config` reads them back)."""
        values = {}
        for key, spec in self.search.params.items():
            if isinstance(spec, Range):
                suggest = trial.suggest_int if spec.integer else trial.suggest_float
                step = {"step": spec.step} if spec.step is not None else {}
                values[key] = suggest(key, spec.low, spec.high, log=spec.log, **step)
            else:
                values[key] = trial.suggest_categorical(key, [_label(c) for c in spec])
        return values

    def config(self, params: dict[str, Any]) -> dict:
        """The trial's config: the base with each searched key set (a dotted key names a nested one)."""
        cfg = copy.deepcopy(self.base)
        for key, value in params.items():
            spec = self.search.params.get(key)
            _set(cfg, key, _unlabel(value) if isinstance(spec, list) else value)
        return cfg


def _label(choice: Any) -> Any:
    return choice if choice is None or isinstance(choice, bool | int | float | str) else json.dumps(choice)


def _unlabel(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


def _set(cfg: dict, key: str, value: Any) -> None:
    *path, last = key.split(".")
    node = cfg
    for part in path:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise XnorkitError(f"search: '{key}' names a key inside '{part}', which is not a section")
    node[last] = value


_BRANCH_MISMATCH = ("list_type", "model_type", "model_attributes_type", "dict_type")


def _one_line(error: ValidationError) -> str:
    # a choice list or a range: the branch the value took tells what is wrong, not the one of the other type
    errors = error.errors()
    first = next((e for e in errors if e["type"] not in _BRANCH_MISMATCH), errors[0])
    key = ".".join(str(part) for part in first["loc"] if part not in ("list[any]", "Range"))
    if first["type"] == "extra_forbidden":
        return f"search space: unknown key 'search.{key}'"
    return f"search space: 'search.{key}': {first['msg'].removeprefix('Value error, ')}"


def load(path: str | Path) -> Space:
    """SPACE.yaml: checked whole before any trial runs (the search section, and the config of every choice's
    first value through the config schema), one line naming what is wrong."""
    from xnorkit import boards
    from xnorkit.quant_train import config as config_mod

    data = load_plain(path, "search space", config_mod.MAX_CONFIG_BYTES)
    if not isinstance(data, dict) or not isinstance(data.get("search"), dict):
        raise XnorkitError(f"{path}: no 'search:' section; a search space is an xnorkit config plus a 'search:' "
                           "section (docs/explore.md)")
    base = {k: v for k, v in data.items() if k != "search"}
    try:
        search = Search.model_validate(data["search"])
    except ValidationError as e:
        raise XnorkitError(_one_line(e)) from None
    if search.board:
        boards.load_kind(search.board, "fpga")
    space = Space(base, search)
    for key, spec in search.params.items():  # every choice must make a valid config
        for value in ([_label(c) for c in spec] if isinstance(spec, list) else [spec.low, spec.high]):
            config_mod.validate(space.config({key: value}))
    return space
