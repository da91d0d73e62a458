"""The xnorkit command line. Every user-facing problem is one line on stderr and exit code 2."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from xnorkit.errors import XnorkitError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, context_settings={"help_option_names":
                  ["-h", "--help"]},
                  help="Binary and low-bit neural networks from Brevitas training to bit-exact RTL and firmware.")
console = Console(width=None if sys.stdout.isatty() else 140)  # tables stay readable in logs and pipes


@contextmanager
def _progress(what: str) -> Iterator[Callable[[str], None]]:
    """Where long work reports its steps: one live status line on a terminal, one printed line per step in a log
    or pipe (where a status line would never show)."""
    if not console.is_terminal:
        console.print(what)
        yield console.print
        return
    with console.status(what) as status:
        yield status.update

class PredictBackend(str, Enum):
    qonnx = "qonnx"
    golden = "golden"
    rtl = "rtl"
    hls = "hls"
    c = "c"
    cortex_m4 = "cortex-m4"


class HwBackend(str, Enum):
    rtl = "rtl"
    hls = "hls"
    hls4ml = "hls4ml"


class Simulator(str, Enum):
    verilator = "verilator"
    icarus = "icarus"


class Dataset(str, Enum):
    digits = "digits"
    mnist = "mnist"


def _boards(kind: str) -> str:
    """The built-in boards of a kind, for --help (the names are checked where they are read)."""
    from xnorkit import boards

    return ", ".join(boards.names(kind))


def _open_flow_boards() -> str:
    from xnorkit import boards

    return ", ".join(n for n in boards.names("fpga") if boards.load(n).toolchain == "open")


def _version(value: bool) -> None:
    if value:
        from xnorkit import __version__

        print(f"xnorkit {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                   help="print the version and exit")] = False) -> None:
    """Binary and low-bit neural networks from Brevitas training to bit-exact RTL and firmware."""


Out = Annotated[Path, typer.Option("-o", "--out", help="output folder")]
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="datasets folder (else $XNORKIT_DATA, "
                                                                    "else ~/.cache/xnorkit)")]


@app.command()
def flow(config: Annotated[Path | None, typer.Argument(help="YAML config; the embedded default if omitted")] = None,
         out: Out = Path("out/flow"), data_dir: DataDir = None) -> None:
    """Train, compile, and prove every backend bit-exact on the test split; writes a report."""
    from xnorkit import tools

    tools.require_extra("torch", "brevitas", "sklearn", "cocotb", "verilator", "matplotlib")
    from xnorkit.flow import run_flow

    report = run_flow(config, out, data_dir, console)
    if not report["ok"]:
        console.print("[red]some backend disagrees with the golden model; see report.json[/red]")
        raise typer.Exit(1)


@app.command()
def explore(space: Annotated[Path, typer.Argument(metavar="SPACE.yaml",
                                                  help="an xnorkit config plus a search: section (docs/explore.md)")],
            out: Annotated[Path, typer.Option("-o", "--out", help="the study folder")] = Path("out/study"),
            trials: Annotated[int | None, typer.Option(min=1, help="the study's size (default search.trials)")]
            = None,
            workers: Annotated[int | None, typer.Option(min=1, help="trials at once (default: Ray's CPUs)")] = None,
            address: Annotated[str | None, typer.Option(help="a Ray cluster's address (`ray start`); default: "
                                                             "Ray on this machine")] = None,
            storage: Annotated[str | None, typer.Option(help="the study's SQLAlchemy URL (default: SQLite in the "
                                                             "study folder)")] = None,
            data_dir: DataDir = None) -> None:
    """Search training and hardware settings (Optuna on Ray); rerun to resume; ends with the Pareto front."""
    from xnorkit import tools

    tools.require_extra("torch", "brevitas", "sklearn", "ray", "optuna", "sqlalchemy", "matplotlib")
    from xnorkit import explore as explore_mod

    shown = [""]

    def show(counts) -> None:  # a line when something changed
        if counts.line() != shown[0]:
            shown[0] = counts.line()
            step(f"explore: {shown[0]}")

    with _progress("explore: starting Ray") as step:
        summary = explore_mod.run(space, out, trials, workers, address, storage, data_dir, progress=show)
    front = [t for t in summary["trials"] if t["number"] in summary["front"]]
    table = _front_table(summary, front)
    console.print(table)
    console.print(f"wrote {out / 'report.md'} and {out / 'report.html'}")


def _front_table(summary: dict, front: list[dict]):
    from rich.table import Table

    from xnorkit.study_report import value_text

    names = [name for name, _ in summary["objectives"]]
    params = sorted({k for t in front for k in t["params"]})
    table = Table(title=f"Pareto front: {len(front)} of {len(summary['trials'])} trials")
    for column in ("trial", *params, *names):
        table.add_column(column, justify="right")
    for t in front:
        table.add_row(str(t["number"]), *(str(t["params"][p]) for p in params),
                      *(value_text(t["figures"].get(n, "")) for n in names))
    return table


@app.command()
def train(config: Annotated[Path | None, typer.Argument(help="YAML config")] = None,
          out: Out = Path("out/train"), data_dir: DataDir = None) -> None:
    """Quantization-aware training with Brevitas by the config's recipe (distillation, structured sparsity,
    pruning, weight sharing); writes model.onnx (QONNX), checkpoint.pt, metrics.json."""
    from xnorkit import outputs, tools

    tools.require_extra("torch", "brevitas", "sklearn")
    from xnorkit.flow import _progress, stage_progress
    from xnorkit.quant_train import config as config_mod
    from xnorkit.quant_train import data as data_mod
    from xnorkit.quant_train import recipe
    from xnorkit.quant_train import train as train_mod

    cfg = config_mod.load(config)
    outputs.check_target(out, "run")  # before training, not after it
    data = data_mod.load(cfg.dataset, data_dir)
    with _progress(console) as progress:
        model, metrics = recipe.run(cfg, data, stage_progress(progress))
    with outputs.replacing(out, "run") as tmp:
        train_mod.save_run(model, metrics, cfg, data, tmp)
    console.print(f"test accuracy {metrics['test_accuracy']:.2%}; wrote {out}/model.onnx")


@app.command(name="compile")
def compile_cmd(model: Annotated[Path, typer.Argument(help="QONNX model")], out: Out = Path("build"),
                input_quant: Annotated[str | None, typer.Option(
                    help="quantize a float network input first: int8, uint8, int8:scale=0.0625, fixed<16,6> "
                         "(the QONNX compiled, with this quantizer, is saved as BUILD/model.onnx)")] = None) -> None:
    """QONNX to the integer IR and golden model in BUILD/."""
    from xnorkit import api

    compiled = api.compile(model, out, input_quant)
    console.print(f"compiled {len(compiled.graph.nodes)} IR nodes into {out}/")
    for line in compiled.describe():
        console.print(line, markup=False, highlight=False)


@app.command()
def predict(build_dir: Annotated[Path, typer.Argument(metavar="BUILD")],
            backend: Annotated[PredictBackend, typer.Option(help="which backend runs the inputs")]
            = PredictBackend.golden,
            input: Annotated[Path, typer.Option("--input", help="float32 .npy, (N, *input shape)")] = Path("X.npy"),
            output: Annotated[Path, typer.Option("--output", help="where to write Y.npy")] = Path("Y.npy"),
            dequantize: Annotated[bool, typer.Option(help="float outputs instead of the integers")] = False,
            simulator: Annotated[Simulator, typer.Option(help="for --backend rtl")] = Simulator.verilator,
            workers: Annotated[int | None, typer.Option(min=1, help="shard the inputs over this many Ray tasks "
                                                                    "(rtl, hls, c, cortex-m4)")] = None,
            address: Annotated[str | None, typer.Option(help="shard over a Ray cluster (`ray start`)")] = None,
            ) -> None:
    """Run inputs through any backend; integers (int64) or, with --dequantize, float32 outputs."""
    from xnorkit.flow import predict_cli

    shards = {"workers": workers, "address": address} if workers or address else None
    y = predict_cli(build_dir, backend.value, input, output, dequantize, simulator.value, shards)
    console.print(f"{backend.value}: {len(y)} outputs written to {output}")


@app.command()
def hw(build_dir: Annotated[Path, typer.Argument(metavar="BUILD")],
       fold: Annotated[Path | None, typer.Option(help='folding JSON {"layer": {"pe": N, "simd": N}}')] = None,
       target_cycles: Annotated[int, typer.Option(help="initiation interval the solver aims for")] = 128,
       target_fps: Annotated[float | None, typer.Option(help="frames per second the solver aims for")] = None,
       clock_mhz: Annotated[float, typer.Option(help="clock for --target-fps")] = 200.0,
       exit_rate: Annotated[float, typer.Option(help="share of inputs expected to leave at the early exit (xnorkit "
                                                     "exits): the solver folds the layers after it for the rest")]
       = 0.0,
       board: Annotated[str | None, typer.Option(help=f"FPGA board: the fastest folding that fits it "
                                                      f"({_boards('fpga')})")] = None,
       board_file: Annotated[Path | None, typer.Option(help="your own FPGA board's YAML (the schema of "
                                                            "`xnorkit boards`), instead of --board")] = None,
       backend: Annotated[HwBackend, typer.Option(help="rtl (SystemVerilog), hls (Vitis HLS C++, checked with g++) "
                                                       "or hls4ml (hls4ml's project and its outputs against golden)")]
       = HwBackend.rtl,
       input: Annotated[Path | None, typer.Option("--input", help="float32 .npy inputs for the hls4ml comparison "
                                                                   "(else 64 seeded random ones)")] = None,
       vendor_project: Annotated[bool, typer.Option(help="with a Vivado board: its project script, the Verilog "
                                                         "AXI4-Stream wrapper and the PYNQ driver into "
                                                         "BUILD/synth/BOARD/vivado/, without synthesis")] = False,
       name: Annotated[str | None, typer.Option(help="prefix of every module and memory file (NAME_top, "
                                                     "NAME_l0_weights.mem; default from the model file's name), "
                                                     "so that two designs live in one project")] = None,
       writable_weights: Annotated[str | None, typer.Option(help="'all' or layer names (comma-separated): their "
                                                                 "weights and thresholds writable at run time over "
                                                                 "AXI4-Lite (`xnorkit weights` makes the loads)")]
       = None
       ) -> None:
    """SystemVerilog for the network into BUILD/rtl/ (with --backend hls also Vitis HLS C++ into BUILD/hls/)."""
    from xnorkit import api, boards
    from xnorkit.hw import folding as fold_mod

    target_cycles = _target_cycles(target_cycles, target_fps, clock_mhz, exit_rate)
    if backend is HwBackend.hls4ml:
        _hls4ml(build_dir, input)
        return
    if (board or board_file) and (fold is not None or target_fps is not None):
        raise XnorkitError("--board picks the folding itself: give it without --fold and --target-fps")
    folding = fold_mod.to_json(fold_mod.load(fold)) if fold else None
    made = api.generate_hw(build_dir, board=board, board_file=board_file, folding=folding,
                           target_cycles=target_cycles, exit_rate=exit_rate, hls=backend is HwBackend.hls,
                           vendor_project=vendor_project, name=name, writable_weights=writable_weights)
    info = made.design
    exit_pace = (f" ({info['exit_interval']} while few inputs stay past the early exit)" if "exit_interval" in info
                 else "")
    console.print(f"wrote {build_dir}/rtl/ (top {info['top']}): {len(info['layers'])} layers, "
                  f"{info['initiation_interval']} cycles "
                  f"per inference{exit_pace}; folding {json.dumps(info['folding'])}")
    if made.board is not None:
        target, est = boards.choose(board, board_file, "fpga"), made.estimate
        console.print(f"{target.name}: estimated {est['lut']:,} of {target.lut:,} LUTs, {est['ff']:,} of "
                      f"{target.ff:,} FFs, {est['bram']} of {target.bram} block RAMs; {target.clock_mhz:g} MHz -> "
                      f"{made.inferences_per_second:,.0f} inferences/s")
    if made.hls is not None:
        console.print(f"wrote {made.hls}/ (xk_model.cpp, xk_weights.h, xk_hls.h, xk_hls_tb.cpp, run_hls.tcl); g++: "
                      f"bit-exact against golden on {made.hls_checked} inputs")
    if made.vendor_project is not None:
        console.print(f"wrote {made.vendor_project}/: create_project.tcl (vivado -mode batch -source it), the "
                      "sources and weights" + (", xnorkit_axis.v, xnorkit_pynq.py" if
                                               (made.vendor_project / "xnorkit_pynq.py").exists() else ""))


def _target_cycles(target_cycles: int, target_fps: float | None, clock_mhz: float, exit_rate: float) -> int:
    """The interval the solver aims for: --target-cycles, or the clock over --target-fps."""
    import math

    if not all(math.isfinite(v) for v in (clock_mhz, exit_rate, target_fps or 1.0)) or not 0 <= exit_rate < 1:
        raise XnorkitError("--clock-mhz, --target-fps must be finite and positive, --exit-rate in [0, 1)")
    if target_fps is not None:
        if target_fps <= 0 or clock_mhz <= 0:
            raise XnorkitError("--target-fps and --clock-mhz must be positive")
        target_cycles = max(1, int(clock_mhz * 1e6 // target_fps))
    if target_cycles < 1:
        raise XnorkitError("--target-cycles must be >= 1")
    return target_cycles


def _hls4ml(build_dir: Path, input: Path | None) -> None:
    """hls4ml's project of the model and its outputs against golden (given inputs, else 64 seeded ones)."""
    import numpy as np

    from xnorkit import build, golden, tools

    tools.require_extra("hls4ml")
    from xnorkit.hw import hls4ml_compare

    graph = build.load(build_dir)
    if input is not None:
        x = build.check_inputs(graph, build.read_inputs(input))
    else:  # integer inputs of the model's range, as the floats its input quantizer takes
        q = graph.nodes[0]
        x = ((golden.random_int_inputs(graph, 64) - q.zero_point) * q.scale).astype(np.float32)
    hls4ml_compare.run(build_dir, graph, x)
    console.print((Path(build_dir) / "hls4ml" / "comparison.md").read_text())


