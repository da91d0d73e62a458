"""Run a generated design under cocotb (Verilator by default, Icarus as second simulator)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

import xnorkit
from xnorkit import layout, packing, tools
from xnorkit.errors import XnorkitError
from xnorkit.hw import emit_sv

SIMULATORS = ("verilator", "icarus")


@dataclass(frozen=True)
class SimResult:
    outputs: np.ndarray        # (N, out_features) int64, as the RTL produced them
    accepted_at: np.ndarray    # cycle each input's first beat was accepted
    completed_at: np.ndarray   # cycle each output's last beat was delivered
    mismatch: str | None       # the scoreboard's report, None when every output equals the expected
    waves: Path | None = None  # the waveform file, when asked for

    @property
    def steady_state_cycles(self) -> float:
        """Cycles per inference between consecutive outputs, back to back (first output excluded)."""
        if len(self.completed_at) < 2:
            return float("nan")
        return float(np.diff(self.completed_at).mean())

    @property
    def latency(self) -> int:
        return int(self.completed_at[0] - self.accepted_at[0])


def simulate(rtl_dir: Path, inputs: np.ndarray, expected: np.ndarray | None = None, simulator: str = "verilator",
             stall_in: float = 0.0, stall_out: float = 0.0, seed: int = 0, waves: bool = False,
             rebuild: bool = True, progress: Callable[[int, int], None] | None = None,
             weight_writes: np.ndarray | None = None) -> SimResult:
    """Stream integer `inputs` (N, features) through the design in `rtl_dir` and collect its outputs.
    With `expected`, the testbench's scoreboard checks every output (SimResult.mismatch). `rebuild=False`
    reuses the simulator build of an earlier call on the same design; `progress(done, total)` hears the outputs
    simulated so far while it runs. `weight_writes` ((address, value) rows, `xnorkit weights`): a design with
    writable weights gets them over AXI4-Lite first (sim/tb_weights.py)."""
    if simulator not in SIMULATORS:
        raise XnorkitError(f"unknown simulator '{simulator}'; choose {' or '.join(SIMULATORS)}")
    tools.require("verilator" if simulator == "verilator" else "iverilog")
    from cocotb_tools.runner import get_results, get_runner

    rtl_dir = Path(rtl_dir).resolve()
    design = emit_sv.load_design(rtl_dir)
    work = rtl_dir.parent / "sim_build" / simulator
    work.mkdir(parents=True, exist_ok=True)
    settings = _stream_settings(design, inputs, expected, work, "", seed, stall_in, stall_out)
    settings["progress"] = str(work / "progress")
    if weight_writes is not None:
        if "writable" not in design:
            raise XnorkitError(f"{rtl_dir} has no writable weights; generate it with `xnorkit hw --writable-weights`")
        np.save(work / "writes.npy", np.asarray(weight_writes, dtype=np.int64).reshape(-1, 2))
        settings["writes"] = str(work / "writes.npy")
    (work / "settings.json").write_text(json.dumps(settings))

    runner = get_runner(simulator)
    if rebuild or not (work / "results.xml").exists():
        _cocotb_build(runner, simulator, [rtl_dir / s for s in design["sources"]], design["top"], work, waves)
    env = _test_env(work)
    xml = work / "results.xml"
    xml.unlink(missing_ok=True)
    _watching(Path(settings["progress"]), progress, lambda: runner.test(
        test_module="xnorkit.sim.tb_weights" if weight_writes is not None else "xnorkit.sim.tb_network",
        hdl_toplevel=design["top"], hdl_toplevel_lang="verilog",
        build_dir=work, test_dir=rtl_dir, extra_env=env, waves=waves, results_xml=str(xml),
        log_file=work / "sim.log"))
    result = _cocotb_result(rtl_dir, work, get_results(xml)[1] if xml.exists() else 1)
    if waves:
        found = list(work.glob("*.fst")) + list(work.glob("*.vcd")) + list(rtl_dir.glob("*.vcd"))
        for f in found:
            shutil.copy(f, rtl_dir.parent / f.name)
        result = replace(result, waves=rtl_dir.parent / found[0].name if found else None)
    return result


def _watching(path: Path, progress: Callable[[int, int], None] | None, run: Callable[[], object]) -> None:
    """`run()` (the cocotb test), telling `progress` what the testbench writes into `path` while it runs. cocotb's
    runner exits on a failed test; the caller reads the scoreboard's report."""
    import threading

    path.unlink(missing_ok=True)
    done = threading.Event()

    def watch() -> None:
        last, stop = None, False
        while not stop:
            stop = done.wait(0.5)  # one more look once the run is over: its last count
            text = path.read_text() if path.exists() else ""
            if text and text != last and progress is not None:
                progress(*(int(v) for v in text.split()))
            last = text

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run()
    except SystemExit:
        pass
    finally:
        done.set()
        watcher.join()


