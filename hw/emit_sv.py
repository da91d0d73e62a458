"""SystemVerilog emitter: glue for a streaming dataflow accelerator built from the hand-written blocks
in hw/rtl/. Reads the IR and a folding; it never changes a value (thresholds and weights are the IR's,
packed by xnorkit.packing) and derives only the hardware's own figures from them: stream widths, cycles,
memory sizes (hw.stages) and the resource estimate (hw.estimate). `emit(graph, folding) -> {relative path:
text}`; no I/O.

The IR becomes a graph of stages joined by AXI4-Streams (docs/hardware.md):
- `MatMul` (+ `Threshold`): an MVTU (xk_mvtu).
- `Conv` (+ `Threshold`): a sliding-window generator (xk_sliding_window) feeding an MVTU whose vector is
  the window; one vector per output position. A grouped convolution streams each group's window in turn
  and its MVTU computes each group's neurons from that group's part alone.
- `MaxPool` / `SumPool`: a sliding-window generator feeding a reduction (xk_pool).
- `Add` / `Concat`: a join of two streams (xk_join); a `Threshold` after it: xk_threshold.
- `Reshape` (flatten): nothing. Feature maps stream pixel by pixel (channels fastest), so a fully
  connected layer after a flatten reads its inputs in (H, W, C) order: its weight columns are laid out
  in that order (a permutation of the IR's row-major (C, H, W) columns, never a change of values).
- A tensor read by several stages: a fork (xk_stream_fork).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np

from hw import design_record, estimate, popcount_x7
from hw.folding import (
    WEIGHT_STYLES,
    Folding,
    exit_segments,
    initiation_interval,
    layer_cycles,
    mac_layers,
    matrix_shape,
    to_json,
    unit_matrix,
    unit_schedule,
    validate,
)
from hw.stages import InKind, MvtuMemory
from xnorkit import layout, numerics, packing, passes, records, tools
from xnorkit.errors import XnorkitError
from xnorkit.ir import (
    Add,
    Concat,
    Conv,
    Dequantize,
    Graph,
    IntType,
    MatMul,
    MaxPool,
    Quantize,
    Reshape,
    SumPool,
    Threshold,
    Transpose,
)

LIBRARY = ("xk_value.sv", "xk_multi_threshold.sv", "xk_popcount.sv", "xk_xnor_popcount.sv", "xk_adder_tree.sv",
           "xk_mvtu.sv",
           "xk_sliding_window.sv", "xk_pool.sv", "xk_join.sv", "xk_threshold.sv",
           "xk_stream_fork.sv", "xk_stream_fifo.sv",
           "xk_stream_dwc.sv", "xk_exit_test.sv", "xk_exit_gate.sv", "xk_exit_merge.sv")
TWO_INPUTS = ("join", "exit_gate", "exit_merge")  # stages with a second input port (b_elems, b_bits)
TOP = "xnorkit_top"
SHELL = "xnorkit_shell"  # byte-wide streams around TOP, for boards with few pins (hw/synth.py)


@dataclass
class Stage:
    """One block of the design, as the template needs it: what it reads and writes per beat, its
    parameters, and its cycles per inference."""

    index: int
    kind: str  # one of stages.STAGE_KINDS
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


_TEMPLATE = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                               keep_trailing_newline=True).from_string("""\
// Generated by xnorkit from the IR: glue only, the blocks are in xk_*.sv.
{% for s in stages %}
// {{ s.name }}: {{ s.kind }}, {{ s.cycles }} cycles per inference
{% endfor %}

