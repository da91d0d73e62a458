"""Board definitions (YAML files beside this module)."""

from __future__ import annotations

from importlib import resources

import yaml

from xnorkit.errors import XnorkitError


def names() -> list[str]:
    files = resources.files("boards").iterdir()
    return sorted(p.name.removesuffix(".yaml").replace("_", "-") for p in files if p.name.endswith(".yaml"))


def load(name: str) -> dict:
    path = resources.files("boards").joinpath(name.replace("-", "_") + ".yaml")
    if not path.is_file():
        raise XnorkitError(f"unknown board '{name}'; known boards: {', '.join(names())}")
    return yaml.safe_load(path.read_text())
