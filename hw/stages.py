"""The hardware stages of a design and their own figures, each rule once. `hw.lowering` turns the backend graph
into `Stage` records (the blocks of hw/rtl/, their stream formats and parameters) joined by `Edge`s; the SV and
HLS emitters, design.json, hw.fit and the report all read them.

Each stage answers its cycles per inference (set at lowering from hw.folding), its MVTU memories (`MvtuMemory`:
the weight ROM, and when it skips zero tiles the tiles it stores and its step memory) and a first-order resource
model for 6-input-LUT FPGAs (`Stage.resources`): per MVTU lane and SIMD input about one LUT for XNOR-popcount (a
6-LUT compresses three XNOR pairs into two count bits, the adder tree roughly doubles that), in_bits + 1 for an
add-or-subtract of an integer, in_bits * w_bits for a LUT multiplier; per lane an accumulator and the threshold
comparators on the carry chain; the weight and threshold ROMs, the input buffer of a folded unit, the frame
buffers of a sliding window (registers) and the FIFOs. It ranks foldings and sizes a design before synthesis;
hw.fit calibrates it per family and places the memories on a board, and Yosys' figures replace it once
synthesized (docs/hardware.md)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import IntEnum

import numpy as np

from xnorkit import packing

# every stage kind the RTL generator makes (Stage.kind)
STAGE_KINDS = ("mvtu", "window", "pool", "threshold", "join", "exit_test", "exit_gate", "exit_merge")
TWO_INPUTS = ("join", "exit_gate", "exit_merge")  # stages with a second input port (b_elems, b_bits)
MVTU_CONTROL_LUTS = 50  # fold counters, ROM address, valid pipeline


@dataclass(frozen=True)
class Resources:
    lut: int
    ff: int
    memory_bits: int

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.lut + other.lut, self.ff + other.ff, self.memory_bits + other.memory_bits)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


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
        """The memory of an MVTU stage as generated (Stage.params)."""
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


@dataclass
class Stage:
    """One block of the design, as the template needs it: what it reads and writes per beat, its
    parameters, and its cycles per inference."""

    index: int
    kind: str  # one of STAGE_KINDS
    name: str
    in_elems: int
    in_bits: int
    out_elems: int
    out_bits: int
    out_signed: bool
    cycles: int
    vector_beats: int  # output beats per vector (how much the FIFO after it holds, plus one)
    params: dict = field(default_factory=dict)

    @property
    def in_width(self) -> int:
        return self.in_elems * self.in_bits

    @property
    def out_width(self) -> int:
        return self.out_elems * self.out_bits

    @property
    def in_kind(self) -> InKind:
        """How an MVTU or a threshold stage reads its input elements."""
        return InKind(self.params["in_kind"])

    @property
    def xnor(self) -> bool:
        """An MVTU of binary weights on bipolar inputs: XNOR-popcount lanes."""
        return self.kind == "mvtu" and self.in_kind is InKind.BIPOLAR and self.params["w_bits"] == 1

    def memory(self) -> MvtuMemory:
        """An MVTU's weight memory as generated."""
        return MvtuMemory.of_params(self.params)

    def weight_memory_bits(self) -> dict[str, int]:
        """An MVTU's weight memory as generated (with its step memory when it skips zero tiles) against every
        fold stored at the IR's weight width."""
        memory = self.memory()
        dense = MvtuMemory(memory.pe, memory.simd, self.params["ir_w_bits"], memory.mw, memory.mh)
        return {"weight_bits": memory.total_bits(), "dense_weight_bits": dense.weight_bits()}

    def mac_luts(self) -> int:
        """LUTs of an MVTU's PE x SIMD multiply-accumulate lanes, before a family's calibration: about one per
        XNOR-popcount input, in_bits + 1 for an add-or-subtract of an integer, in_bits * w_bits for a
        multiplier."""
        p = self.params
        if self.xnor:
            per_input = 1
        elif p["w_bits"] == 1:
            per_input = self.in_bits + 1
        else:
            per_input = self.in_bits * p["w_bits"]
        return p["pe"] * p["simd"] * per_input

    def mvtu_logic_luts(self, mac_scale: float = 1.0) -> float:
        """An MVTU's logic without its memories: the lanes (`mac_luts` times a family's calibration), per lane
        the accumulator and the threshold comparators on the carry chain, and the fold control."""
        p = self.params
        return self.mac_luts() * mac_scale + p["pe"] * p["acc_bits"] * max(1, p["n_thresh"]) + MVTU_CONTROL_LUTS

    def resources(self) -> Resources:
        """The stage's first-order LUTs, flip-flops and memory bits (no family: hw.fit turns them into a
        board's units)."""
        return _RESOURCES[self.kind](self)


