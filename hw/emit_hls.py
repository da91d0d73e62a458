"""The HLS backend: C++ for Vitis HLS from the same lowered stages and folding as the RTL (hw.lowering's
`lower`), built on the templates of hw/hls/xk_hls.h. Every stage the RTL has: MVTUs (XNOR-popcount, integer
and k-bit, ternary, skipping the zero tiles of pruned weights), convolutions reading a sliding window, max and
sum pooling, threshold stages, residual adds and concats, early exits.

A window stage has no call of its own: the unit after it reads its frame through the window (xk::Window),
as the RTL's window generator reads its frame buffer. A stream read by several stages is copied once per
reader (DATAFLOW takes one reader per buffer).

Output in BUILD/hls/: xk_model.cpp (the top function `xnorkit_hls`, DATAFLOW over one call per stage),
xk_weights.h (each layer's traits, weights per fold, thresholds), xk_hls.h, xk_hls_tb.cpp (reads inputs,
writes outputs: the g++ bit-exactness check and Vitis HLS C simulation use the same file), run_hls.tcl
(Vitis HLS: C simulation, synthesis at the board's part and clock, IP export) and stream.json (the order of
the input and output elements, as design.json's)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import jinja2
import numpy as np

from xnorkit import layout, packing, tools
from xnorkit.errors import XnorkitError
from xnorkit.hw.folding import Folding
from xnorkit.hw.lowering import lower
from xnorkit.hw.stages import Lowered, Stage
from xnorkit.ir import Graph

TOP = "xnorkit_hls"
FILES = ("xk_model.cpp", "xk_weights.h", "xk_hls_tb.cpp", "run_hls.tcl")


def _c_type(bits: int) -> str:
    """The narrowest signed C type of at least `bits` bits."""
    for width in (8, 16, 32):
        if bits <= width:
            return f"int{width}_t"
    raise XnorkitError(f"an element of {bits} bits does not fit the HLS backend's 32-bit types")


def _out_type(stage: Stage) -> str:
    if stage.kind in ("exit_test", "exit_merge"):
        return "int32_t"
    return _c_type(stage.out_bits + (0 if stage.out_signed else 1))


def _frame_elems(stage: Stage) -> int:
    """Elements of one inference's output of a stage (a window stage has none: it is read through)."""
    p = stage.params
    return {"mvtu": lambda: p["positions"] * p["mh"], "pool": lambda: stage.cycles // p["window"] * p["c"],
            "threshold": lambda: stage.cycles * p["c"], "join": lambda: p["frame_beats"] * stage.out_elems,
            "exit_test": lambda: p["n"] + 1, "exit_gate": lambda: p["frame_beats"] * stage.out_elems,
            "exit_merge": lambda: stage.cycles}[stage.kind]()


def _words_per_lane(simd: int) -> int:
    return -(-simd // 64)


@dataclass
class _Plan:
    """The buffers of the top function and the calls that fill them, in dataflow order."""

    low: Lowered
    buffers: list[dict] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)
    copies: dict[int, list[str]] = field(default_factory=dict)  # per source, one buffer per reader, in order
    n_out: int = 0  # the output's elements
    partitions: list[dict] = field(default_factory=list)  # buffers a unit reads several elements of per cycle

    def buffer(self, name: str, c_type: str, size: int) -> str:
        self.buffers.append({"name": name, "type": c_type, "size": size})
        return name

    def read(self, source: int) -> str:
        """The next reader's copy of a source's buffer."""
        return self.copies[source].pop(0)


def _read_through(low: Lowered, index: int) -> int:
    """The stage (or -1, the input) whose buffer stage input `index` reads: a window reads its own input."""
    return low.inputs[index][0] if index >= 0 and low.stages[index].kind == "window" else index


def _reader_counts(low: Lowered) -> dict[int, int]:
    """Per buffer (a stage's output, or -1: the input), how many stages read it."""
    readers: dict[int, int] = {}
    for s in low.stages:
        if s.kind != "window":
            for i in low.inputs[s.index]:
                source = _read_through(low, i)
                readers[source] = readers.get(source, 0) + 1
    return readers