// Initiation interval: {{ ii }} cycles per inference.
module {{ top }} (
    input  logic                 clk,
    input  logic                 rst_n,
    input  logic [{{ source.out_width - 1 }}:0]  s_axis_tdata,
    input  logic                 s_axis_tvalid,
    output logic                 s_axis_tready,
    output logic [{{ stages[-1].out_width - 1 }}:0] m_axis_tdata,
    output logic                 m_axis_tvalid,
    input  logic                 m_axis_tready
);
  logic [{{ source.out_width - 1 }}:0] lin_out_tdata;
  logic lin_out_tvalid, lin_out_tready;
  assign lin_out_tdata = s_axis_tdata;
  assign lin_out_tvalid = s_axis_tvalid;
  assign s_axis_tready = lin_out_tready;
{% for s in stages %}
{% set p = s.params %}

  // ---- {{ s.name }} ({{ s.kind }}): {{ s.cycles }} cycles per inference
  logic [{{ s.in_width - 1 }}:0] l{{ s.index }}_in0_tdata;
  logic l{{ s.index }}_in0_tvalid, l{{ s.index }}_in0_tready;
{% if s.kind in two_inputs %}
  logic [{{ p.b_elems * p.b_bits - 1 }}:0] l{{ s.index }}_in1_tdata;
  logic l{{ s.index }}_in1_tvalid, l{{ s.index }}_in1_tready;
{% endif %}
  logic [{{ s.out_width - 1 }}:0] l{{ s.index }}_out_tdata;
  logic l{{ s.index }}_out_tvalid, l{{ s.index }}_out_tready;
{% if s.kind == "mvtu" %}
  xk_mvtu #(
      .MW({{ p.mw }}), .MH({{ p.mh }}), .PE({{ p.pe }}), .SIMD({{ p.simd }}), .GROUPS({{ p.groups }}),
      .IN_BITS({{ s.in_bits }}),
      .IN_KIND({{ p.in_kind }}), .W_BITS({{ p.w_bits }}), .ACC_BITS({{ p.acc_bits }}),
      .N_THRESH({{ p.n_thresh }}), .OUT_BITS({{ p.out_bits }}), .OUT_BASE({{ p.out_base }}),
      .WEIGHT_FILE("{{ p.weight_file }}"), .THRESHOLD_FILE("{{ p.threshold_file }}"),
      .WEIGHT_STYLE({{ p.weight_style }}), .TERNARY({{ p.ternary }}){% if p.n_tiles %},
      .SPARSE(1'b1), .N_TILES({{ p.n_tiles }}), .N_WORDS({{ p.n_words }}), .TILE_FILE("{{ p.tile_file }}"){% endif %}
  ) u_l{{ s.index }} (
{% elif s.kind == "window" %}
  xk_sliding_window #(
      .C({{ p.c }}), .H({{ p.h }}), .W({{ p.w }}), .KH({{ p.kh }}), .KW({{ p.kw }}), .SH({{ p.sh }}), .SW({{ p.sw }}),
      .PAD_T({{ p.pad_t }}), .PAD_L({{ p.pad_l }}), .HO({{ p.ho }}), .WO({{ p.wo }}), .SIMD({{ s.out_elems }}),
      .GROUPS({{ p.groups }}),
      .BITS({{ s.in_bits }}), .BIPOLAR_TO_INT(1'b{{ p.bipolar_to_int }}), .PAD_VALUE({{ s.in_bits }}'d{{ p.pad_value }})
  ) u_l{{ s.index }} (
{% elif s.kind == "pool" %}
  xk_pool #(
      .C({{ p.c }}), .BITS({{ s.in_bits }}), .KIND({{ p.kind }}), .SUM(1'b{{ p.sum }}), .WINDOW({{ p.window }}),
      .OUT_BITS({{ s.out_bits }})
  ) u_l{{ s.index }} (
{% elif s.kind == "threshold" %}
  xk_threshold #(
      .C({{ p.c }}), .IN_BITS({{ s.in_bits }}), .IN_KIND({{ p.in_kind }}), .T_BITS({{ p.t_bits }}),
      .N_THRESH({{ p.n_thresh }}), .OUT_BITS({{ s.out_bits }}), .OUT_BASE({{ p.base }}),
      .THRESHOLD_FILE("{{ p.threshold_file }}")
  ) u_l{{ s.index }} (
{% elif s.kind == "exit_test" %}
  xk_exit_test #(
      .N({{ p.n }}), .ELEMS({{ s.in_elems }}), .ACC_BITS({{ s.in_bits }}), .W_BITS({{ p.w_bits }}),
      .B_BITS({{ p.b_bits }}), .S_BITS({{ p.s_bits }}), .MARGIN({{ p.margin }}), .SCORE_FILE("{{ p.score_file }}")
  ) u_l{{ s.index }} (
{% endif %}
{% if s.kind in two_inputs %}
{% if s.kind == "join" %}
  xk_join #(
      .MODE({{ p.mode }}), .A_ELEMS({{ s.in_elems }}), .B_ELEMS({{ p.b_elems }}), .A_BITS({{ s.in_bits }}),
      .B_BITS({{ p.b_bits }}), .A_KIND({{ p.a_kind }}), .B_KIND({{ p.b_kind }}), .OUT_BITS({{ s.out_bits }})
  ) u_l{{ s.index }} (
{% elif s.kind == "exit_gate" %}
  xk_exit_gate #(
      .WIDTH({{ s.in_width }}), .DECISION_BITS({{ p.b_bits }}), .FRAME_BEATS({{ p.frame_beats }})
  ) u_l{{ s.index }} (
{% else %}
  xk_exit_merge #(
      .N_EXIT({{ p.n_exit }}), .EXIT_BITS({{ p.exit_bits }}), .N_TAIL({{ p.n_tail }}), .TAIL_ELEMS({{ p.b_elems }}),
      .TAIL_BITS({{ p.b_bits }}), .TAIL_INDEXED(1'b{{ p.tail_indexed }}), .OUT_BITS({{ s.out_bits }})
  ) u_l{{ s.index }} (
{% endif %}
      .clk, .rst_n,
      .a_tdata(l{{ s.index }}_in0_tdata), .a_tvalid(l{{ s.index }}_in0_tvalid), .a_tready(l{{ s.index }}_in0_tready),
      .b_tdata(l{{ s.index }}_in1_tdata), .b_tvalid(l{{ s.index }}_in1_tvalid), .b_tready(l{{ s.index }}_in1_tready),
{% else %}
      .clk, .rst_n,
      .s_tdata(l{{ s.index }}_in0_tdata), .s_tvalid(l{{ s.index }}_in0_tvalid), .s_tready(l{{ s.index }}_in0_tready),
{% endif %}
      .m_tdata(l{{ s.index }}_out_tdata), .m_tvalid(l{{ s.index }}_out_tvalid), .m_tready(l{{ s.index }}_out_tready)
  );
{% endfor %}
{% for f in forks %}
{% set name = "lin" if f.src.index < 0 else "l" ~ f.src.index %}

  // ---- {{ name }} read by {{ f.count }} stages
  logic [{{ f.count * f.src.out_width - 1 }}:0] {{ name }}_fork_tdata;
  logic [{{ f.count - 1 }}:0] {{ name }}_fork_tvalid, {{ name }}_fork_tready;
  xk_stream_fork #(.WIDTH({{ f.src.out_width }}), .N({{ f.count }})) u_{{ name }}_fork (
      .clk, .rst_n,
      .s_tdata({{ name }}_out_tdata), .s_tvalid({{ name }}_out_tvalid), .s_tready({{ name }}_out_tready),
      .m_tdata({{ name }}_fork_tdata), .m_tvalid({{ name }}_fork_tvalid), .m_tready({{ name }}_fork_tready)
  );
{% endfor %}

  // ---- streams between stages: width conversion around a FIFO
{% for k in edges %}
{% set sd, sv, sr = k.src_signals %}
{% set dd, dv, dr = k.dst_signals %}
  logic [{{ k.fifo_width - 1 }}:0] e{{ k.index }}_fifo_in_tdata, e{{ k.index }}_fifo_out_tdata;
  logic e{{ k.index }}_fifo_in_tvalid, e{{ k.index }}_fifo_in_tready, e{{ k.index }}_fifo_out_tvalid;
  logic e{{ k.index }}_fifo_out_tready;
{% if k.gather_first %}
  xk_stream_dwc #(
      .IN_ELEMS({{ k.src.out_elems }}), .OUT_ELEMS({{ k.dst_elems }}), .ELEM_BITS({{ k.bits }})
  ) u_dwc{{ k.index }} (
      .clk, .rst_n, .s_tdata({{ sd }}), .s_tvalid({{ sv }}), .s_tready({{ sr }}),
      .m_tdata(e{{ k.index }}_fifo_in_tdata), .m_tvalid(e{{ k.index }}_fifo_in_tvalid),
      .m_tready(e{{ k.index }}_fifo_in_tready)
  );
  assign {{ dd }} = e{{ k.index }}_fifo_out_tdata;
  assign {{ dv }} = e{{ k.index }}_fifo_out_tvalid;
  assign e{{ k.index }}_fifo_out_tready = {{ dr }};
{% else %}
  assign e{{ k.index }}_fifo_in_tdata = {{ sd }};
  assign e{{ k.index }}_fifo_in_tvalid = {{ sv }};
  assign {{ sr }} = e{{ k.index }}_fifo_in_tready;
  xk_stream_dwc #(
      .IN_ELEMS({{ k.src.out_elems }}), .OUT_ELEMS({{ k.dst_elems }}), .ELEM_BITS({{ k.bits }})
  ) u_dwc{{ k.index }} (
      .clk, .rst_n,
      .s_tdata(e{{ k.index }}_fifo_out_tdata), .s_tvalid(e{{ k.index }}_fifo_out_tvalid),
      .s_tready(e{{ k.index }}_fifo_out_tready),
      .m_tdata({{ dd }}), .m_tvalid({{ dv }}), .m_tready({{ dr }})
  );
{% endif %}
  xk_stream_fifo #(.WIDTH({{ k.fifo_width }}), .DEPTH({{ k.fifo_depth }})) u_fifo{{ k.index }} (
      .clk, .rst_n,
      .s_tdata(e{{ k.index }}_fifo_in_tdata), .s_tvalid(e{{ k.index }}_fifo_in_tvalid),
      .s_tready(e{{ k.index }}_fifo_in_tready),
      .m_tdata(e{{ k.index }}_fifo_out_tdata), .m_tvalid(e{{ k.index }}_fifo_out_tvalid),
      .m_tready(e{{ k.index }}_fifo_out_tready)
  );
{% endfor %}
{% set last = stages[-1] %}

  assign m_axis_tdata = l{{ last.index }}_out_tdata;
  assign m_axis_tvalid = l{{ last.index }}_out_tvalid;
  assign l{{ last.index }}_out_tready = m_axis_tready;