@app.command()
def synth(build_dir: Annotated[Path, typer.Argument(metavar="BUILD")],
          board: Annotated[str | None, typer.Option(help=f"FPGA board ({_boards('fpga')})")] = None,
          board_file: Annotated[Path | None, typer.Option(help="your own FPGA board's YAML, instead of --board")]
          = None,
          place_route: Annotated[bool, typer.Option(help="nextpnr placement and routing (open-flow boards)")] = True,
          seed: Annotated[int, typer.Option(help="nextpnr's placer seed")] = 1,
          per_instance: Annotated[bool, typer.Option(help="synthesize each stage, FIFO and width converter alone "
                                                          "and sum them (designs too large for one Yosys run; "
                                                          "counts only, no place and route)")] = False) -> None:
    """Synthesis of BUILD/rtl for a board with open tools: Yosys resource counts, and for iCE40 / ECP5 boards
    placement, routing, Fmax and a bitstream. Generates BUILD/rtl for the board first when there is none."""
    from xnorkit import api

    if board is None and board_file is None:
        raise XnorkitError("name the board: --board NAME (xnorkit boards) or --board-file PATH")
    with _progress(f"synthesizing {build_dir} (the logs stream into {Path(build_dir) / 'synth'}/)") as progress:
        result = api.synth(build_dir, board, board_file=board_file, place_route=place_route, seed=seed,
                           progress=progress, per_instance=per_instance)
    t, c = result.total, result.capacity
    console.print(f"{result.board}: {t.lut:,} of {c['lut']:,} LUTs ({t.lut / c['lut']:.1%}), "
                  f"{t.ff:,} of {c['ff']:,} FFs, "
                  f"{t.bram} of {c['bram']} block RAMs, {t.dsp} of {c['dsp']} DSPs"
                  + (f"; Fmax {result.fmax_mhz:g} MHz (clock {result.clock_mhz:g} MHz)" if result.routed else "")
                  + (f"; bitstream {result.bitstream}" if result.bitstream else ""))
    console.print(f"wrote {Path(build_dir) / 'synth' / result.board}/ (utilization.json, "
                  + ("per instance; " if per_instance else "netlist.v, ") + "logs)")