def _fork(plan: _Plan, source: int, name: str, c_type: str, size: int, readers: int) -> None:
    """One copy of a buffer per reader: a chain of two-way forks right after its producer."""
    plan.copies[source], rest = [], name
    for k in range(readers - 1):
        copy = plan.buffer(f"{name}_r{k}", c_type, size)
        nxt = plan.buffer(f"{name}_r{k + 1}" if k == readers - 2 else f"{name}_f{k}", c_type, size)
        plan.calls.append({"fn": f"xk::fork<{size}, {c_type}>", "args": [rest, copy, nxt]})
        plan.copies[source].append(copy)
        rest = nxt
    plan.copies[source].append(rest)


def _source_type(low: Lowered, index: int) -> str:
    """How a unit reads its input (index: the stage it reads): through a sliding window, or as a vector."""
    if index < 0 or low.stages[index].kind != "window":
        return "xk::Vector"
    w = low.stages[index]
    p = w.params
    pad = p["pad_level"]  # the value padding stands for (lowering's rule; pad_value is its streamed field)
    args = [p["c"], p["h"], p["w"], p["kh"], p["kw"], p["sh"], p["sw"], p["pad_t"], p["pad_l"], p["wo"], p["groups"],
            "true" if p["bipolar_to_int"] else "false", pad]
    return f"xk::Window<{', '.join(map(str, args))}>"


def _initializer(values: np.ndarray, fmt=str) -> str:
    """A C initializer of a nested array."""
    if values.ndim == 1:
        return "{" + ", ".join(fmt(v) for v in values.tolist()) + "}"
    return "{" + ", ".join(_initializer(v, fmt) for v in values) + "}"


def _hex64(v: int) -> str:
    return f"0x{v:016x}ULL"


def _mvtu_tiles(stage: Stage, matrix: np.ndarray, schedule) -> np.ndarray:
    """The unit's weight memory as an array (words, PE, WL): per fold (or per computing step of a unit skipping
    zero tiles) and lane, 64 weight bits a word (XNOR), else the weights (1 / 0 for bipolar, k-bit signed)."""
    p = stage.params
    fields = packing.bipolar_to_bits(matrix) if p["w_bits"] == 1 else np.asarray(matrix, dtype=np.int64)
    tiles = packing.mvtu_weight_tiles(fields, p["pe"], p["simd"])
    if schedule:
        sf_count = p["mw"] // p["simd"]
        tiles = [tiles[step.nf * sf_count + step.sf] for step in schedule if step.compute] or [tiles[0] * 0]
    if not stage.xnor:
        return np.asarray(tiles, dtype=np.int64)
    words = _words_per_lane(p["simd"])
    return np.asarray([[[packing.pack_fields(row[w * 64:(w + 1) * 64], 1) for w in range(words)] for row in tile]
                       for tile in tiles], dtype=object)


def _mvtu(low: Lowered, stage: Stage, name: str) -> dict:
    p = stage.params
    if p["acc_bits"] > 32:
        raise XnorkitError(f"'{stage.name}': a {p['acc_bits']}-bit accumulator exceeds the HLS backend's 32")
    schedule = low.schedules.get(stage.index) if p["n_tiles"] else None
    tiles = _mvtu_tiles(stage, low.matrices[stage.index], schedule)
    thresholds = low.thresholds[stage.index]
    data = [{"type": "uint64_t" if stage.xnor else "int8_t", "name": f"{name}_weights", "dims": tiles.shape,
             "init": _initializer(tiles, _hex64 if stage.xnor else str)},
            _threshold_data(name, stage, thresholds)]
    if schedule:
        steps = ", ".join(f"{{{s.nf}, {s.sf}, {str(s.last).lower()}, {str(s.compute).lower()}}}" for s in schedule)
        data.append({"type": "xk::Step", "name": f"{name}_steps", "dims": (len(schedule),), "init": f"{{{steps}}}"})
    traits = {"POS": p["positions"], "GROUPS": p["groups"], "MW": p["mw"], "MH": p["mh"], "PE": p["pe"],
              "SIMD": p["simd"], "KIND": p["in_kind"], "XNOR": stage.xnor, "W_BIPOLAR": p["w_bits"] == 1,
              "WL": _words_per_lane(p["simd"]) if stage.xnor else p["simd"], "N_THRESH": p["n_thresh"],
              "BASE": p["out_base"], "N_STEPS": len(schedule) if schedule else 0}
    fn = "xk::mvtu_steps" if schedule else "xk::mvtu"
    extra = [f"{name}_steps"] if schedule else []
    return {"traits": traits, "source": _source_type(low, low.inputs[stage.index][0]), "data": data, "fn": fn,
            "extra": [*extra, f"{name}_weights", f"{name}_thresholds"], "partition": [f"{name}_weights"]}