endmodule
""")


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


def _kind(dtype: IntType) -> str:
    return "bipolar" if dtype.bipolar else "signed" if dtype.signed else "unsigned"


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


def _signed_field_bits(dtype: IntType) -> int:
    """Bits of a two's complement field holding every value of the type (sums stream as signed)."""
    return numerics.signed_type_for(dtype.min, dtype.max).bits


@dataclass
class _SvLowering:
    """Lowering one graph into stages: per IR tensor the stage whose output stream carries it (-1: the network
    input) and its element format as streamed, (bits, kind), which may be wider than the IR type (sums are
    signed); tensors whose logical layout differs from the stream's: (the streamed (C, H, W) map, the logical
    axes as axes of that map, flattened or not): the stream itself is always pixel by pixel, channels fastest."""

    graph: Graph
    folding: Folding
    low: Lowered
    source: dict[str, int] = field(default_factory=dict)
    fmt: dict[str, tuple[int, str]] = field(default_factory=dict)
    layout_of: dict[str, tuple[tuple[int, ...], tuple[int, ...], bool]] = field(default_factory=dict)
    merged: set[str] = field(default_factory=set)  # thresholds folded into the MVTU before them

    def add(self, stage: Stage, inputs: list[str], output: str, out_fmt: tuple[int, str]) -> Stage:
        self.low.inputs[stage.index] = [self.source[t] for t in inputs]
        self.low.stages.append(stage)
        self.source[output], self.fmt[output] = stage.index, out_fmt
        return stage

    def same_stream(self, node, out_fmt: tuple[int, str] | None = None) -> None:
        """`node`'s output is its input's stream (a layout change, or a threshold merged into its MVTU)."""
        self.source[node.output] = self.source[node.input]
        self.fmt[node.output] = out_fmt or self.fmt[node.input]