@app.command()
def weights(build_dir: Annotated[Path, typer.Argument(metavar="BUILD")],
            model: Annotated[Path, typer.Argument(metavar="NEW_MODEL", help="the retrained QONNX model")],
            output: Annotated[Path | None, typer.Option("-o", "--output", help="default BUILD/weights.bin")] = None,
            input_quant: Annotated[str | None, typer.Option(help="as given to `xnorkit compile`")] = None) -> None:
    """The AXI4-Lite writes that load a retrained model of the same structure into BUILD's writable layers (built
    with `xnorkit hw --writable-weights`): no new synthesis. Checks that everything else is unchanged."""
    from xnorkit import api

    out, count = api.weight_writes(build_dir, model, output, input_quant)
    console.print(f"wrote {out}: {count:,} register writes (uint32 address, value pairs; the PYNQ driver's "
                  "load_weights() takes the file)")


@app.command()
def sim(build_dir: Annotated[Path, typer.Argument(metavar="BUILD")],
        input: Annotated[Path | None, typer.Option("--input", help="float32 .npy; else random inputs")] = None,
        count: Annotated[int, typer.Option(help="random inputs when --input is not given")] = 64,
        simulator: Annotated[Simulator, typer.Option(help="which simulator runs the cocotb testbench")]
        = Simulator.verilator,
        stall: Annotated[float, typer.Option(help="probability of a stall per cycle on each side")] = 0.3,
        waves: Annotated[bool, typer.Option(help="write a waveform file")] = False,
        bulk: Annotated[bool, typer.Option(help="the compiled Verilator C++ harness instead of cocotb (fast, for "
                                                "whole test sets)")] = False,
        gate_level: Annotated[str | None, typer.Option(help="simulate the netlist `xnorkit synth --board BOARD` "
                                                           "wrote (an open-flow board: "
                                                           f"{_open_flow_boards()}), with the C++ harness")] = None,
        seed: int = 0) -> None:
    """Simulation of BUILD/rtl (cocotb, or the C++ harness with --bulk): bit-exact check against golden with
    random stalls, then back to back for cycles per inference."""
    from xnorkit import build, golden, tools
    from xnorkit.hw import emit_sv
    from xnorkit.sim import runner

    simulator = simulator.value
    tools.require_extra("verilator" if bulk or gate_level else "cocotb")
    if not 0.0 <= stall < 1.0:
        raise XnorkitError("--stall must be in [0, 1)")
    if input is None and not 1 <= count <= 1_000_000:
        raise XnorkitError("--count must be in 1..1000000")
    graph = build.load(build_dir)
    if not (Path(build_dir) / "rtl" / "design.json").exists():
        build.generate_hw(build_dir)
    if input is not None:
        x_int = golden.quantize_input(graph, build.check_inputs(graph, build.read_inputs(input)))
    else:
        x_int = golden.random_int_inputs(graph, count, seed)
    expected = golden.predict_from_int(graph, x_int)
    if gate_level is not None:
        netlist = _netlist(build_dir, gate_level)
        stalled = runner.simulate_bulk(Path(build_dir) / "rtl", x_int, expected, stall, stall, seed, netlist)
        clean = runner.simulate_bulk(Path(build_dir) / "rtl", x_int, expected, gate_level=netlist)
    elif bulk:
        if simulator != "verilator" or waves:
            raise XnorkitError("--bulk runs the Verilator C++ harness: no --simulator icarus or --waves with it")
        stalled = runner.simulate_bulk(Path(build_dir) / "rtl", x_int, expected, stall, stall, seed)
        clean = runner.simulate_bulk(Path(build_dir) / "rtl", x_int, expected)
    else:
        stalled, clean = _cocotb_runs(Path(build_dir) / "rtl", x_int, expected, simulator, stall, seed, waves)
    design = emit_sv.load_design(Path(build_dir) / "rtl")
    for name, result in (("with stalls", stalled), ("back to back", clean)):
        if result.mismatch:
            console.print(f"[red]MISMATCH ({name}): {result.mismatch}[/red]")
            raise typer.Exit(1)
    how = f"gate-level netlist for {gate_level}, byte-wide shell" if gate_level else simulator
    console.print(f"{len(x_int)} inputs bit-exact against golden ({how}{' C++ harness' if bulk else ''}, "
                  f"stalls {stall}); "
                  f"{clean.steady_state_cycles:.1f} cycles per inference measured, "
                  f"{design['initiation_interval']} analytical; latency {clean.latency} cycles (estimate "
                  f"{design['latency_estimate']})")
    if stalled.waves is not None:
        console.print(f"waveform: {stalled.waves} (the run with stalls; open it with GTKWave or Surfer)")


