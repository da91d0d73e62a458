"""Lowering the backend graph into hardware stages (hw.stages), once for every reader: the SV and HLS emitters,
design.json, hw.fit and the report. One handler per IR op (_LOWER):
- `MatMul` (+ `Threshold`): an MVTU (xk_mvtu), the threshold after it fused in (passes.fused_threshold).
- `Conv` (+ `Threshold`): a sliding-window generator (xk_sliding_window) feeding an MVTU whose vector is
  the window; one vector per output position. A grouped convolution streams each group's window in turn
  and its MVTU computes each group's neurons from that group's part alone.
- `MaxPool` / `SumPool`: a sliding-window generator feeding a reduction (xk_pool).
- `Add` / `Concat`: a join of two streams (xk_join); a `Threshold` after it: xk_threshold.
- `Reshape` (flatten): nothing. Feature maps stream pixel by pixel (channels fastest), so a fully
  connected layer after a flatten reads its inputs in (H, W, C) order: its weight columns are laid out
  in that order (xnorkit.layout; a permutation of the IR's columns, never a change of values).
- An early exit: its test and gate after the exit's layers, merges at the end (passes.exit_schedule).
It never changes a value: weights and thresholds are the IR's."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xnorkit import layout, numerics, packing, passes
from xnorkit.errors import XnorkitError
from xnorkit.hw.folding import (
    WEIGHT_STYLES,
    Folding,
    exit_segments,
    layer_cycles,
    matrix_shape,
    unit_matrix,
    unit_schedule,
    validate,
)
from xnorkit.hw.stages import InKind, Lowered, Stage
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


def _kind(dtype: IntType) -> str:
    return "bipolar" if dtype.bipolar else "signed" if dtype.signed else "unsigned"



def _signed_field_bits(dtype: IntType) -> int:
    """Bits of a two's complement field holding every value of the type (sums stream as signed)."""
    return numerics.signed_type_for(dtype.min, dtype.max).bits


@dataclass
class _Lowering:
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


def _sv_quantize(lw: _Lowering, node: Quantize) -> None:
    lw.source[node.output], lw.fmt[node.output] = -1, (node.dtype.bits, _kind(node.dtype))


def _sv_layout(lw: _Lowering, node: Reshape | Transpose) -> None:
    """A transpose or flatten changes only the order a later layer reads; the stream stays as it is."""
    layout.track(lw.graph, node, lw.layout_of, "the RTL streams")
    lw.same_stream(node)


def _sv_pool(lw: _Lowering, node: MaxPool | SumPool) -> None:
    """A window generator and a reduction (maximum, or exact sum)."""
    graph, n = lw.graph, len(lw.low.stages)
    c, h, w = graph.shape(node.input)
    _, ho, wo = graph.shape(node.output)
    bits, kind = lw.fmt[node.input]
    kh, kw = node.kernel
    pads = node.pads if isinstance(node, MaxPool) else (0, 0, 0, 0)
    # the type's least value, so padding never wins: its value (pad_level), and its field as the RTL streams it
    pad_level = -(1 << (bits - 1)) if kind == "signed" else 0
    pad_value = pad_level & ((1 << bits) - 1)
    lw.add(Stage(n, "window", f"{node.name}_window", c, bits, c, bits, kind == "signed",
                 max(h * w, ho * wo * kh * kw), kh * kw,
                 dict(c=c, h=h, w=w, kh=kh, kw=kw, sh=node.stride[0], sw=node.stride[1], pad_t=pads[0],
                      pad_l=pads[1], ho=ho, wo=wo, groups=1, bipolar_to_int=0, pad_value=pad_value,
                      pad_level=pad_level)),
           [node.input], f"{node.name}:window", (bits, kind))
    if isinstance(node, MaxPool):
        out_fmt = (bits, kind)
    else:
        out_fmt = (_signed_field_bits(graph.tensor_types[node.output]), "signed")
    lw.add(Stage(n + 1, "pool", node.name, c, bits, c, out_fmt[0], out_fmt[1] == "signed", ho * wo * kh * kw, 1,
                 dict(c=c, window=kh * kw, kind=int(InKind.of(kind)), sum=int(isinstance(node, SumPool)))),
           [f"{node.name}:window"], node.output, out_fmt)


def _sv_join(lw: _Lowering, node: Add | Concat) -> None:
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


def _sv_threshold(lw: _Lowering, node: Threshold) -> None:
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


def _sv_mac(lw: _Lowering, node: MatMul | Conv) -> None:
    """An MVTU (after a window generator for a convolution), with the threshold after it fused in."""
    graph = lw.graph
    threshold = passes.fused_threshold(graph, node)
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
    lw = _Lowering(graph, folding, Lowered([], {}, {}, {}, graph.nodes[0].dtype.bits))
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
                   margin=_signed_literal(margin, s_bits), margin_value=int(margin),
                   score_weight=[int(v) for v in weight], score_bias=[int(v) for v in bias],
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
                       pad_value=0, pad_level=0)),
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
        computes = any(step.compute for step in schedule)  # none when every tile is zero
        if signs_or_zeros and computes and _zeros_skipped(matrix, fold.pe, fold.simd, schedule):
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
                   weight_style=WEIGHT_STYLES.index(fold.weights), writable=int(fold.weights == "writable"),
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

