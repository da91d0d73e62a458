"""JSON files xnorkit writes and reads back (a design's design.json, a synthesis' utilization.json, a flow's
report.json, a training run's metrics.json). They may have been shared or edited, so each is read through
`read_json`, which holds it to its schema (pydantic): a damaged or edited file is one line naming the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xnorkit.errors import XnorkitError

Count = Annotated[int, Field(strict=True, ge=0)]
Positive = Annotated[int, Field(strict=True, gt=0)]
Share = Annotated[float, Field(allow_inf_nan=False, ge=0, le=1)]
# a name that reaches generated text (a Verilog module, a TCL command, a file in the same folder)
FileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


class Record(BaseModel):
    """A schema for the keys xnorkit reads; other keys are kept as they are."""

    model_config = ConfigDict(extra="allow")


def read_json(path: Path, schema: type[Record], fix: str) -> dict:
    """The content of `path` once it matches `schema`; else one line ending in `fix` (what to do)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise XnorkitError(f"{path} is damaged ({type(e).__name__}); {fix}") from None
    try:
        schema.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise XnorkitError(f"{path} is damaged or edited: '{where[:80]}': {err['msg'][:160]}; {fix}") from None
    return data
