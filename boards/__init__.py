"""Board definitions: one YAML file per board beside this module, validated by `Board` (an unknown key or
an impossible value is a one-line error naming the file and the key)."""

from __future__ import annotations

from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xnorkit.errors import XnorkitError

CPUS = ("cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m4f", "cortex-m7", "cortex-m33")


class Board(BaseModel):
    """A microcontroller board: what the firmware generator needs to know to say whether a network fits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["mcu"]
    description: str
    cpu: Literal[CPUS]
    part: str
    clock_mhz: float = Field(gt=0)
    flash_bytes: int = Field(gt=0)
    ram_bytes: int = Field(gt=0)
    qemu_machine: str | None = None  # boards QEMU emulates: the firmware runs there in the tests

    def __getitem__(self, key: str):  # dict-style access for callers that read one field
        return getattr(self, key)


def names() -> list[str]:
    files = resources.files("boards").iterdir()
    return sorted(p.name.removesuffix(".yaml").replace("_", "-") for p in files if p.name.endswith(".yaml"))


def load(name: str) -> Board:
    path = resources.files("boards").joinpath(name.replace("-", "_") + ".yaml")
    if not path.is_file():
        raise XnorkitError(f"unknown board '{name}'; known boards: {', '.join(names())}")
    try:
        return Board(**yaml.safe_load(path.read_text()))
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise XnorkitError(f"board file {path.name}: {key}: {err['msg']}") from None
    except (yaml.YAMLError, TypeError) as e:
        raise XnorkitError(f"board file {path.name} is not a YAML mapping: {e}") from None