def _cocotb_runs(rtl: Path, x_int, expected, simulator: str, stall: float, seed: int, waves: bool) -> tuple:
    """The cocotb testbench with stalls, then back to back on the same build, each run's progress shown."""
    from xnorkit.sim import runner

    with _progress(f"simulating {len(x_int)} inputs ({simulator}, cocotb)") as say:
        def told(run: str):
            return lambda done, total: say(f"{run}: {done} of {total} outputs simulated")

        stalled = runner.simulate(rtl, x_int, expected, simulator, stall, stall, seed, waves,
                                  progress=told("with stalls"))
        clean = runner.simulate(rtl, x_int, expected, simulator, rebuild=False, progress=told("back to back"))
    return stalled, clean


def _netlist(build_dir: Path, board: str) -> Path:
    """BUILD/synth/BOARD, where `xnorkit synth` wrote the netlist (a board's name, never a path)."""
    import re

    from xnorkit.boards import SAFE_NAME

    if not re.fullmatch(SAFE_NAME, board):
        raise XnorkitError(f"--gate-level takes a board's name, e.g. icebreaker (got {board[:64]!r})")
    netlist = Path(build_dir) / "synth" / board
    if not (netlist / "utilization.json").exists():
        raise XnorkitError(f"no netlist for {board} in {netlist}; run `xnorkit synth {build_dir} --board "
                           f"{board}` first")
    return netlist


