"""The AXI4-Lite register map of runtime-writable weights (`xnorkit hw --writable-weights`), one home for the
addresses the RTL decodes (xk_axil_config, xk_mvtu's write port), design.json lists, `xnorkit weights` writes
and the PYNQ driver loads. Byte addresses, 32-bit registers, little-endian words:

- 0x0: the ID, 0x584B5731 ("XKW1"), read only;
- 0x4: the number of writable layers, read only;
- writable layer i (in stage order) owns a region of 2^REGION_LOG2 registers at byte (i + 1) * 4 * 2^REGION_LOG2:
  - its weight memory: word w (one fold's PE x SIMD weights, as the layer's .mem file holds them), bits
    [32 c +: 32] at register w * 2^W_STRIDE_LOG2 + c;
  - its threshold memory from register T_OFFSET: word nf (the neuron fold's thresholds), bits [32 c +: 32] at
    register T_OFFSET + nf * 2^T_STRIDE_LOG2 + c.
Writes are whole registers (WSTRB all ones; else SLVERR); the memories are loaded while no inference runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from xnorkit import packing
from xnorkit.hw.stages import Lowered, Stage

ID = 0x584B5731
ID_REGISTERS = 2  # the ID and the layer count


def _log2_ceil(n: int) -> int:
    return max(0, (n - 1).bit_length())


@dataclass(frozen=True)
class LayerRegion:
    """Where one writable layer's memories sit in the register map."""

    stage: int  # the MVTU stage's index (its l<stage>_*.mem files)
    name: str
    base: int  # byte address of the region
    weight_words: int
    weight_bits: int
    w_stride_log2: int
    threshold_words: int  # 0 for an output layer (no thresholds)
    threshold_bits: int
    t_stride_log2: int
    t_offset: int  # register of the threshold memory's first word within the region

    def as_dict(self) -> dict:
        return asdict(self)


def _region(stage: Stage) -> tuple[int, ...]:
    """(weight words, bits, stride log2, threshold words, bits, stride log2, threshold offset, registers) of one
    writable MVTU."""
    p = stage.params
    memory = stage.memory()
    w_stride = _log2_ceil(-(-memory.width // 32))
    t_words = p["mh"] // p["pe"] if p["n_thresh"] else 0
    t_bits = p["pe"] * p["n_thresh"] * p["acc_bits"]
    t_stride = _log2_ceil(-(-t_bits // 32)) if t_words else 0
    t_offset = memory.depth << w_stride
    registers = t_offset + (t_words << t_stride)
    return memory.depth, memory.width, w_stride, t_words, t_bits, t_stride, t_offset, registers


def writable_stages(low: Lowered) -> list[Stage]:
    return [s for s in low.stages if s.kind == "mvtu" and s.params.get("writable")]


def region_log2(low: Lowered) -> int:
    """Registers per region, log2: the largest writable layer's, at least enough for the ID registers."""
    return max([_log2_ceil(_region(s)[-1]) for s in writable_stages(low)] + [_log2_ceil(ID_REGISTERS)])


def regions(low: Lowered) -> list[LayerRegion]:
    size = 4 << region_log2(low)
    return [LayerRegion(s.index, s.name, (i + 1) * size, *_region(s)[:-1]) for i, s in enumerate(writable_stages(low))]


def address_bits(low: Lowered) -> int:
    """Bits of the AXI4-Lite byte address: the ID region and one region per writable layer."""
    return region_log2(low) + 2 + _log2_ceil(len(writable_stages(low)) + 1)


def describe(low: Lowered) -> dict:
    """The register map as design.json records it ("writable"), JSON types only."""
    return {"id": ID, "addr_bits": address_bits(low), "region_log2": region_log2(low),
            "layers": [r.as_dict() for r in regions(low)]}


def _chunks(word: int, bits: int) -> list[int]:
    return [(word >> (32 * c)) & 0xFFFFFFFF for c in range(-(-bits // 32))]


def layer_writes(region: LayerRegion, weight_words: list[int], threshold_words: list[int]) -> list[tuple[int, int]]:
    """(byte address, 32-bit value) of every register that loads these memory words into the layer."""
    writes = []
    for w, word in enumerate(weight_words):
        for c, value in enumerate(_chunks(word, region.weight_bits)):
            writes.append((region.base + 4 * ((w << region.w_stride_log2) + c), value))
    for nf, word in enumerate(threshold_words):
        for c, value in enumerate(_chunks(word, region.threshold_bits)):
            writes.append((region.base + 4 * (region.t_offset + (nf << region.t_stride_log2) + c), value))
    return writes


def memory_words(low: Lowered, stage: Stage) -> tuple[list[int], list[int]]:
    """A writable MVTU's weight and threshold memory words, as its .mem files hold them (xnorkit.packing)."""
    p = stage.params
    weights = packing.mvtu_weight_words(low.matrices[stage.index], p["pe"], p["simd"], p["w_bits"], None)
    t = low.thresholds[stage.index]
    thresholds = [] if t is None else packing.mvtu_threshold_words(np.asarray(t), p["pe"], p["acc_bits"])
    return list(weights), list(thresholds)


def writes(low: Lowered) -> list[tuple[int, int]]:
    """Every register write that loads the lowered network's writable layers."""
    out = []
    for region in regions(low):
        out += layer_writes(region, *memory_words(low, low.stages[region.stage]))
    return out
