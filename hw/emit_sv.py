"""SystemVerilog emitter: glue for a streaming dataflow accelerator built from the hand-written blocks in
hw/rtl/, rendered from the stages hw.lowering makes (the template hw/rtl/xnorkit_top.sv.j2). It computes nothing:
widths, cycles, memory sizes and resource figures are the stages' own (hw.stages), the weights and thresholds
are packed by xnorkit.packing. `emit(graph, folding) -> {relative path: text}`; no I/O. docs/hardware.md
describes the design."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jinja2
import numpy as np

import xnorkit
from xnorkit import layout, naming, packing, records, tools
from xnorkit.errors import XnorkitError
from xnorkit.hw import config_map, design_record, popcount_x7
from xnorkit.hw.folding import Folding, initiation_interval, mac_layers, to_json
from xnorkit.hw.lowering import lower
from xnorkit.hw.stages import TWO_INPUTS, Lowered, Resources, connect
from xnorkit.ir import Graph

LIBRARY = ("xk_value.sv", "xk_multi_threshold.sv", "xk_popcount.sv", "xk_xnor_popcount.sv", "xk_adder_tree.sv",
           "xk_mvtu.sv",
           "xk_sliding_window.sv", "xk_pool.sv", "xk_join.sv", "xk_threshold.sv",
           "xk_stream_fork.sv", "xk_stream_fifo.sv",
           "xk_stream_dwc.sv", "xk_exit_test.sv", "xk_exit_gate.sv", "xk_exit_merge.sv", "xk_axil_config.sv")
TOP = "xnorkit_top"
SHELL = "xnorkit_shell"  # AXI4-Stream words around TOP, for a DMA or for boards with few pins (hw/synth.py)
# hw/rtl/ names its modules xk_* and xnorkit_*; a design named NAME (xnorkit.naming) has them as NAME_*, and its
# memory files as NAME_*.mem, so that two designs live in one project
_MODULE = re.compile(r"\b(?:xk|xnorkit)_(\w+)")
_MEMORY = re.compile(r'"(\w+\.mem)"')


def named(identifier: str, name: str) -> str:
    """A module or file name of hw/rtl/ (xk_mvtu, xnorkit_top.sv, l0_weights.mem) as the design `name` has it."""
    return f"{name}_{identifier}" if identifier.endswith(".mem") else _MODULE.sub(rf"{name}_\1", identifier)


def _named_text(text: str, name: str) -> str:
    """RTL text with the design's module and memory file names."""
    return _MEMORY.sub(lambda m: f'"{name}_{m.group(1)}"', _MODULE.sub(rf"{name}_\1", text))
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                          keep_trailing_newline=True)
_TEMPLATE = _ENV.from_string(tools.package_text("xnorkit.hw", "rtl", "xnorkit_top.sv.j2"))
_SHELL_TEMPLATE = _ENV.from_string(tools.package_text("xnorkit.hw", "rtl", "xnorkit_shell.sv.j2"))