def _sv_quantize(lw: _SvLowering, node: Quantize) -> None:
    lw.source[node.output], lw.fmt[node.output] = -1, (node.dtype.bits, _kind(node.dtype))


def _sv_layout(lw: _SvLowering, node: Reshape | Transpose) -> None:
    """A transpose or flatten changes only the order a later layer reads; the stream stays as it is."""
    layout.track(lw.graph, node, lw.layout_of, "the RTL streams")
    lw.same_stream(node)


def _sv_pool(lw: _SvLowering, node: MaxPool | SumPool) -> None:
    """A window generator and a reduction (maximum, or exact sum)."""
    graph, n = lw.graph, len(lw.low.stages)
    c, h, w = graph.shape(node.input)
    _, ho, wo = graph.shape(node.output)
    bits, kind = lw.fmt[node.input]
    kh, kw = node.kernel
    pads = node.pads if isinstance(node, MaxPool) else (0, 0, 0, 0)
    pad_value = 1 << (bits - 1) if kind == "signed" else 0  # the minimum: padding never wins
    lw.add(Stage(n, "window", f"{node.name}_window", c, bits, c, bits, kind == "signed",
                 max(h * w, ho * wo * kh * kw), kh * kw,
                 dict(c=c, h=h, w=w, kh=kh, kw=kw, sh=node.stride[0], sw=node.stride[1], pad_t=pads[0],
                      pad_l=pads[1], ho=ho, wo=wo, groups=1, bipolar_to_int=0, pad_value=pad_value)),
           [node.input], f"{node.name}:window", (bits, kind))
    if isinstance(node, MaxPool):
        out_fmt = (bits, kind)
    else:
        out_fmt = (_signed_field_bits(graph.tensor_types[node.output]), "signed")
    lw.add(Stage(n + 1, "pool", node.name, c, bits, c, out_fmt[0], out_fmt[1] == "signed", ho * wo * kh * kw, 1,
                 dict(c=c, window=kh * kw, kind=int(InKind.of(kind)), sum=int(isinstance(node, SumPool)))),
           [f"{node.name}:window"], node.output, out_fmt)