@dataclass(frozen=True)
class Edge:
    """The stream from a stage (or the network input, index -1) to one input port of another. A stage
    read by several consumers feeds them through a fork, one output each (`branch`). Narrow-to-wide
    gathers before the FIFO and wide-to-narrow splits after it, so the FIFO always delivers one consumer
    beat per cycle. It holds a whole vector of the producer and of the consumer, so a producer runs ahead
    while an MVTU works through its later neuron folds; into a sliding window a whole frame; into a join
    whole frames, since the other branch may hold that many in its sliding windows before the join can
    take a beat."""

    index: int
    src: Stage
    dst: Stage
    port: int
    branch: int | None  # the fork output, None without a fork
    frames: int  # frames of buffering into a join, 0 elsewhere

    @property
    def dst_elems(self) -> int:
        return self.dst.in_elems if self.port == 0 else self.dst.params["b_elems"]

    @property
    def bits(self) -> int:
        return self.src.out_bits

    @property
    def gather_first(self) -> bool:
        return self.src.out_elems < self.dst_elems

    @property
    def fifo_elems(self) -> int:
        return max(self.src.out_elems, self.dst_elems)

    @property
    def fifo_width(self) -> int:
        return self.fifo_elems * self.bits

    @property
    def fifo_depth(self) -> int:
        if self.frames:
            return self.frames * self.dst.params["frame_beats"] * self.dst_elems // self.fifo_elems + 2
        if self.dst.kind == "window":  # a whole frame: the window's next bank frees only after its last window
            return self.dst.params["h"] * self.dst.params["w"] * self.dst_elems // self.fifo_elems + 2
        # a whole vector of the producer, and of the consumer: an MVTU reads its vector during its first neuron
        # fold only, so the next one must be waiting in full when it comes round
        reads = self.dst.params["mw"] * self.dst.params["groups"] if self.dst.kind == "mvtu" else 0
        return max(2, self.src.vector_beats * self.src.out_elems // self.fifo_elems + 1,
                   reads // self.fifo_elems + 1)

    @property
    def src_signals(self) -> tuple[str, str, str]:
        """(data, valid, ready) expressions of the producing side."""
        name = "lin" if self.src.index < 0 else f"l{self.src.index}"
        if self.branch is None:
            return f"{name}_out_tdata", f"{name}_out_tvalid", f"{name}_out_tready"
        w = self.src.out_width
        return (f"{name}_fork_tdata[{self.branch * w} +: {w}]", f"{name}_fork_tvalid[{self.branch}]",
                f"{name}_fork_tready[{self.branch}]")

    @property
    def dst_signals(self) -> tuple[str, str, str]:
        name = f"l{self.dst.index}_in{self.port}"
        return f"{name}_tdata", f"{name}_tvalid", f"{name}_tready"

    def resources(self) -> Resources:
        """The FIFO of the edge: its pointers and a write-enable decode, its words."""
        width, depth = self.fifo_width, self.fifo_depth
        return Resources(2 * depth.bit_length() + width // 6, 2 * depth.bit_length() + 2, width * depth)



@dataclass(frozen=True)
class Fork:
    src: Stage
    count: int


def connect(low: Lowered) -> tuple[Stage, list[Edge], list[Fork]]:
    """The network input as a pseudo-stage, the edges and the forks of a lowered design."""
    first_reader = next(s for s in low.stages if -1 in low.inputs[s.index])
    port = low.inputs[first_reader.index].index(-1)
    elems = first_reader.in_elems if port == 0 else first_reader.params["b_elems"]
    source = Stage(-1, "input", "input", elems, low.input_bits, elems, low.input_bits, False, 0, 1)
    by_index = {s.index: s for s in low.stages} | {-1: source}
    readers: dict[int, list[tuple[Stage, int]]] = {}
    for s in low.stages:
        for p, src in enumerate(low.inputs[s.index]):
            readers.setdefault(src, []).append((s, p))
    windows = sum(s.kind == "window" for s in low.stages)
    edges, forks = [], []
    for src, targets in readers.items():
        if len(targets) > 1:
            forks.append(Fork(by_index[src], len(targets)))
        for branch, (dst, p) in enumerate(targets):
            # into a gate: the frames that wait while the exit decides
            frames = 2 * windows + 2 if dst.kind == "join" else 2 if dst.kind == "exit_gate" and p == 0 else 0
            edges.append(Edge(len(edges), by_index[src], dst, p, branch if len(targets) > 1 else None, frames))
    return source, edges, forks


@dataclass
class Lowered:
    """The stages in dataflow order; per stage the producers of its input ports (-1: the network input);
    per MVTU stage the weight matrix in stream order and its thresholds (or None); per threshold stage
    its thresholds."""

    stages: list[Stage]
    inputs: dict[int, list[int]]
    matrices: dict[int, np.ndarray]
    thresholds: dict[int, np.ndarray | None]
    input_bits: int
    schedules: dict[int, list[packing.Step]] = field(default_factory=dict)  # units skipping zero tiles


def _mvtu(s: Stage) -> Resources:
    p = s.params
    pe, simd, acc = p["pe"], p["simd"], p["acc_bits"]
    sf, nf = p["mw"] // simd, p["mh"] // pe
    ff = simd * s.in_bits + pe * simd * p["w_bits"] + 2 * pe * acc + pe * s.out_bits + 4 * (sf * nf).bit_length()
    # the weight ROM (a unit skipping zero tiles: the tiles it computes and a step word per cycle), the threshold
    # ROM, and the input buffer the later neuron folds read
    memory = (s.memory().total_bits() + p["mh"] * p["n_thresh"] * acc + (sf * simd * s.in_bits if nf > 1 else 0))
    return Resources(round(s.mvtu_logic_luts()), ff, memory)


def window_frames_in_memory(s: Stage) -> bool:
    """A window stage whose beats are one pixel's channels (SIMD divides them) keeps its two frames in one memory
    of pixel words (xk_sliding_window's g_memory); a whole window per beat keeps them in registers."""
    p = s.params
    return s.out_elems != p["kh"] * p["kw"] * p["c"] // p["groups"]


def _window(s: Stage) -> Resources:
    p = s.params
    pixels = p["h"] * p["w"]
    frame_bits = 2 * pixels * p["c"] * s.in_bits  # two frames
    if window_frames_in_memory(s):
        # the beat's slice of the pixel word read, padding, counters and the address arithmetic
        slices = p["c"] // s.out_elems
        lut = s.out_elems * s.out_bits * math.ceil(slices / 4) + 128
        return Resources(lut, p["c"] * s.in_bits + 160, frame_bits)
    lut = s.out_elems * s.out_bits * math.ceil(pixels / 3) + 64  # a read mux per output bit, counters
    return Resources(lut, frame_bits + s.out_elems * s.out_bits + 96, 0)


def _pool(s: Stage) -> Resources:
    return Resources(2 * s.params["c"] * s.out_bits + 8, 2 * s.params["c"] * s.out_bits + 8, 0)


def _threshold(s: Stage) -> Resources:
    p = s.params
    bits = p["c"] * p["n_thresh"] * p["t_bits"]  # the constants per channel, compared in logic
    return Resources(bits, p["c"] * s.out_bits + 1, bits)


def _join(s: Stage) -> Resources:
    return Resources(s.out_width, s.out_width + 1, 0)


def _exit_test(s: Stage) -> Resources:
    """A multiply-add, two compares, the held accumulators."""
    p, score = s.params, s.params["s_bits"]
    return Resources(p["w_bits"] * p["acc_bits"] + 4 * score + s.out_width, 2 * score + 2 * s.out_width,
                     p["n"] * (p["w_bits"] + p["b_bits"]))


def _exit_gate(s: Stage) -> Resources:
    """A beat counter and an output register."""
    return Resources(s.in_width // 2 + 16, s.in_width + 16, 0)


def _exit_merge(s: Stage) -> Resources:
    """The held decision and a beat, an output multiplexer."""
    return Resources(2 * s.out_width * 4, s.in_width + s.out_width + 16, 0)


_RESOURCES = {"mvtu": _mvtu, "window": _window, "pool": _pool, "threshold": _threshold, "join": _join,
              "exit_test": _exit_test, "exit_gate": _exit_gate, "exit_merge": _exit_merge}