def _stream_settings(design: dict, inputs: np.ndarray, expected: np.ndarray | None, work: Path, prefix: str,
                     seed: int, stall_in: float, stall_out: float) -> dict:
    """What sim/tb_network.py needs to drive one design's streams (ports after `prefix`): its vectors written into
    `work` (inputs in stream order; expected outputs in the IR's order, flattened: the testbench turns its outputs
    into that order), where its results go, the stalls and a time limit."""
    vectors = {"inputs": layout.stream_order(inputs, design["input"])}
    if expected is not None:
        vectors["expected"] = np.asarray(expected, dtype=np.int64).reshape(len(inputs), -1)
    np.savez(work / f"{prefix}vectors.npz", **vectors)
    results = work / f"{prefix}results.npz"
    results.unlink(missing_ok=True)
    return {"prefix": prefix, "design": design, "vectors": str(work / f"{prefix}vectors.npz"),
            "results": str(results), "seed": seed, "stall_in": stall_in, "stall_out": stall_out,
            "max_cycles": _max_cycles(design, len(inputs), stall_in, stall_out)}


def side_by_side(top: str, designs: dict[str, dict]) -> str:
    """A top level `top` holding designs side by side (port prefix -> its design.json): one clk and rst_n, each
    design's stream ports after its prefix. For simulate_system, and a start for a top of one's own."""
    ports, instances = ["    input  logic clk", "    input  logic rst_n"], []
    for prefix, d in designs.items():
        w_in = d["input"]["elems_per_beat"] * d["input"]["elem_bits"]
        w_out = d["output"]["elems_per_beat"] * d["output"]["elem_bits"]
        ports += [f"    input  logic [{w_in - 1}:0] {prefix}s_axis_tdata", f"    input  logic {prefix}s_axis_tvalid",
                  f"    output logic {prefix}s_axis_tready", f"    output logic [{w_out - 1}:0] {prefix}m_axis_tdata",
                  f"    output logic {prefix}m_axis_tvalid", f"    input  logic {prefix}m_axis_tready"]
        streams = ", ".join(f".{side}_axis_{s}({prefix}{side}_axis_{s})" for side in "sm"
                            for s in ("tdata", "tvalid", "tready"))
        instances.append(f"  {d['top']} u_{prefix}{d.get('name', 'xnorkit')} (.clk, .rst_n, {streams});")
    return (f"// {len(designs)} designs generated by xnorkit, side by side\nmodule {top} (\n" + ",\n".join(ports)
            + "\n);\n" + "\n".join(instances) + "\nendmodule\n")


