"""A first-order resource model of the generated stages (6-input-LUT FPGAs): LUTs, flip-flops and memory
bits per stage, from the same parameters the template instantiates. It ranks foldings and sizes a design
before synthesis; Yosys' figures for a real target replace it once `boards/` synthesizes (docs/hardware.md).

Per MVTU lane and SIMD input: about one LUT for XNOR-popcount (a 6-LUT compresses three XNOR pairs into
two count bits, the adder tree roughly doubles that), in_bits + 1 for an add-or-subtract of an integer,
in_bits * w_bits for a LUT multiplier; per lane an accumulator (acc_bits LUTs and flip-flops) and a
comparator per threshold (acc_bits LUTs). Memory: the weight and threshold ROMs, the input buffer of a
folded unit, the frame buffers of a sliding window (registers) and the FIFOs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from hw.stages import InKind, MvtuMemory


@dataclass(frozen=True)
class Resources:
    lut: int
    ff: int
    memory_bits: int

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.lut + other.lut, self.ff + other.ff, self.memory_bits + other.memory_bits)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def mvtu_mac_luts(p: dict, in_bits: int) -> int:
    """LUTs of the PE x SIMD multiply-accumulate lanes of one fold, before per-family calibration."""
    if p["in_kind"] == InKind.BIPOLAR and p["w_bits"] == 1:
        per_input = 1
    elif p["w_bits"] == 1:
        per_input = in_bits + 1
    else:
        per_input = in_bits * p["w_bits"]
    return p["pe"] * p["simd"] * per_input


def mvtu(p: dict, in_bits: int, out_bits: int) -> Resources:
    pe, simd, acc = p["pe"], p["simd"], p["acc_bits"]
    lut = mvtu_mac_luts(p, in_bits) + pe * acc + pe * p["n_thresh"] * acc
    sf, nf = p["mw"] // simd, p["mh"] // pe
    ff = simd * in_bits + pe * simd * p["w_bits"] + 2 * pe * acc + pe * out_bits + 4 * (sf * nf).bit_length()
    # a unit skipping zero tiles stores the tiles it computes, and a step word per cycle
    memory = (MvtuMemory.of_params(p).total_bits() + p["mh"] * p["n_thresh"] * acc
              + (sf * simd * in_bits if nf > 1 else 0))
    return Resources(lut, ff, memory)


def window(p: dict, in_bits: int, out_elems: int, out_bits: int) -> Resources:
    pixels = p["h"] * p["w"]
    frame_bits = 2 * pixels * p["c"] * in_bits  # two frames of registers
    lut = out_elems * out_bits * math.ceil(pixels / 3) + 64  # a read mux per output bit, counters
    return Resources(lut, frame_bits + out_elems * out_bits + 96, 0)


def pool(p: dict, out_bits: int) -> Resources:
    return Resources(2 * p["c"] * out_bits + 8, 2 * p["c"] * out_bits + 8, 0)


def threshold(p: dict, out_bits: int) -> Resources:
    return Resources(p["c"] * p["n_thresh"] * p["t_bits"], p["c"] * out_bits + 1,
                     p["c"] * p["n_thresh"] * p["t_bits"])


def join(out_elems: int, out_bits: int) -> Resources:
    return Resources(out_elems * out_bits, out_elems * out_bits + 1, 0)


def fifo(width: int, depth: int) -> Resources:
    return Resources(2 * depth.bit_length() + width // 6, 2 * depth.bit_length() + 2, width * depth)


def exit_stage(kind: str, p: dict, in_width: int, out_width: int) -> Resources:
    """An early exit's test (a multiply-add, two compares, the held accumulators), gate (a beat counter and an
    output register) or merge (the held decision and a beat, an output multiplexer)."""
    if kind == "exit_test":
        score = p["s_bits"]
        return Resources(p["w_bits"] * p["acc_bits"] + 4 * score + out_width, 2 * score + 2 * out_width,
                         p["n"] * (p["w_bits"] + p["b_bits"]))
    if kind == "exit_gate":
        return Resources(in_width // 2 + 16, in_width + 16, 0)
    return Resources(2 * out_width * 4, in_width + out_width + 16, 0)
