"""What the hardware generators, the estimates and the solvers share about a stage, each rule once: the
input kind an XNOR-popcount unit tests for, and the sizes of an MVTU's memories (its weight ROM, and when it
skips zero tiles the tiles it stores and its step memory)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from xnorkit import packing

# every stage kind the RTL generator makes (emit_sv.Stage.kind)
STAGE_KINDS = ("mvtu", "window", "pool", "threshold", "join", "exit_test", "exit_gate", "exit_merge")


class InKind(IntEnum):
    """How a unit reads its input elements (the SV parameter IN_KIND): bipolar bits (XNOR-popcount with binary
    weights), unsigned or signed integers."""

    BIPOLAR = 0
    UNSIGNED = 1
    SIGNED = 2

    @classmethod
    def of(cls, kind: str) -> InKind:
        return cls[kind.upper()]


@dataclass(frozen=True)
class MvtuMemory:
    """An MVTU's weight memory: PE x SIMD weights of `w_bits` per word, one word per fold of the `mw` x `mh`
    matrix, or, when the unit skips zero tiles, one per stored tile (`stored_tiles`) plus a step word per cycle
    (`steps`, packing.step_bits wide)."""

    pe: int
    simd: int
    w_bits: int
    mw: int
    mh: int
    stored_tiles: int | None = None
    steps: int = 0

    @classmethod
    def of_params(cls, p: dict) -> MvtuMemory:
        """The memory of an MVTU stage as generated (emit_sv.Stage.params)."""
        skips = bool(p.get("n_tiles"))
        return cls(p["pe"], p["simd"], p["w_bits"], p["mw"], p["mh"],
                   p["n_words"] if skips else None, p["n_tiles"] if skips else 0)

    @property
    def folds(self) -> int:
        return (self.mw // self.simd) * (self.mh // self.pe)

    @property
    def width(self) -> int:
        return self.pe * self.simd * self.w_bits

    @property
    def depth(self) -> int:
        """Words of the weight ROM (at least one: a unit whose tiles are all zero still has a memory)."""
        return self.folds if self.stored_tiles is None else max(1, self.stored_tiles)

    def weight_bits(self) -> int:
        """Bits of the weights stored (without the step memory)."""
        return (self.folds if self.stored_tiles is None else self.stored_tiles) * self.width

    def step_rom(self) -> tuple[int, int]:
        """(width, depth) of the step memory ({compute, last, sf} per cycle); (0, 0) without one."""
        return (packing.step_bits(self.mw // self.simd), self.steps) if self.steps else (0, 0)

    def step_bits(self) -> int:
        width, depth = self.step_rom()
        return width * depth

    def total_bits(self) -> int:
        return self.weight_bits() + self.step_bits()
