"""Fitting a network to an FPGA board: the resource estimate in the board's own units (LUT4 or LUT6, block
RAMs of its shape), where each layer's weights go (block RAM or logic), and the fastest folding that fits
the board's budget (`xnorkit hw BUILD --board NAME`). hw/synth.py then measures what Yosys makes of it;
the report shows both."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from xnorkit.boards import FpgaBoard
from xnorkit.errors import XnorkitError
from xnorkit.hw import folding, popcount_x7
from xnorkit.hw.folding import Fold, Folding
from xnorkit.hw.lowering import lower
from xnorkit.hw.stages import Stage, connect
from xnorkit.ir import Graph

# block RAM shapes (width, depth) per family: iCE40 EBR 4 Kbit, ECP5 DP16KD and Xilinx RAMB18 18 Kbit
BRAM_SHAPES = {"ice40": ((16, 256), (8, 512), (4, 1024), (2, 2048)),
               "ecp5": ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)),
               "xc7": ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)),
               "xcup": ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))}
LUT_INPUTS = {"ice40": 4, "ecp5": 4, "xc7": 6, "xcup": 6}
# hw.stages' first-order datapath LUTs times this is what Yosys makes of them per family: for an MVTU its multiply-
# accumulate lanes (XNOR-popcount, add-or-subtract trees; calibrated on bench/popcount_luts.py's PE x SIMD
# sweep of synth_xilinx, where a binary MAC costs 2.2 to 2.7 LUT6), for other stages all of it (calibrated
# on the digits default under synth_ice40 at 512 and 2,048 cycles per inference)
DATAPATH_SCALE = {"ice40": 2.2, "ecp5": 2.2, "xc7": 2.6, "xcup": 2.6}
# on 7-series the bipolar lanes are hw/popcount_x7.py's LUT6_2/CARRY4 trees, not what synthesis infers: LUT6 per
# binary MAC with the rest of the lane, fitted to bench/popcount_luts.py's sweep (within 10%)
PRIMITIVE_XNOR_SCALE = {"xc7": 1.12}  # one per family of popcount_x7.FAMILIES


@dataclass(frozen=True)
class BoardEstimate:
    lut: int
    ff: int
    bram: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def bram_blocks(width: int, depth: int, family: str) -> int:
    """Block RAMs a width x depth memory takes in its best shape."""
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in BRAM_SHAPES[family])


def rom_luts(width: int, depth: int, family: str) -> int:
    """LUTs of a constant ROM in logic: per output bit a function of log2(depth) address bits, one LUT per
    2^k entries and a multiplexer tree over them (a LUT4 is one 2:1 multiplexer; Xilinx slices add MUXF7 and
    MUXF8 for free, a LUT6 is a 4:1 multiplexer beyond them)."""
    entries = 2 ** LUT_INPUTS[family]
    leaves = math.ceil(depth / entries)
    if leaves == 1:
        return width
    muxes = leaves - 1 if LUT_INPUTS[family] == 4 else math.ceil(max(0, leaves - 4) / 3)
    return width * (leaves + muxes)


def choose_weight_memory(stage: Stage, board: FpgaBoard) -> str:
    """Block RAM or logic, whichever takes the smaller share of the board."""
    memory = stage.memory()
    width, depth = memory.width, memory.depth
    if board.bram == 0:
        return "logic"
    in_bram = bram_blocks(width, depth, board.family) / board.bram
    in_logic = rom_luts(width, depth, board.family) / board.lut
    return "block" if in_bram < in_logic else "logic"


def stage_estimate(stage: Stage, fold: Fold | None, board: FpgaBoard) -> BoardEstimate:
    """One stage on the board: its first-order datapath LUTs (Stage.resources) times the family's calibration,
    plus its memories as the board builds them (`fold` gives an MVTU's weight memory placement)."""
    r = stage.resources()
    lut, ff, bram = r.lut * DATAPATH_SCALE[board.family], float(r.ff), 0.0
    ram_bits = r.memory_bits
    if stage.kind == "mvtu":
        lut, bram = _mvtu_on_board(stage, fold, board)
        p = stage.params
        if p["mh"] > p["pe"]:  # the input buffer the later neuron folds read
            lut, ff, bram = _add(lut, ff, bram, _ram(p["simd"] * stage.in_bits, p["mw"] // p["simd"], board.family))
        ram_bits = 0
    elif stage.kind == "threshold":  # constants per channel, folded into the comparators
        lut += r.memory_bits / LUT_INPUTS[board.family]
        ram_bits = 0
    elif stage.kind == "window" and ram_bits:  # the two frames: block RAM or LUT-RAM, the smaller share
        lut, ff, bram = _add(lut, ff, bram, _frame_memory(stage, board))
        ram_bits = 0
    lut, ff, bram = _add(lut, ff, bram, _ram(ram_bits, 1, board.family))
    return BoardEstimate(round(lut), round(ff), round(bram))


def _mvtu_on_board(stage: Stage, fold: Fold | None, board: FpgaBoard) -> tuple[float, float]:
    """(LUTs, block RAMs) of an MVTU's logic and ROMs: the lanes scale with the family's MAC cost (hw/popcount_x7's
    primitive trees on 7-series), the weight ROM in block RAM or logic, the threshold and step ROMs in logic."""
    p = stage.params
    scale = DATAPATH_SCALE[board.family]
    if stage.xnor and board.family in popcount_x7.FAMILIES and p["simd"] >= popcount_x7.MIN_WIDTH:
        scale = PRIMITIVE_XNOR_SCALE[board.family]
    lut, bram = stage.mvtu_logic_luts(scale), 0
    memory = stage.memory()
    style = fold.weights if fold is not None else "auto"
    style = choose_weight_memory(stage, board) if style == "auto" else style
    if style in ("block", "writable"):  # a writable memory is a RAM: block RAM
        bram += bram_blocks(memory.width, memory.depth, board.family)
    else:
        lut += rom_luts(memory.width, memory.depth, board.family)
    lut += rom_luts(p["pe"] * p["n_thresh"] * p["acc_bits"], p["mh"] // p["pe"], board.family)
    if memory.steps:  # the step memory is read asynchronously: logic
        lut += rom_luts(*memory.step_rom(), board.family)
    return lut, bram


def estimate(graph: Graph, fold: Folding, board: FpgaBoard) -> BoardEstimate:
    """The design on the board: every stage (`stage_estimate`), the FIFOs between them in LUT-RAM (Xilinx) or
    registers / block RAM (iCE40, ECP5), and on open-flow boards the byte-wide shell's beat registers."""
    low = lower(graph, fold)
    source, edges, _ = connect(low)
    lut = ff = bram = 0.0
    for s in low.stages:
        e = stage_estimate(s, fold.get(s.name) if s.kind == "mvtu" else None, board)
        lut, ff, bram = lut + e.lut, ff + e.ff, bram + e.bram
    for e in edges:
        r = e.resources()
        lut, ff = lut + r.lut * DATAPATH_SCALE[board.family], ff + r.ff
        lut, ff, bram = _add(lut, ff, bram, _ram(e.fifo_width, e.fifo_depth, board.family))
    if board.toolchain == "open":  # xnorkit_shell gathers an input beat and splits an output beat
        beat_bits = source.out_width + low.stages[-1].out_width
        lut, ff = lut + beat_bits, ff + beat_bits
    return BoardEstimate(round(lut), round(ff), round(bram))


def _ram(width: int, depth: int, family: str) -> tuple[float, float, int]:
    """(LUTs, flip-flops, block RAMs) of a small read-write memory (input buffer, FIFO): LUT-RAM on Xilinx,
    64 bits a LUT; on iCE40, which has none, block RAM when deeper than 16 words, else registers with read
    multiplexers (hw/synth.py tells Yosys so); on ECP5 registers too, conservatively (it has distributed RAM)."""
    bits = width * depth
    if LUT_INPUTS[family] == 6:
        return bits / 64, 0.0, 0
    if family == "ice40" and depth > 16:
        return 0.0, 0.0, bram_blocks(width, depth, family)
    return bits, float(bits), 0


def _frame_memory(stage: Stage, board: FpgaBoard) -> tuple[float, float, int]:
    """A window's two frames of pixel words (xk_sliding_window's memory) as the board builds them: block RAM
    where that takes the smaller share of the board, else as a small read-write memory (`_ram`)."""
    width, depth = stage.params["c"] * stage.in_bits, 2 * stage.params["h"] * stage.params["w"]
    small = _ram(width, depth, board.family)
    if board.bram and bram_blocks(width, depth, board.family) / board.bram < small[0] / board.lut:
        return 0.0, 0.0, bram_blocks(width, depth, board.family)
    return small


def _add(lut: float, ff: float, bram: float, more: tuple[float, float, int]) -> tuple[float, float, float]:
    return lut + more[0], ff + more[1], bram + more[2]


def logic_cells(est: BoardEstimate, board: FpgaBoard) -> int:
    """What the LUT budget must hold: on iCE40 a logic cell has one LUT4 and one flip-flop, and nextpnr packs
    few flip-flops with an unrelated LUT (the digits default: 4,872 LUTs + 3,284 FFs took 8,205 cells)."""
    return est.lut + est.ff if board.family == "ice40" else est.lut


def fits(est: BoardEstimate, board: FpgaBoard) -> bool:
    limit = board.utilization_limit
    return (logic_cells(est, board) <= limit * board.lut and est.bram <= limit * board.bram
            and est.ff <= limit * board.ff)


def place_weights(graph: Graph, fold: Folding, board: FpgaBoard) -> Folding:
    low = lower(graph, fold)
    styles = {s.name: choose_weight_memory(s, board) for s in low.stages if s.kind == "mvtu"}
    return {name: f if f.weights == "writable" else replace(f, weights=styles[name]) for name, f in fold.items()}


def solve(graph: Graph, board: FpgaBoard) -> tuple[Folding, BoardEstimate]:
    """The fastest folding (fewest cycles per inference, powers of two as targets) whose estimate fits the
    board within its utilization limit, each layer's weights placed by `choose_weight_memory`. Refuses with
    the numbers of the slowest folding when even that does not fit."""
    macs = sum(folding.layer_cycles(graph, m, Fold(1, 1)) for m in folding.mac_layers(graph))
    target, last = 1, None
    while True:
        fold = place_weights(graph, folding.solve(graph, target), board)
        est = estimate(graph, fold, board)
        if fits(est, board):
            return fold, est
        last = est
        if target >= macs:
            break
        target *= 2
    limit = board.utilization_limit
    raise XnorkitError(
        f"the network does not fit {board.name} even fully folded (one MAC per layer per cycle): estimated "
        f"{logic_cells(last, board):,} LUTs of {int(limit * board.lut):,}, {last.bram} block RAMs of "
        f"{int(limit * board.bram)} ({limit:.0%} of the part); use a smaller network, fewer weight bits, or a "
        f"larger board")