def simulate_system(top_file: Path, top: str, designs: dict[str, Path], inputs: dict[str, np.ndarray],
                    expected: dict[str, np.ndarray], stall: float = 0.3, seed: int = 0,
                    rebuild: bool = True) -> dict[str, SimResult]:
    """Several generated designs in one top level under Verilator, built once: `top_file` holds module `top`
    (side_by_side writes one), which instantiates each design of `designs` (port prefix -> its rtl folder; each
    design's s_axis_* and m_axis_* ports appear in the top after its prefix, with one clk and rst_n). The designs
    must carry different names (`xnorkit hw --name`), so that their modules and memory files do not clash. All
    streams run at once with random stalls; each prefix's outputs, checked against its `expected`.
    `rebuild=False` reuses the build of an earlier call on the same top."""
    tools.require("verilator")
    from cocotb_tools.runner import get_runner

    top_file = Path(top_file).resolve()
    work = top_file.parent / "sim_build" / top
    work.mkdir(parents=True, exist_ok=True)
    sources, streams = [], []
    for i, (prefix, rtl_dir) in enumerate(designs.items()):
        design = emit_sv.load_design(Path(rtl_dir))
        sources += [Path(rtl_dir).resolve() / f for f in design["sources"]]
        for mem in design["memories"]:  # $readmemh reads from the simulator's working folder
            shutil.copy(Path(rtl_dir) / mem, work / mem)
        streams.append(_stream_settings(design, inputs[prefix], expected[prefix], work, prefix, seed + i, stall,
                                        stall))
    if len({s.name for s in sources}) != len(sources):
        raise XnorkitError("the designs share module files; generate each with its own `xnorkit hw --name`")
    (work / "settings.json").write_text(json.dumps({"streams": streams}))
    runner = get_runner("verilator")
    if rebuild or not (work / "results.xml").exists():
        _cocotb_build(runner, "verilator", [*sources, top_file], top, work, False)
    try:
        runner.test(test_module="xnorkit.sim.tb_network", hdl_toplevel=top, hdl_toplevel_lang="verilog",
                    build_dir=work, test_dir=work, extra_env=_test_env(work), results_xml=str(work / "results.xml"),
                    log_file=work / "sim.log")
    except SystemExit:
        pass
    results = {}
    for stream in streams:
        if not Path(stream["results"]).exists():
            raise XnorkitError(f"simulation of {top} failed for the designs at '{stream['prefix']}'; see "
                               f"{work / 'sim.log'}")
        with np.load(stream["results"]) as r:
            results[stream["prefix"]] = SimResult(r["outputs"], r["accepted_at"], r["completed_at"],
                                                  mismatch_report(r["outputs"], expected[stream["prefix"]]))
    return results


