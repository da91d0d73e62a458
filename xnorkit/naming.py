"""The name a generated design or firmware carries (`--name`, by default the model file's): the prefix of its
Verilog modules, memory files, FuseSoC core, PlatformIO library and C symbols, so that two accelerators in one
FPGA design, or two models in one firmware, never clash. One rule for every backend."""

from __future__ import annotations

import re
from pathlib import Path

from xnorkit.errors import XnorkitError

DEFAULT = "xnorkit"  # a build made without a model file (tests, ir.save)
_VALID = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
MAX_LENGTH = 32


def check(name: str) -> str:
    """`name`, when it is valid: lower-case letters and digits in words joined by single underscores, starting
    with a letter (a Verilog and C identifier and a portable file name on its own and with any suffix)."""
    if not (isinstance(name, str) and len(name) <= MAX_LENGTH and _VALID.fullmatch(name)):
        raise XnorkitError(f"--name {str(name)[:40]!r} is not a name: lower-case letters and digits, words joined by "
                           f"single underscores, starting with a letter, at most {MAX_LENGTH} characters (it "
                           "prefixes Verilog modules, file names and C symbols), e.g. --name lfc_w1a1")
    return name


def from_model(path: str | Path) -> str:
    """The default name of a model file: its name before the first dot, lower-cased, every run of other characters
    one underscore ("TFC-w2a2.onnx" -> "tfc_w2a2"); "m_" before one that does not start with a letter."""
    words = re.sub(r"[^a-z0-9]+", "_", Path(path).name.split(".")[0].lower()).strip("_")
    if not words:
        return DEFAULT
    if not words[0].isalpha():
        words = f"m_{words}"
    return words[:MAX_LENGTH].rstrip("_")
