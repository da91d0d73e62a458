"""The IR's integer types: the one vocabulary of bit widths the IR, the numerics and every backend share."""

from __future__ import annotations

import re
from dataclasses import dataclass

from xnorkit.errors import XnorkitError


@dataclass(frozen=True)
class IntType:
    """An integer type. `bipolar` is the 1-bit type whose bit 1 means +1 and bit 0 means -1."""

    bits: int
    signed: bool = False
    bipolar: bool = False

    @property
    def min(self) -> int:
        if self.bipolar:
            return -1
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        if self.bipolar:
            return 1
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def quant_range(self, narrow: bool) -> tuple[int, int]:
        """The [qmin, qmax] a quantizer of this type produces; a narrow range leaves out the most negative value
        of a signed type or the largest of an unsigned one (QONNX's `narrow`)."""
        if self.bipolar:
            return -1, 1
        return self.min + int(narrow and self.signed), self.max - int(narrow and not self.signed)

    def name(self) -> str:
        if self.bipolar:
            return "bipolar"
        return f"{'int' if self.signed else 'uint'}{self.bits}"

    @staticmethod
    def parse(text: str) -> IntType:
        if text == "bipolar":
            return BIPOLAR
        match = re.fullmatch(r"(u?)int([1-9][0-9]?)", str(text))
        if not match or int(match[2]) > 64:
            raise XnorkitError(f"unknown integer type {str(text)[:20]!r} in IR")
        return IntType(int(match[2]), signed=not match[1])


BIPOLAR = IntType(1, signed=False, bipolar=True)