def _sv_join(lw: _SvLowering, node: Add | Concat) -> None:
    graph, n = lw.graph, len(lw.low.stages)
    a, b = node.inputs if len(node.inputs) == 2 else (None, None)
    if a is None:
        raise XnorkitError(f"concat '{node.name}' of {len(node.inputs)} tensors: the RTL joins two")
    (a_bits, a_kind), (b_bits, b_kind) = lw.fmt[a], lw.fmt[b]
    c_a, c_b = graph.shape(a)[0], graph.shape(b)[0]
    frame = int(np.prod(graph.shape(node.output)[1:])) if len(graph.shape(node.output)) == 3 else 1
    if isinstance(node, Add):
        out_fmt = (_signed_field_bits(graph.tensor_types[node.output]), "signed")
    else:
        if (a_bits, a_kind) != (b_bits, b_kind):
            raise XnorkitError(f"concat '{node.name}': its inputs stream in different formats")
        out_fmt = (a_bits, a_kind)
    out_elems = c_a if isinstance(node, Add) else c_a + c_b
    lw.add(Stage(n, "join", node.name, c_a, a_bits, out_elems, out_fmt[0], out_fmt[1] == "signed", frame, 1,
                 dict(mode=int(isinstance(node, Concat)), b_elems=c_b, b_bits=b_bits,
                      a_kind=int(InKind.of(a_kind)), b_kind=int(InKind.of(b_kind)), frame_beats=frame)),
           [a, b], node.output, out_fmt)


def _sv_threshold(lw: _SvLowering, node: Threshold) -> None:
    """A threshold stage of its own (after a join or a pool); one after an MVTU is part of it."""
    if node.name in lw.merged:
        return
    graph, n = lw.graph, len(lw.low.stages)
    c = graph.shape(node.input)[0]
    bits, kind = lw.fmt[node.input]
    t = node.thresholds
    t_bits = max(bits, numerics.signed_type_for(int(t.min()), int(t.max())).bits)
    frame = int(np.prod(graph.shape(node.output)[1:])) if len(graph.shape(node.output)) == 3 else 1
    out_bits = node.out_dtype.bits
    lw.add(Stage(n, "threshold", node.name, c, bits, c, out_bits, node.base < 0, frame, 1,
                 dict(c=c, in_kind=int(InKind.of(kind)), t_bits=t_bits, n_thresh=t.shape[1], base=node.base,
                      threshold_file=f"l{n}_thresholds.mem")),
           [node.input], node.output, (out_bits, _kind(node.out_dtype)))
    lw.low.thresholds[n] = t


def _sv_mac(lw: _SvLowering, node: MatMul | Conv) -> None:
    """An MVTU (after a window generator for a convolution), with the threshold after it fused in."""
    graph = lw.graph
    threshold = next((c for c in graph.consumers(node.output) if isinstance(c, Threshold)), None)
    if threshold is None and node.output not in graph.outputs:
        raise XnorkitError(f"layer '{node.name}' has neither a threshold nor the graph output after it")
    _mvtu_stages(graph, lw.folding, node, threshold, lw.low, lw.add, lw.fmt, lw.layout_of)
    if threshold is not None:
        lw.merged.add(threshold.name)
        lw.source[threshold.output] = lw.source[node.output]
        lw.fmt[threshold.output] = (threshold.out_dtype.bits, _kind(threshold.out_dtype))


_LOWER = {Quantize: _sv_quantize, Reshape: _sv_layout, Transpose: _sv_layout, MaxPool: _sv_pool, SumPool: _sv_pool,
          Add: _sv_join, Concat: _sv_join, Threshold: _sv_threshold, MatMul: _sv_mac, Conv: _sv_mac,
          Dequantize: lambda lw, node: None}


def _exits_first(graph: Graph, segments: list) -> tuple[list, dict[int, tuple[int, str]]]:
    """The nodes in the exit schedule (passes.exit_schedule: each exit's layers in turn, then the rest) and, by
    position, the gate to insert before a node: where the network goes on past an exit (its branch), it reads
    the exit's gate."""
    gates, position = {}, 0
    for k, (names, branch) in enumerate(segments):
        position += len(names)
        gates[position] = (k, branch)
    return passes.exit_schedule(graph)[1], gates