def _cocotb_build(runner, simulator: str, sources: list[Path], top: str, work: Path, waves: bool,
                  parameters: dict | None = None) -> None:
    """Build `top` from `sources` (with `parameters`) with cocotb's runner in `work` (with Verilator, the make
    fixes of tools)."""
    build_args = ["-O3", "--x-assign", "fast", "--x-initial", "fast"] if simulator == "verilator" else []
    if waves and simulator == "verilator":
        build_args.append("--trace-fst")
    fixes = tools.verilator_make_fixes() if simulator == "verilator" else {}
    saved = {k: os.environ.get(k) for k in fixes}
    os.environ.update(fixes)
    try:
        runner.build(
            sources=sources, hdl_toplevel=top, parameters=parameters or {}, build_dir=work, build_args=build_args,
            waves=waves, timescale=("1ns", "1ps"), always=True, log_file=work / "build.log",
        )
    except Exception:
        log = work / "build.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        first = next((ln.strip() for ln in text.splitlines() if "error" in ln.lower()), "see the build log")
        raise XnorkitError(f"{simulator} build of {top} failed: {first} ({log})") from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def simulate_shell(rtl_dir: Path, inputs: np.ndarray, bus_bytes: int = 8, stall_in: float = 0.0,
                   stall_out: float = 0.0, seed: int = 0, max_frame: int = 4) -> tuple[list[bytes], int]:
    """Integer `inputs` (N, features) through the design's AXI4-Stream shell on a bus of `bus_bytes`, driven and
    read by cocotbext-axi (sim/tb_shell.py) under Verilator: the input in frames of 1 to `max_frame` inferences,
    random pauses on both sides. Returns the packets received, in order (the bytes TKEEP marks, each ended by
    TLAST), and how many more packets came after one per input."""
    tools.require("verilator")
    tools.require_extra("cocotbext.axi")
    from cocotb_tools.runner import get_runner

    rtl_dir = Path(rtl_dir).resolve()
    design = emit_sv.load_design(rtl_dir)
    work = rtl_dir.parent / "sim_build" / f"shell_{bus_bytes}"
    work.mkdir(parents=True, exist_ok=True)
    info = design["input"]
    beats = packing.stream_bytes(layout.stream_order(inputs, info), info["elems_per_beat"], info["elem_bits"])
    np.save(work / "inputs.npy", packing.bus_words(beats, bus_bytes))
    results = work / "packets.json"
    results.unlink(missing_ok=True)
    settings = {"inputs": str(work / "inputs.npy"), "results": str(results), "seed": seed, "stall_in": stall_in,
                "stall_out": stall_out, "max_frame": max_frame,
                "max_cycles": _max_cycles(design, len(inputs), stall_in, stall_out) * max(1, 8 // bus_bytes)}
    (work / "settings.json").write_text(json.dumps(settings))
    runner = get_runner("verilator")
    parameters = {**design["shell"]["parameters"], "BUS_BYTES": bus_bytes}
    _cocotb_build(runner, "verilator", [rtl_dir / f for f in design["shell"]["sources"]], design["shell"]["top"],
                  work, False, parameters)
    try:
        runner.test(test_module="xnorkit.sim.tb_shell", hdl_toplevel=design["shell"]["top"],
                    hdl_toplevel_lang="verilog", build_dir=work, test_dir=rtl_dir, extra_env=_test_env(work),
                    results_xml=str(work / "results.xml"), log_file=work / "sim.log")
    except SystemExit:
        pass
    if not results.exists():
        raise XnorkitError(f"the shell simulation of {rtl_dir} wrote no packets; see {work / 'sim.log'}")
    found = json.loads(results.read_text())
    return [bytes.fromhex(p) for p in found["packets"]], found["extra"]


def _test_env(work: Path) -> dict[str, str]:
    """The testbench's settings file and this package on its PYTHONPATH."""
    return {"XNORKIT_SIM_SETTINGS": str(work / "settings.json"), "PYTHONPATH": os.pathsep.join(
        p for p in (str(Path(xnorkit.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")) if p)}


def _cocotb_result(rtl_dir: Path, work: Path, failed: int) -> SimResult:
    """What the testbench wrote (results.npz), with the scoreboard's first mismatch when a test failed."""
    log = (work / "sim.log").read_text(errors="replace") if (work / "sim.log").exists() else ""
    results = work / "results.npz"
    if not results.exists():
        line = next((ln.strip() for ln in log.splitlines() if "AssertionError" in ln or "Error" in ln), "no results")
        raise XnorkitError(f"simulation of {rtl_dir} failed ({line}); see {work / 'sim.log'}")
    mismatch = None
    if failed:
        mismatch = next((ln.split("AssertionError:", 1)[1].strip() for ln in log.splitlines()
                         if "AssertionError:" in ln), "the scoreboard reported a mismatch")
    with np.load(results) as r:
        return SimResult(r["outputs"], r["accepted_at"], r["completed_at"], mismatch)


def _max_cycles(design: dict, count: int, stall_in: float, stall_out: float) -> int:
    per_input = 2 * sum(layer["cycles"] for layer in design["layers"])
    slowdown = 1.0 / max(1e-3, (1 - stall_in) * (1 - stall_out))
    return int(1000 + 4 * slowdown * per_input * (count + 2))


def _byte_beats(bits: int) -> int:
    return -(-bits // 8)


def build_bulk(rtl_dir: Path, gate_level: Path | None = None, xilinx_primitives: bool = False) -> Path:
    """Compile the design with sim/harness.cpp into one Verilator executable (cached: rebuilt only when
    a source changes). Returns the executable. With `gate_level`, a folder of hw/synth.py's (netlist.v,
    utilization.json), the synthesized netlist is compiled instead, with Yosys' models of the family's
    primitives: the network inside its byte-wide shell, as placed and routed. With `xilinx_primitives`, the
    RTL as synthesized for Xilinx 7-series: its XNOR-popcounts as LUT6_2/CARRY4 netlists (hw/popcount_x7.py)
    on Yosys' models of those primitives."""
    rtl_dir = Path(rtl_dir).resolve()
    design = emit_sv.load_design(rtl_dir)
    harness = Path(__file__).with_name("harness.cpp")
    if not harness.is_file():
        tools.package_text("xnorkit.sim", "harness.cpp")  # one line: this install lacks it
    run_dir, top, sources, in_width, out_width, inputs_of_digest = _bulk_sources(rtl_dir, design, gate_level,
                                                                                  xilinx_primitives)
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in [harness, *inputs_of_digest]))
    work = (rtl_dir.parent / "sim_build" / ("bulk_x7" if xilinx_primitives else "bulk") if gate_level is None
            else run_dir / "sim_build")
    exe = work / "Vxnorkit_top"
    stamp = work / "sources.sha256"
    if exe.exists() and stamp.exists() and stamp.read_text() == digest.hexdigest():
        return exe
    work.mkdir(parents=True, exist_ok=True)
    verilator = tools.require("verilator")
    # the harness drives a model class named Vxnorkit_top whatever the top module (--prefix)
    cmd = [verilator, "--cc", "--exe", "--build", "-O3", "--x-assign", "fast", "--x-initial", "fast", "-Wno-fatal",
           "--top-module", top, "--prefix", "Vxnorkit_top", "-Mdir", str(work), "-j", str(os.cpu_count() or 1),
           "-CFLAGS", f"-O2 -DIN_WIDTH={in_width} -DOUT_WIDTH={out_width}", *map(str, sources), str(harness)]
    if gate_level is not None:  # Yosys' cell models: timing checks and style Verilator need not see
        cmd[1:1] = ["-DNO_ICE40_DEFAULT_ASSIGNMENTS", "--no-timing", "-Wno-lint", "-Wno-style"]
    if xilinx_primitives:
        cmd[1:1] = ["-DXNORKIT_XILINX_PRIMITIVES", "-Wno-lint", "-Wno-style"]
    env = {**os.environ, **tools.verilator_make_fixes()}
    # $readmemh paths are relative: Verilator resolves them at run time from the working directory
    proc = subprocess.run(cmd, cwd=run_dir, capture_output=True, text=True, env=env)
    if proc.returncode or not exe.exists():
        log = work / "build.log"
        log.write_text(proc.stdout + proc.stderr)
        first = next((ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if "rror" in ln), "see the log")
        raise XnorkitError(f"Verilator build of {run_dir} failed: {first} ({log})")
    stamp.write_text(digest.hexdigest())
    return exe


def _bulk_sources(rtl_dir: Path, design: dict, gate_level: Path | None,
                  xilinx_primitives: bool) -> tuple[Path, str, list[Path], int, int, list[Path]]:
    """What build_bulk compiles: (the folder it runs in, the top module, the sources, its stream widths, the files
    whose digest decides a rebuild): the RTL (with the 7-series cell models), or a synthesized netlist."""
    if gate_level is None:
        run_dir, top = rtl_dir, design["top"]
        sources = [rtl_dir / s for s in design["sources"]]
        in_width = design["input"]["elems_per_beat"] * design["input"]["elem_bits"]
        out_width = design["output"]["elems_per_beat"] * design["output"]["elem_bits"]
        inputs_of_digest = [*sources, *sorted(rtl_dir.glob("*.mem"))]
        if xilinx_primitives:
            from xnorkit.hw import popcount_x7

            models = rtl_dir.parent / "sim_build" / "xilinx_cells.v"
            models.parent.mkdir(parents=True, exist_ok=True)
            models.write_text(popcount_x7.cell_models())
            sources.append(models)
    else:
        from xnorkit.hw import synth

        run_dir = Path(gate_level).resolve()
        synthesized = synth.load_result(run_dir)
        if synthesized["top"] != design["shell"]["top"]:
            raise XnorkitError(f"{run_dir} holds a netlist of {synthesized['top']}, not of the byte-wide "
                               f"{design['shell']['top']}: gate-level simulation needs an open-flow board")
        top, in_width, out_width = synthesized["top"], 8, 8
        sources = [run_dir / "netlist.v", synth.cell_library(synthesized["family"])]
        inputs_of_digest = sources
    return run_dir, top, sources, in_width, out_width, inputs_of_digest


def simulate_bulk(rtl_dir: Path, inputs: np.ndarray, expected: np.ndarray | None = None, stall_in: float = 0.0,
                  stall_out: float = 0.0, seed: int = 0, gate_level: Path | None = None,
                  xilinx_primitives: bool = False) -> SimResult:
    """Stream integer `inputs` (N, features) through the design with the compiled C++ harness
    (sim/harness.cpp): the same RTL and stream protocol as `simulate`, fast enough for whole test sets.
    With `expected`, every output is compared exactly (SimResult.mismatch). With `gate_level` (see
    `build_bulk`), the synthesized netlist runs, each beat as its bytes (xnorkit_shell); with
    `xilinx_primitives` the RTL as Xilinx 7-series synthesis reads it."""
    rtl_dir = Path(rtl_dir).resolve()
    design = emit_sv.load_design(rtl_dir)
    exe = build_bulk(rtl_dir, gate_level, xilinx_primitives)
    work = exe.parent
    in_info, out_info = design["input"], design["output"]
    inputs = layout.stream_order(inputs, design["input"])
    beats = packing.stream_bytes(inputs, in_info["elems_per_beat"], in_info["elem_bits"])
    (work / "inputs.bin").write_bytes(beats.tobytes())
    out_bytes = _byte_beats(out_info["elems_per_beat"] * out_info["elem_bits"])
    in_beats, out_beats = in_info["beats"], out_info["beats"]
    if gate_level is not None:  # one byte per beat of the shell
        in_beats *= _byte_beats(in_info["elems_per_beat"] * in_info["elem_bits"])
        out_beats *= out_bytes
    cmd = [str(exe), str(work / "inputs.bin"), str(work / "outputs.bin"), str(work / "cycles.bin"),
           str(in_beats), str(out_beats), repr(stall_in), repr(stall_out), str(seed),
           str(_max_cycles(design, len(inputs), stall_in, stall_out) + 8 * (in_beats + out_beats) * len(inputs))]
    proc = subprocess.run(cmd, cwd=work.parent if gate_level is not None else rtl_dir, capture_output=True,
                          text=True)
    if proc.returncode:
        raise XnorkitError(f"simulation of {rtl_dir} failed: {(proc.stderr or proc.stdout).strip()}")
    raw = np.fromfile(work / "outputs.bin", dtype=np.uint8).reshape(len(inputs), out_info["beats"], out_bytes)
    outputs = layout.ir_order(packing.unstream_bytes(raw, out_info["elems_per_beat"], out_info["elem_bits"],
                                              out_info["signed"]), out_info)
    cycles = np.fromfile(work / "cycles.bin", dtype=np.uint64).reshape(-1, 2).astype(np.int64)
    return SimResult(outputs, cycles[:, 0], cycles[:, 1], mismatch_report(outputs, expected))


def mismatch_report(outputs: np.ndarray, expected: np.ndarray | None) -> str | None:
    """The scoreboard's line: how many outputs differ, and the first one with its index and both values."""
    if expected is None:
        return None
    bad = np.argwhere(outputs != np.asarray(expected).reshape(outputs.shape))
    if not len(bad):
        return None
    i, j = bad[0]
    return (f"{len(np.unique(bad[:, 0]))} of {len(outputs)} outputs differ; first: input {i}, output {j}: "
            f"rtl {outputs[i, j]} golden {expected[i, j]}")
