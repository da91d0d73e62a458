"""The one way xnorkit reads a YAML file a user hands it (a config, a board file): safe types only, no
anchors or aliases, a size limit, and every error one bounded line naming the file."""

from __future__ import annotations

from pathlib import Path

import yaml

from xnorkit.errors import XnorkitError


class _PlainLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: these files are a few keys, and aliases let a few hundred bytes expand
    into gigabytes (a "billion laughs")."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases (*name) are not allowed here; write the values out")
        return super().compose_node(parent, index)


def load_plain(path: str | Path, what: str, max_bytes: int) -> object:
    """The parsed content of `path` (`what` names the kind of file in messages); {} for an empty file."""
    p = Path(path)
    if not p.is_file():
        raise XnorkitError(f"{what} {str(p)[:200]} does not exist")
    if p.stat().st_size > max_bytes:
        raise XnorkitError(f"{what} {str(p)[:200]} is over {max_bytes:,} bytes; it should be a few keys")
    try:
        return yaml.load(p.read_text(errors="replace"), Loader=_PlainLoader) or {}  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as e:
        raise XnorkitError(f"{what} {str(p)[:200]} is not valid YAML: {str(e).splitlines()[0][:200]}") from None