def lower(graph: Graph, folding: Folding) -> Lowered:
    """The IR as a graph of stages, in IR order (each exit's layers first): one handler per IR op (_LOWER)."""
    segments = exit_segments(graph)
    unsupported = next((n for n in graph.nodes if type(n) not in _LOWER), None)
    if unsupported is not None:
        raise XnorkitError(f"the RTL generator does not support IR node '{unsupported.name}' "
                           f"({type(unsupported).__name__}) yet")
    validate(graph, folding)
    lw = _SvLowering(graph, folding, Lowered([], {}, {}, {}, graph.nodes[0].dtype.bits))
    ordered, gates = _exits_first(graph, segments)
    stored_as_is = graph.channels_last_input()  # the input streams in its own order: already this map's
    for position, node in enumerate(ordered):
        if position in gates:
            _exit_stages(graph, lw.low, lw.add, lw.source, lw.fmt, *gates[position])
        layout.check_reads_stored_order(node, lw.layout_of, "the RTL streams")
        if node is stored_as_is:
            lw.same_stream(node)
        else:
            _LOWER[type(node)](lw, node)
    if lw.source.get(graph.outputs[-1]) != len(lw.low.stages) - 1:
        raise XnorkitError("the RTL generator needs the graph output to be the last stage's stream")
    if segments:
        _exit_merges(graph, lw.low, lw.add)
    return lw.low


def _signed_literal(value: int, bits: int) -> str:
    return f"{bits}'sd{value}" if value >= 0 else f"-{bits}'sd{-value}"


def _exit_stages(graph: Graph, low: Lowered, add, source: dict[str, int], fmt: dict[str, tuple[int, str]],
                 k: int, branch: str) -> None:
    """Exit k's test (xk_exit_test: class scores, margin, decision) and the gate that passes the branch's frame on
    to the rest of the network or drops it (xk_exit_gate)."""
    output, margin = graph.exits[k]
    head = low.stages[source[output]]
    deq = graph.dequantize_of(output)
    weight, bias = deq.score_weight.astype(object), deq.score_bias.astype(object)
    acc = graph.tensor_types[output]
    scores = [w * a + b for w, b in zip(weight, bias, strict=True) for a in (acc.min, acc.max)]
    spread = max(scores) - min(scores)  # the largest margin
    # one more bit than scores and margins need: the running top two start below every score
    s_bits = numerics.signed_type_for(min(min(scores), -spread, margin), max(max(scores), spread, margin)).bits + 1
    n, acc_bits = len(weight), head.out_bits
    w_bits = numerics.signed_type_for(min(0, min(weight)), max(0, max(weight))).bits
    b_bits = numerics.signed_type_for(min(0, min(bias)), max(0, max(bias))).bits
    decision_bits = n * acc_bits + 1
    index = len(low.stages)
    # vector_beats: the FIFOs after it hold that many decisions while the rest of the network works
    add(Stage(index, "exit_test", f"{output}_exit_test", head.out_elems, acc_bits, 1, decision_bits, False, n, 8,
              dict(n=n, acc_bits=acc_bits, w_bits=w_bits, b_bits=b_bits, s_bits=s_bits,
                   margin=_signed_literal(margin, s_bits),
                   score_file=f"l{index}_scores.mem", score_words=packing.score_words(weight, bias, w_bits, b_bits))),
        [output], f"exit{k}:decision", (decision_bits, "unsigned"))
    if source[branch] < 0:
        raise XnorkitError(f"the early exit '{output}' branches off the network input; the RTL gates the output of a "
                           f"layer (put the exit after one)")
    frame = low.stages[source[branch]]
    bits, kind = fmt[branch]
    shape = graph.shape(branch)
    beats = int(np.prod(shape)) // frame.out_elems
    add(Stage(index + 1, "exit_gate", f"{output}_exit_gate", frame.out_elems, bits, frame.out_elems, bits,
              kind == "signed", beats, 1, dict(b_elems=1, b_bits=decision_bits, frame_beats=beats)),
        [branch, f"exit{k}:decision"], branch, (bits, kind))