def _threshold_data(name: str, stage: Stage, thresholds: np.ndarray | None) -> dict:
    """Thresholds per neuron or channel (one placeholder row for an output layer, whose accumulators leave)."""
    if thresholds is None:
        return {"type": "int32_t", "name": f"{name}_thresholds", "dims": (1, 1), "init": "{{0}}"}
    t = np.asarray(thresholds, dtype=np.int64).reshape(len(thresholds), -1)
    if t.min() < -(2 ** 31) or t.max() >= 2 ** 31:
        raise XnorkitError(f"'{stage.name}': thresholds exceed the HLS backend's 32 bits")
    return {"type": "int32_t", "name": f"{name}_thresholds", "dims": t.shape, "init": _initializer(t)}


def _pool(low: Lowered, stage: Stage, name: str) -> dict:
    window = low.stages[low.inputs[stage.index][0]].params
    p = stage.params
    traits = {"POS": window["ho"] * window["wo"], "C": p["c"], "WINDOW": p["window"], "KIND": p["kind"],
              "SUM": bool(p["sum"])}
    return {"traits": traits, "source": _source_type(low, low.inputs[stage.index][0]), "fn": "xk::pool"}


def _threshold(low: Lowered, stage: Stage, name: str) -> dict:
    p = stage.params
    traits = {"FRAME": stage.cycles, "C": p["c"], "KIND": p["in_kind"], "N_THRESH": p["n_thresh"], "BASE": p["base"]}
    return {"traits": traits, "data": [_threshold_data(name, stage, low.thresholds[stage.index])],
            "fn": "xk::threshold", "extra": [f"{name}_thresholds"]}


def _join(low: Lowered, stage: Stage, name: str) -> dict:
    p = stage.params
    traits = {"FRAME": p["frame_beats"], "CONCAT": bool(p["mode"]), "A_C": stage.in_elems, "B_C": p["b_elems"],
              "A_KIND": p["a_kind"], "B_KIND": p["b_kind"]}
    return {"traits": traits, "fn": "xk::join"}


def _exit_test(low: Lowered, stage: Stage, name: str) -> dict:
    p = stage.params
    if p["s_bits"] > 64:
        raise XnorkitError(f"'{stage.name}': {p['s_bits']}-bit exit scores exceed the HLS backend's 64")
    data = [{"type": "int64_t", "name": f"{name}_{part}", "dims": (p["n"],), "init": _initializer(np.asarray(v))}
            for part, v in (("score_weight", p["score_weight"]), ("score_bias", p["score_bias"]))]
    return {"traits": {"N": p["n"], "MARGIN": p["margin_value"]}, "data": data, "fn": "xk::exit_test",
            "extra": [f"{name}_score_weight", f"{name}_score_bias"]}


def _exit_gate(low: Lowered, stage: Stage, name: str) -> dict:
    return {"traits": {"FRAME": _frame_elems(stage)}, "fn": "xk::exit_gate"}


def _exit_merge(low: Lowered, stage: Stage, name: str) -> dict:
    p = stage.params
    traits = {"N_EXIT": p["n_exit"], "N_TAIL": p["n_tail"], "TAIL_INDEXED": bool(p["tail_indexed"]),
              "TOTAL": stage.cycles}
    return {"traits": traits, "fn": "xk::exit_merge"}


_LAYER = {"mvtu": _mvtu, "pool": _pool, "threshold": _threshold, "join": _join, "exit_test": _exit_test,
          "exit_gate": _exit_gate, "exit_merge": _exit_merge}