@app.command()
def firmware(build_dir: Annotated[Path, typer.Argument(metavar="BUILD")],
             board: Annotated[str | None, typer.Option(help=f"MCU board the library must fit ({_boards('mcu')}; "
                                                            "default mps2-an386)")] = None,
             board_file: Annotated[Path | None, typer.Option(help="your own MCU board's YAML, instead of --board")]
             = None,
             output: Annotated[Path | None, typer.Option("-o", "--output",
                                                         help="folder (default BUILD/firmware)")] = None,
             name: Annotated[str | None, typer.Option(help="the library's name: NAME.h, NAME_infer(), NAME_* macros "
                                                           "(default from the model file's name), so that several "
                                                           "models link into one firmware")] = None) -> None:
    """C library for a microcontroller: refuses, with the numbers, a network that does not fit the board."""
    from xnorkit import api, boards
    from xnorkit.firmware import emit_c

    made = api.generate_firmware(build_dir, board=board, board_file=board_file, out=output, name=name)
    target, path, need = boards.choose(board, board_file, "mcu", default="mps2-an386"), made.folder, made.footprint
    lib = emit_c.library_name(path)
    console.print(f"wrote {path}/ ({lib}.h with {lib}_infer(), {lib}.c, kernels, Cortex-M4 start-up); "
                  f"{target.name}: flash "
                  f"{need['flash']:,} of {target.flash_bytes:,} bytes (weights {need['weights']:,}), RAM "
                  f"{need['ram']:,} of {target.ram_bytes:,} bytes (activations {need['arena']:,})")