def _exit_merges(graph: Graph, low: Lowered, add) -> None:
    """The design's output, one value per beat (xk_exit_merge, golden.with_exits): from the last exit outwards,
    each merge sends its exit's accumulators, then what comes after it (the final layer's accumulators, or the
    next merge's values), 0 when its exit was taken, and the index of the output taken."""
    tests = [s for s in low.stages if s.kind == "exit_test"]
    tail, tail_name, indexed = low.stages[-1], graph.outputs[-1], False
    tail_values = int(np.prod(graph.shape(graph.outputs[-1])))
    index_bits = numerics.signed_type_for(0, len(tests)).bits
    for k in reversed(range(len(tests))):
        test = tests[k]
        n_exit = test.params["n"]
        out_bits = max(test.in_bits, tail.out_bits, index_bits)
        features = n_exit + tail_values + (0 if indexed else 1)
        merge = add(Stage(len(low.stages), "exit_merge", f"exit{k}_merge", 1, test.out_bits, 1, out_bits, True,
                          features, features,
                          dict(n_exit=n_exit, exit_bits=test.in_bits, n_tail=tail_values, tail_indexed=int(indexed),
                               b_elems=tail.out_elems, b_bits=tail.out_bits)),
                    [f"exit{k}:decision", tail_name], f"exit{k}:output", (out_bits, "signed"))
        tail, tail_name, indexed, tail_values = merge, f"exit{k}:output", True, features


def _mvtu_stages(graph: Graph, folding: Folding, node: MatMul | Conv, threshold: Threshold | None, low: Lowered,
                 add, fmt: dict[str, tuple[int, str]],
                 layout_of: dict[str, tuple[tuple[int, ...], tuple[int, ...], bool]]) -> None:
    fold = folding[node.name]
    mw, mh, positions = matrix_shape(graph, node)
    in_bits, in_kind = fmt[node.input]
    stream = node.input
    if isinstance(node, Conv):
        c, h, w = graph.shape(node.input)
        _, ho, wo = graph.shape(node.output)
        kh, kw = node.weights.shape[2:]
        to_int = in_kind == "bipolar" and any(node.pads)  # padding is the real 0: bipolar windows become int2
        window_bits = 2 if to_int else in_bits
        n = len(low.stages)
        beats = node.groups * mw // fold.simd  # per window: each group's part in turn
        add(Stage(n, "window", f"{node.name}_window", c, in_bits, fold.simd, window_bits, to_int or in_kind == "signed",
                  max(h * w, ho * wo * beats), beats,
                  dict(c=c, h=h, w=w, kh=kh, kw=kw, sh=node.stride[0], sw=node.stride[1], pad_t=node.pads[0],
                       pad_l=node.pads[1], ho=ho, wo=wo, groups=node.groups, bipolar_to_int=int(to_int),
                       pad_value=0)),
            [node.input], f"{node.name}:window", (window_bits, "signed" if to_int else in_kind))
        stream, in_bits, in_kind = f"{node.name}:window", window_bits, "signed" if to_int else in_kind
        # window order (ky, kx, c); a grouped layer's rows hold their own group's columns only
        matrix = unit_matrix(graph, node)
    else:
        matrix = node.weights
        if node.input in layout_of:  # columns in the logical order of a flattened map -> stream order (H, W, C)
            map_shape, axes, _ = layout_of[node.input]
            matrix = packing.hwc_columns(matrix, map_shape, axes)
    n_thresh = 0 if threshold is None else threshold.thresholds.shape[1]
    out_bits = node.acc_dtype.bits if threshold is None else threshold.out_dtype.bits
    out_base = 0 if threshold is None else threshold.base
    index = len(low.stages)
    low.matrices[index] = matrix
    schedule = unit_schedule(graph, node, fold)  # None for a unit after a flatten: `matrix` is its own order
    w_bits = node.w_dtype.bits
    signs_or_zeros = w_bits == 2 and packing.signs_or_zeros(matrix)
    ternary = in_kind == "bipolar" and signs_or_zeros
    if schedule is not None:
        low.schedules[index] = schedule
        if signs_or_zeros and _zeros_skipped(matrix, fold.pe, fold.simd, schedule):
            w_bits, ternary = 1, False  # block-pruned binary: the zeros are in skipped tiles, the rest is +-1
    low.thresholds[index] = None if threshold is None else threshold.thresholds
    out_fmt = (node.acc_dtype.bits, "signed") if threshold is None else (out_bits, _kind(threshold.out_dtype))
    add(Stage(index, "mvtu", node.name, fold.simd, in_bits, fold.pe, out_bits, threshold is None or out_base < 0,
              layer_cycles(graph, node, fold), mh // fold.pe,
              dict(mw=mw, mh=mh, pe=fold.pe, simd=fold.simd, in_kind=int(InKind.of(in_kind)),
                   groups=node.groups if isinstance(node, Conv) else 1,
                   w_bits=w_bits, ir_w_bits=node.w_dtype.bits, acc_bits=node.acc_dtype.bits,
                   n_thresh=n_thresh, out_bits=out_bits, out_base=out_base, positions=positions,
                   weight_file=f"l{index}_weights.mem", threshold_file=f"l{index}_thresholds.mem",
                   weight_style=WEIGHT_STYLES.index(fold.weights),
                   # pruned binary or ternary weights on bipolar inputs: the masked XNOR-popcount datapath
                   ternary=int(ternary),
                   n_tiles=len(schedule) if schedule else 0,
                   n_words=sum(step.compute for step in schedule) if schedule else 0,
                   tile_file=f"l{index}_tiles.mem")),
        [stream], node.output, out_fmt)