def _plan(graph: Graph, low: Lowered) -> tuple[_Plan, list[dict]]:
    """The top function's buffers and calls in dataflow order (each stage, then the copies of its output for
    its readers), and each layer's traits and data for xk_weights.h."""
    plan, layers, readers = _Plan(low), [], _reader_counts(low)
    n_in = int(np.prod(graph.input_shape))
    in_type = _c_type(low.input_bits + 1)
    plan.calls.append({"fn": f"xk::copy<{n_in}, {in_type}, {in_type}>",
                       "args": ["in", plan.buffer("in_frame", in_type, n_in)]})
    _fork(plan, -1, "in_frame", in_type, n_in, readers.get(-1, 1))
    for stage in low.stages:
        if stage.kind == "window":
            continue
        name = f"l{stage.index}"
        layer = {"name": name, "source_name": stage.name, "kind": stage.kind, "cycles": stage.cycles, "data": [],
                 "source": None, "extra": [], "partition": []} | _LAYER[stage.kind](low, stage, name)
        layers.append(layer)
        out_type, size = _out_type(stage), _frame_elems(stage)
        inputs = [plan.read(_read_through(low, i)) for i in low.inputs[stage.index]]
        if stage.kind == "mvtu" and stage.params["simd"] > 1:  # SIMD elements of the frame read per cycle
            plan.partitions.append({"name": inputs[0], "factor": stage.params["simd"]})
        plan.calls.append({"fn": f"{layer['fn']}<{name}>",
                           "args": [*inputs, plan.buffer(f"{name}_out", out_type, size), *layer["extra"]]})
        _fork(plan, stage.index, f"{name}_out", out_type, size, readers.get(stage.index, 1))
    last = low.stages[-1]
    plan.n_out = n_out = _frame_elems(last)
    plan.calls.append({"fn": f"xk::copy<{n_out}, {_out_type(last)}, int32_t>", "args": [plan.read(last.index), "out"]})
    return plan, layers


def _streams(graph: Graph, low: Lowered) -> dict:
    """The order of the input and output elements (design.json's "input" and "output" layouts)."""
    last = low.stages[-1]
    out_shape = [_frame_elems(last)] if last.kind == "exit_merge" else list(graph.shape(graph.output))
    return {"input": {"shape": list(graph.input_shape),
                      "layout": layout.stream_layout(graph.input_shape, graph.channels_last_input() is not None)},
            "output": {"shape": out_shape, "layout": layout.stream_layout(tuple(out_shape))}}


def check_constant_weights(folding: Folding) -> None:
    """The HLS design compiles its weights in as constants: refuse a folding with writable layers."""
    writable = [name for name, fold in folding.items() if fold.weights == "writable"]
    if writable:
        raise XnorkitError(f"the folding makes {', '.join(writable)} writable, but the HLS backend compiles weights in "
                           f"as constants: writable weights are for the RTL backend alone (generate it without "
                           f"--backend hls)")


def emit(graph: Graph, folding: Folding, part: str = "xc7z020clg400-1", clock_mhz: float = 100.0) -> dict[str, str]:
    """The HLS project (hw/hls/*.j2): the network as one dataflow function, its layers' traits and weights, the
    testbench and the Vitis HLS script."""
    check_constant_weights(folding)
    low = lower(graph, folding)
    plan, layers = _plan(graph, low)
    in_frame = plan.buffers[0]
    context = {"top": TOP, "layers": layers, "buffers": plan.buffers, "calls": plan.calls,
               "partitions": plan.partitions,
               "in_type": in_frame["type"], "n_in": in_frame["size"], "n_out": plan.n_out,
               "interval": max(s.cycles for s in low.stages), "part": part, "clock_mhz": clock_mhz}
    files = {name: _render(f"{name}.j2", context) for name in FILES}
    return files | {"xk_hls.h": tools.package_text("xnorkit.hw", "hls", "xk_hls.h"),
                    "stream.json": json.dumps(_streams(graph, low), indent=1) + "\n"}


def _render(template: str, context: dict) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    return env.from_string(tools.package_text("xnorkit.hw", "hls", template)).render(context)