def design_info(graph: Graph, folding: Folding, low: Lowered | None = None, name: str | None = None) -> dict:
    """What testbenches and reports need to drive the top level: stream shapes, the cycle model and the
    resource estimate, from the stages (`low`, lowered here when not given), and the design's names (`name`,
    default the model's)."""
    low = low or lower(graph, folding)
    name = naming.check(name or graph.name)
    sources = [named(f, name) for f in (*LIBRARY, popcount_x7.FILE, f"{TOP}.sv")]
    stages = low.stages
    source, edges, forks = connect(low)
    total = sum((s.resources() for s in stages), Resources(0, 0, 0))
    total = sum((e.resources() for e in edges), total)
    last = stages[-1]
    features = int(np.prod(graph.input_shape))
    gate = next((s.index for s in stages if s.kind == "exit_gate"), None)
    exit_path = {} if gate is None else {
        "exit_interval": max(s.cycles for s in stages if s.index <= gate or s.kind == "exit_merge")}
    # with an early exit, the merged values one per beat (golden.with_exits)
    out_shape = (last.cycles,) if last.kind == "exit_merge" else graph.shape(graph.output)
    out_features = int(np.prod(out_shape))
    return {
        "name": name,
        "top": named(TOP, name),
        # a feature map streams pixel by pixel: the (C, H, W) input is sent in (H, W, C) order
        "input": {"features": features, "elems_per_beat": source.out_elems, "elem_bits": source.out_bits,
                  "beats": features // source.out_elems, "shape": list(graph.input_shape),
                  "layout": layout.stream_layout(graph.input_shape, graph.channels_last_input() is not None)},
        "output": {"features": out_features, "elems_per_beat": last.out_elems, "elem_bits": last.out_bits,
                   "signed": last.out_signed, "beats": out_features // last.out_elems, "shape": list(out_shape),
                   "layout": layout.stream_layout(out_shape)},
        "layers": [{"name": s.name, "kind": s.kind, "cycles": s.cycles, **s.resources().as_dict(),
                    **({k: s.params[k] for k in ("mw", "mh", "pe", "simd", "acc_bits", "positions")}
                       | s.weight_memory_bits() if s.kind == "mvtu" else {})} for s in stages],
        "resources": total.as_dict(),
        "initiation_interval": max(s.cycles for s in stages),
        # with an early exit: the interval of the stages every inference passes (the exit's layers, its test, gate
        # and merge), the pace back to back while few inputs stay for the rest
        **exit_path,
        # as if each stage finished its whole inference before the next began: an upper estimate, stages overlap
        "latency_estimate": sum(s.cycles for s in stages),
        # the slowest unit's MACs over its lanes; a design without one (a lone pool or join) is as fast as its
        # stream allows
        "ideal_interval": (initiation_interval(graph, folding) if mac_layers(graph)
                           else max(s.cycles for s in stages)),
        "folding": to_json(folding),
        **({"writable": config_map.describe(low)} if config_map.writable_stages(low) else {}),
        "sources": sources,
        "shell": {"top": named(SHELL, name), "sources": [*sources, named(f"{SHELL}.sv", name)],
                  "parameters": {"IN_W": source.out_width, "OUT_W": last.out_width,
                                 "OUT_BEATS": out_features // last.out_elems}},
    }


def _config(low: Lowered) -> dict:
    """What the top's template needs of the register map: the address widths, the regions, and per writable
    stage its region's number."""
    regions = config_map.regions(low)
    return {"regions": regions, "layer_of": {r.stage: i for i, r in enumerate(regions)},
            "addr_w": config_map.address_bits(low), "region_log2": config_map.region_log2(low),
            "cfg_w": max(1, config_map.region_log2(low))}


def load_design(rtl_dir: Path) -> dict:
    """A generated design's design.json, checked before anything reads its files: every key the simulators,
    synthesis and the report read (hw.design_record), every source and memory file it names present, each
    memory file lines of hex digits. A missing, damaged or edited design is one line."""
    rtl_dir = Path(rtl_dir)
    path = rtl_dir / "design.json"
    regenerate = f"regenerate it with `xnorkit hw {rtl_dir.parent}`"
    if not path.is_file():
        raise XnorkitError(f"{rtl_dir} has no generated design (design.json); {regenerate}")
    design = records.read_json(path, design_record.Design, regenerate)
    for name in [*design["sources"], *design["memories"], *(design.get("shell") or {}).get("sources", [])]:
        if not (rtl_dir / name).is_file():
            raise XnorkitError(f"{rtl_dir / name} is missing (design.json needs it); {regenerate}")
    for name in design["memories"]:
        lines = (rtl_dir / name).read_text(errors="replace").split()
        if not lines or not all(re.fullmatch(r"[0-9a-fA-F]+", line) for line in lines):
            raise XnorkitError(f"{rtl_dir / name} is not a memory file of hex words (edited or damaged); {regenerate}")
    return design


def emit(graph: Graph, folding: Folding, name: str | None = None) -> dict[str, str]:
    """The design's files, every module and memory file named after `name` (default the model's)."""
    name = naming.check(name or graph.name)
    low = lower(graph, folding)
    files: dict[str, str] = {}
    for s in low.stages:
        p = s.params
        if s.kind == "mvtu":
            schedule = low.schedules.get(s.index)
            words = packing.mvtu_weight_words(low.matrices[s.index], p["pe"], p["simd"], p["w_bits"], schedule)
            # a unit whose tiles are all zero stores none; its memory still has a word (MvtuMemory.depth)
            words += [0] * (s.memory().depth - len(words))
            files[p["weight_file"]] = packing.mem_file(words, p["pe"] * p["simd"] * p["w_bits"])
            if schedule is not None:
                sf_count = p["mw"] // p["simd"]
                files[p["tile_file"]] = packing.mem_file(packing.tile_words(schedule, sf_count),
                                                         packing.step_bits(sf_count))
            if low.thresholds[s.index] is not None:
                files[p["threshold_file"]] = packing.mem_file(
                    packing.mvtu_threshold_words(low.thresholds[s.index], p["pe"], p["acc_bits"]),
                    p["pe"] * p["n_thresh"] * p["acc_bits"])
        elif s.kind == "exit_test":
            files[p["score_file"]] = packing.mem_file(p["score_words"], p["w_bits"] + p["b_bits"])
        elif s.kind == "threshold":  # all channels in one word, as one pixel arrives per beat
            files[p["threshold_file"]] = packing.mem_file(
                packing.mvtu_threshold_words(low.thresholds[s.index], p["c"], p["t_bits"]),
                p["c"] * p["n_thresh"] * p["t_bits"])
    info = design_info(graph, folding, low, name)
    source, edges, forks = connect(low)
    files[f"{TOP}.sv"] = _TEMPLATE.render(stages=low.stages, top=TOP, info=info, source=source, edges=edges,
                                          forks=forks, two_inputs=TWO_INPUTS, config=_config(low))
    for source in LIBRARY:
        files[source] = tools.package_text("xnorkit.hw", "rtl", source)
    files[f"{SHELL}.sv"] = _SHELL_TEMPLATE.render(axil_addr_w=info.get("writable", {}).get("addr_bits", 0))
    files[popcount_x7.FILE] = popcount_x7.library(
        [s.params["simd"] for s in low.stages if s.xnor])
    files = {named(f, name): _named_text(text, name) if f.endswith(".sv") else text for f, text in files.items()}
    mems = sorted(f for f in files if f.endswith(".mem"))
    info["memories"] = mems
    files["design.json"] = json.dumps(info, indent=1) + "\n"
    files["filelist.f"] = "".join(f"{f}\n" for f in info["sources"])
    files[f"{name}.core"] = fusesoc_core(info, mems)
    return files


def fusesoc_core(design: dict, mems: list[str]) -> str:
    """A FuseSoC CAPI2 core of the design, named xnorkit:generated:NAME:VERSION (for FuseSoC and edalize flows):
    the sources, the weight and threshold files copied beside them ($readmemh reads them from the working
    directory), a default target, a Verilator lint target in the flow API, and the AXI4-Stream shell as a target of
    its own."""
    listed = "".join(f"      - {f}\n" for f in design["sources"])
    memory = "".join(f"      - {f}: {{copyto: {f}}}\n" for f in mems)
    with_mems = ", memories" if mems else ""
    shell = design["shell"]
    return (f"CAPI=2:\nname: xnorkit:generated:{design['name']}:{xnorkit.__version__}\n"
            "description: XNOR-popcount dataflow accelerator generated by xnorkit\n\n"
            "filesets:\n  rtl:\n    file_type: systemVerilogSource\n    files:\n" + listed +
            f"  shell:\n    file_type: systemVerilogSource\n    files:\n      - {shell['sources'][-1]}\n" +
            ("  memories:\n    file_type: user\n    files:\n" + memory if mems else "") +
            "\ntargets:\n"
            f"  default:\n    filesets: [rtl{with_mems}]\n    toplevel: {design['top']}\n"
            f"  shell:\n    filesets: [rtl, shell{with_mems}]\n    toplevel: {shell['top']}\n"
            f"  lint:\n    filesets: [rtl{with_mems}]\n    flow: lint\n"
            "    flow_options:\n      tool: verilator\n      verilator_options: [-Wall]\n"
            f"    toplevel: {design['top']}\n")