@app.command()
def verify(build_dir: Annotated[Path, typer.Argument(metavar="BUILD")],
           input: Annotated[Path, typer.Option("--input", help="float32 .npy, (N, *input shape)")] = Path("X.npy"),
           backends: Annotated[str, typer.Option(help="comma-separated, among rtl, hls, c, cortex-m4")]
           = "rtl,c,cortex-m4",
           junit: Annotated[Path | None, typer.Option(help="write JUnit XML here (one test case per backend)")]
           = None) -> None:
    """Every backend against the golden model on your inputs, exactly: exit 1 on any difference (the first
    differing input named), 2 when a backend cannot run; --junit for CI systems (docs/ci.md)."""
    from xnorkit import api, build, outputs

    if junit is not None:
        outputs.check_file(junit)  # before the work, which can take minutes
    result = api.verify(build_dir, build.read_inputs(input), [b.strip() for b in backends.split(",") if b.strip()])
    for check in result.checks:
        console.print(("ok    " if check.ok else "FAIL  ") + check.message() + f" ({check.seconds:.1f} s)",
                      markup=False, highlight=False)
    if junit is not None:
        outputs.write_file(junit, result.junit_xml().encode())
        console.print(f"wrote {junit}")
    if not result.ok:
        raise typer.Exit(2 if any(c.error for c in result.checks) else 1)