def _zeros_skipped(matrix: np.ndarray, pe: int, simd: int, schedule: list[packing.Step]) -> bool:
    """Every tile the unit computes is free of zeros (its weights in {-1, 0, +1} can be stored as bits)."""
    tiles = packing.mvtu_weight_tiles(matrix, pe, simd)
    sf_count = matrix.shape[1] // simd
    return all((tiles[step.nf * sf_count + step.sf] != 0).all() for step in schedule if step.compute)


def weight_memory_bits(stage: Stage) -> dict[str, int]:
    """An MVTU's weight memory as generated (with its step memory when it skips zero tiles) against every fold
    stored at the IR's weight width."""
    memory = MvtuMemory.of_params(stage.params)
    dense = MvtuMemory(memory.pe, memory.simd, stage.params["ir_w_bits"], memory.mw, memory.mh)
    return {"weight_bits": memory.total_bits(), "dense_weight_bits": dense.weight_bits()}


def stage_resources(stage: Stage) -> estimate.Resources:
    """hw.estimate's first-order LUT / flip-flop / memory figures of one stage."""
    if stage.kind == "mvtu":
        return estimate.mvtu(stage.params, stage.in_bits, stage.out_bits)
    if stage.kind == "window":
        return estimate.window(stage.params, stage.in_bits, stage.out_elems, stage.out_bits)
    if stage.kind == "threshold":
        return estimate.threshold(stage.params, stage.out_bits)
    if stage.kind == "join":
        return estimate.join(stage.out_elems, stage.out_bits)
    if stage.kind in ("exit_test", "exit_gate", "exit_merge"):
        return estimate.exit_stage(stage.kind, stage.params, stage.in_width, stage.out_width)
    return estimate.pool(stage.params, stage.out_bits)


def design_info(graph: Graph, folding: Folding) -> dict:
    """What testbenches and reports need to drive the top level: stream shapes, the cycle model and the
    resource estimate."""
    low = lower(graph, folding)
    stages = low.stages
    source, edges, forks = connect(low)
    total = sum((stage_resources(s) for s in stages), estimate.Resources(0, 0, 0))
    total = sum((estimate.fifo(k.fifo_width, k.fifo_depth) for k in edges), total)
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
                  "layout": "hwc" if len(graph.input_shape) == 3 and not graph.channels_last_input() else "flat"},
        "output": {"features": out_features, "elems_per_beat": last.out_elems, "elem_bits": last.out_bits,
                   "signed": last.out_signed, "beats": out_features // last.out_elems, "shape": list(out_shape),
                   "layout": "hwc" if len(out_shape) == 3 else "flat"},
        "layers": [{"name": s.name, "kind": s.kind, "cycles": s.cycles, **stage_resources(s).as_dict(),
                    **({k: s.params[k] for k in ("mw", "mh", "pe", "simd", "acc_bits", "positions")}
                       | weight_memory_bits(s) if s.kind == "mvtu" else {})} for s in stages],
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
                  "parameters": {"IN_W": source.out_width, "OUT_W": last.out_width}},
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
    info = design_info(graph, folding)
    source, edges, forks = connect(low)
    files[f"{TOP}.sv"] = _TEMPLATE.render(stages=low.stages, top=TOP, ii=info["initiation_interval"], source=source,
                                          edges=edges, forks=forks, two_inputs=TWO_INPUTS)
    for name in (*LIBRARY, f"{SHELL}.sv"):
        files[name] = tools.package_text("hw", "rtl", name)
    files[popcount_x7.FILE] = popcount_x7.library(
        [s.params["simd"] for s in low.stages if s.kind == "mvtu" and s.params["in_kind"] == InKind.BIPOLAR
         and s.params["w_bits"] == 1])
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
