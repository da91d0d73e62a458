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

from xnorkit import layout, packing, records, tools
from xnorkit.errors import XnorkitError
from xnorkit.hw import design_record, popcount_x7
from xnorkit.hw.folding import Folding, initiation_interval, mac_layers, to_json
from xnorkit.hw.lowering import lower
from xnorkit.hw.stages import TWO_INPUTS, Lowered, Resources, connect
from xnorkit.ir import Graph

LIBRARY = ("xk_value.sv", "xk_multi_threshold.sv", "xk_popcount.sv", "xk_xnor_popcount.sv", "xk_adder_tree.sv",
           "xk_mvtu.sv",
           "xk_sliding_window.sv", "xk_pool.sv", "xk_join.sv", "xk_threshold.sv",
           "xk_stream_fork.sv", "xk_stream_fifo.sv",
           "xk_stream_dwc.sv", "xk_exit_test.sv", "xk_exit_gate.sv", "xk_exit_merge.sv")
TOP = "xnorkit_top"
SHELL = "xnorkit_shell"  # byte-wide streams around TOP, for boards with few pins (hw/synth.py)
_TEMPLATE = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                               keep_trailing_newline=True).from_string(
    tools.package_text("xnorkit.hw", "rtl", "xnorkit_top.sv.j2"))


def design_info(graph: Graph, folding: Folding, low: Lowered | None = None) -> dict:
    """What testbenches and reports need to drive the top level: stream shapes, the cycle model and the
    resource estimate, from the stages (`low`, lowered here when not given)."""
    low = low or lower(graph, folding)
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
        "top": TOP,
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
        "sources": [*LIBRARY, popcount_x7.FILE, f"{TOP}.sv"],
        "shell": {"top": SHELL, "sources": [*LIBRARY, popcount_x7.FILE, f"{TOP}.sv", f"{SHELL}.sv"],
                  "parameters": {"IN_W": source.out_width, "OUT_W": last.out_width,
                                 "OUT_BEATS": out_features // last.out_elems}},
    }


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


def emit(graph: Graph, folding: Folding) -> dict[str, str]:
    low = lower(graph, folding)
    files: dict[str, str] = {}
    for s in low.stages:
        p = s.params
        if s.kind == "mvtu":
            schedule = low.schedules.get(s.index)
            files[p["weight_file"]] = packing.mem_file(
                packing.mvtu_weight_words(low.matrices[s.index], p["pe"], p["simd"], p["w_bits"], schedule),
                p["pe"] * p["simd"] * p["w_bits"])
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
    info = design_info(graph, folding, low)
    source, edges, forks = connect(low)
    files[f"{TOP}.sv"] = _TEMPLATE.render(stages=low.stages, top=TOP, ii=info["initiation_interval"], source=source,
                                          edges=edges, forks=forks, two_inputs=TWO_INPUTS)
    for name in (*LIBRARY, f"{SHELL}.sv"):
        files[name] = tools.package_text("xnorkit.hw", "rtl", name)
    files[popcount_x7.FILE] = popcount_x7.library(
        [s.params["simd"] for s in low.stages if s.xnor])
    mems = sorted(name for name in files if name.endswith(".mem"))
    info["memories"] = mems
    files["design.json"] = json.dumps(info, indent=1) + "\n"
    files["filelist.f"] = "".join(f"{name}\n" for name in info["sources"])
    files["xnorkit.core"] = fusesoc_core(info["sources"], mems, f"{SHELL}.sv")
    return files


def fusesoc_core(sources: list[str], mems: list[str], shell: str) -> str:
    """A FuseSoC CAPI2 core of the design (for FuseSoC and edalize flows): the sources, the weight and
    threshold files copied beside them ($readmemh reads them from the working directory), a default
    target, a Verilator lint target, and the byte-wide shell as a target of its own."""
    listed = "".join(f"      - {name}\n" for name in sources)
    memory = "".join(f"      - {name}: {{copyto: {name}}}\n" for name in mems)
    return (f"CAPI=2:\nname: xnorkit:generated:{TOP}:0.1.0\n"
            "description: XNOR-popcount dataflow accelerator generated by xnorkit\n\n"
            "filesets:\n  rtl:\n    file_type: systemVerilogSource\n    files:\n" + listed +
            f"  shell:\n    file_type: systemVerilogSource\n    files:\n      - {shell}\n" +
            ("  memories:\n    file_type: user\n    files:\n" + memory if mems else "") +
            "\ntargets:\n"
            f"  default:\n    filesets: [rtl{', memories' if mems else ''}]\n    toplevel: {TOP}\n"
            f"  shell:\n    filesets: [rtl, shell{', memories' if mems else ''}]\n    toplevel: {SHELL}\n"
            f"  lint:\n    default_tool: verilator\n    filesets: [rtl{', memories' if mems else ''}]\n"
            f"    tools:\n      verilator:\n        mode: lint-only\n        verilator_options: [-Wall]\n"
            f"    toplevel: {TOP}\n")