@app.command()
def exits(build_dir: Annotated[Path, typer.Argument(metavar="BUILD")],
          margin: Annotated[list[int] | None, typer.Option("--margin", help="integer margin threshold, one per "
                                                           "early exit (repeat the option)")] = None,
          calibrate: Annotated[Dataset | None, typer.Option(help="calibrate the one exit on this dataset's "
                                                            "held-out tail of the training split")] = None,
          allowance: Annotated[float, typer.Option(help="accuracy the cascade may lose on held-out data")] = 0.002,
          off: Annotated[bool, typer.Option("--off", help="always compute every output")] = False,
          data_dir: DataDir = None) -> None:
    """Early exits that stop the inference: an input leaves at the first exit whose top-two margin (integers)
    reaches its threshold; golden, the C library and QEMU follow it, and report the exit taken."""
    from xnorkit import build

    if off + (margin is not None) + (calibrate is not None) != 1:
        raise XnorkitError("give exactly one of --margin M (per exit), --calibrate DATASET or --off")
    if calibrate is not None:
        from xnorkit.quant_train import data as data_mod

        data = data_mod.load(calibrate.value, data_dir)
        held = max(1, len(data.x_train) // 12)  # as the benches: the training split's tail, never the test split
        graph = build.load(build_dir)
        x = data.x_train[-held:].reshape(-1, *graph.input_shape)
        margin = [build.calibrate_exit(build_dir, x, data.y_train[-held:], allowance)]
    graph = build.set_exits(build_dir, None if off else margin)
    if graph.exits:
        console.print("early exits: " + ", ".join(f"{t} at margin >= {m}" for t, m in graph.exits))
    else:
        console.print("early exits off: every output is computed")


@app.command("boards")
def list_boards() -> None:
    """The board definitions: FPGAs (part, LUTs, flip-flops, block RAMs, DSPs, clock, flow) and microcontrollers
    (part, CPU, clock, flash, RAM)."""
    from rich.table import Table

    from xnorkit import boards as boards_mod

    fpgas = Table("FPGA board", "part", "LUT", "FF", "BRAM", "DSP", "MHz", "flow", "description")
    for b in map(boards_mod.load, boards_mod.names("fpga")):
        flow = "Yosys + nextpnr" if b.toolchain == "open" else "Yosys counts, Vivado project"
        fpgas.add_row(b.name, b.part, f"{b.lut:,}", f"{b.ff:,}", str(b.bram), str(b.dsp), f"{b.clock_mhz:g}", flow,
                      b.description)
    mcus = Table("MCU board", "part", "cpu", "MHz", "flash", "RAM", "description")
    for b in map(boards_mod.load, boards_mod.names("mcu")):
        mcus.add_row(b.name, b.part, b.cpu, f"{b.clock_mhz:g}", f"{b.flash_bytes:,}", f"{b.ram_bytes:,}",
                     b.description)
    console.print(fpgas)
    console.print(mcus)


@app.command()
def report(builds: Annotated[list[Path], typer.Argument(metavar="BUILD...", help="one or more builds, or a study "
                                                                          "folder of `xnorkit explore`")],
           output: Annotated[Path | None, typer.Option("-o", "--output", help="folder (default: the first BUILD)")]
           = None) -> None:
    """report.md and a self-contained report.html: per-layer cycles and resources (estimate and Yosys),
    pipeline balance, board utilization, the accuracy ladder of a flow, and with several builds a Pareto chart."""
    from xnorkit import api, outputs

    if len(builds) == 1 and outputs.kind_of(builds[0]) == "explore":  # a study: its Pareto front
        from xnorkit import tools

        tools.require_extra("optuna", "sqlalchemy", "matplotlib")
        from xnorkit import study_report

        md, page = study_report.write(builds[0])
    else:
        md, page = api.write_report(builds, output)
    console.print(f"wrote {md} and {page}")


@app.command()
def inspect(build_dir: Annotated[Path, typer.Argument(metavar="BUILD")],
            as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False) -> None:
    """Per layer of the network the backends build: type, shapes, bit widths, weights, density, MACs per
    inference, memory bits."""
    from dataclasses import asdict

    from rich.table import Table

    from xnorkit import analysis, build

    graph = build.backend_graph(build_dir)
    rows = analysis.layer_stats(graph)
    design = None
    if (Path(build_dir) / "rtl" / "design.json").exists():
        from xnorkit.hw import emit_sv

        design = emit_sv.load_design(Path(build_dir) / "rtl")
    folds = {layer["name"]: layer for layer in design["layers"] if layer["kind"] == "mvtu"} if design else {}
    if as_json:
        from xnorkit import frontend

        print(json.dumps({"io": frontend.describe(graph),
                          "layers": [asdict(r) | ({"pe": folds[r.name]["pe"], "simd": folds[r.name]["simd"],
                                                   "cycles": folds[r.name]["cycles"]} if r.name in folds else {})
                                     for r in rows]} | ({"design": design} if design else {}), indent=1))
        return
    table = Table(title=f"{build_dir}: {len(graph.matmuls())} layers")
    for col in ("node", "op", "shape", "bits", "weights", "density", "MACs", "memory bits", "sparse weight bits",
                "PE x SIMD", "cycles"):
        table.add_column(col, justify="right" if col in ("weights", "MACs", "memory bits", "sparse weight bits",
                                                         "cycles") else "left")
    for r in rows:
        fold = folds.get(r.name)
        macs = f"{r.macs:,}{' b' if r.binary else ''}" if r.macs else ""
        sparse = f"{r.sparse_bits:,} ({r.sparse_format})" if r.weights and r.sparse_format != "dense" else ""
        table.add_row(r.name, r.op, r.shape, r.bits, f"{r.weights:,}" if r.weights else "",
                      f"{r.density:.0%}" if r.weights else "", macs, f"{r.memory_bits:,}" if r.memory_bits else "",
                      sparse, f"{fold['pe']} x {fold['simd']}" if fold else "", str(fold["cycles"]) if fold else "")
    total_macs = sum(r.macs for r in rows)
    table.caption = (f"{total_macs:,} MACs per inference ({sum(r.macs for r in rows if r.binary):,} binary), "
                     f"{sum(r.memory_bits for r in rows):,} bits of weights and thresholds"
                     + (f"; {design['initiation_interval']} cycles per inference" if design else ""))
    console.print(table)
    from xnorkit import frontend, passes

    for line in frontend.describe(graph):
        console.print(line, markup=False, highlight=False)

    _, removed = passes.remove_constant_neurons(build.load(build_dir))
    if removed:
        console.print("removed by the backends (constant or unread neurons, xnorkit/passes.py): "
                      + ", ".join(f"{count} after {name}" for name, count in removed.items()))
    if design:
        console.print(_stage_table(design))


def _stage_table(design: dict):
    """The generated design's stages: cycles and the first-order estimate."""
    from rich.table import Table

    table = Table(title="accelerator stages (first-order estimate, docs/hardware.md)")
    for col in ("stage", "kind", "cycles", "LUTs", "FFs", "memory bits", "weight bits (all folds -> built)"):
        table.add_column(col, justify="left" if col in ("stage", "kind") else "right")
    for layer in design["layers"]:
        # a unit skipping zero tiles stores fewer weight bits (with its step memory) than every fold
        weights = f"{layer['dense_weight_bits']:,} -> {layer['weight_bits']:,}" if "weight_bits" in layer else ""
        table.add_row(layer["name"], layer["kind"], f"{layer['cycles']:,}", f"{layer['lut']:,}",
                      f"{layer['ff']:,}", f"{layer['memory_bits']:,}", weights)
    r = design["resources"]
    exit_pace = f" ({design['exit_interval']:,} past the early exit)" if "exit_interval" in design else ""
    table.caption = (f"interval {design['initiation_interval']:,} cycles{exit_pace}; with FIFOs: "
                     f"{r['lut']:,} LUTs, {r['ff']:,} FFs, {r['memory_bits']:,} memory bits")
    return table


@app.command()
def diff(model: Annotated[Path, typer.Argument(metavar="MODEL.onnx|BUILD")],
         input: Annotated[Path, typer.Option("--input", help="float32 .npy, (N, *input shape)")]) -> None:
    """Run qonnx's executor and the golden model tensor by tensor; name the first tensor that differs.
    Exit 0 when all agree, 1 when they do not."""
    import shutil
    import tempfile

    from xnorkit import analysis, build

    x = build.read_inputs(input)
    with tempfile.TemporaryDirectory() as tmp:
        if Path(model).is_dir():
            build_dir = Path(model)
        else:
            build_dir = Path(tmp) / "build"
            build.compile_model(model, build_dir)
        graph = build.load(build_dir)
        x = build.check_inputs(graph, x)
        diffs, compared = analysis.diff_against_qonnx(graph, analysis.qonnx_tensors(build_dir, x), x)
        shutil.rmtree(tmp, ignore_errors=True)
    if not diffs:
        console.print(f"all {compared} tensors agree on {len(x)} inputs")
        return
    d = diffs[0]
    console.print(f"first difference: tensor '{d.tensor}' of node '{d.node}' ({d.op}): {d.differing} of {d.total} "
                  f"elements differ, largest difference {d.largest:g}; {len(diffs)} of {compared} tensors differ")
    raise typer.Exit(1)


def _exit(code: int) -> None:
    """Exit, ignoring signals from here on: the work is done or undone."""
    from xnorkit.outputs import stop_interrupts

    stop_interrupts()
    sys.exit(code)


def _fail(message: str, code: int = 2) -> None:
    print(f"xnorkit: error: {' '.join(message.split())[:2000]}", file=sys.stderr)
    _exit(code)


def main() -> None:
    """Every problem is one line on stderr: exit 2 for bad input (an XnorkitError, a bad option), 130 when
    interrupted (SIGINT or SIGTERM: every output is left as it was or complete, xnorkit.outputs)."""
    # typer (pinned) carries its own click; its exceptions are only importable from there
    from typer._click import exceptions as click_errors

    from xnorkit.outputs import interrupt_as_exception, was_interrupted

    interrupt_as_exception()
    try:
        code = app(standalone_mode=False)
        if was_interrupted():  # typer turns a KeyboardInterrupt inside a command into a silent exit code 130
            raise KeyboardInterrupt
    except XnorkitError as e:
        _fail(str(e))
    except click_errors.NoArgsIsHelpError as e:
        print(e.ctx.get_help() if e.ctx else "", file=sys.stderr)
        _exit(2)
    except click_errors.UsageError as e:  # a bad option value: one line, not typer's usage box
        command = e.ctx.command_path if e.ctx else "xnorkit"
        _fail(f"{e.format_message()} (see `{command} --help`)")
    except (KeyboardInterrupt, typer.Abort):
        _fail("interrupted; every output is as it was before or complete", 130)
    except click_errors.ClickException as e:
        _fail(e.format_message(), e.exit_code)
    except Exception:
        if was_interrupted():  # an exception raised while cleaning up after the interrupt
            _fail("interrupted; every output is as it was before or complete", 130)
        raise
    _exit(code if isinstance(code, int) else 0)
