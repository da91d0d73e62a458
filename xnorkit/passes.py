"""IR-to-IR passes of the compiler core, each exact: the golden model gives the same network outputs before
and after, bit for bit.

`remove_constant_neurons`: a hidden neuron of a MatMul -> Threshold -> MatMul chain whose output cannot
change (its weight row is all zero, as structured pruning leaves it, or its thresholds lie outside its
accumulator's range) or that nothing reads (the next weight column is all zero) is removed physically: its
weight row, its thresholds and the next layer's weight column. A constant neuron's contribution to the next
accumulators is a constant per channel, which moves into the next layer's thresholds, so every later layer,
the RTL, the HLS and the firmware see a smaller network with the same outputs.

`fused_threshold` is the one rule for which threshold a hardware unit applies to its accumulators, and
`exit_schedule` the order every backend computes early exits in.

`pipeline` is the one sequence of passes between the compiled IR and the backend graph that every backend,
estimate and report reads (xnorkit.build.backend_graph).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from xnorkit import golden, numerics
from xnorkit.ir import Conv, Dequantize, Graph, MatMul, Threshold, inputs_of


def _constant_levels(node: Threshold, layer: MatMul) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, whether its output cannot change over the accumulator's range, and its output at the range's
    low end (golden.threshold, monotone in the accumulator: equal at both ends means constant)."""
    ranges = np.array([numerics.accumulator_range(row, layer.in_dtype) for row in layer.weights])
    low, high = golden.threshold(node, ranges[None, :, 0])[0], golden.threshold(node, ranges[None, :, 1])[0]
    return low == high, low


def _chain(graph: Graph, first: MatMul) -> tuple[Threshold, MatMul, Threshold | Dequantize] | None:
    """first -> Threshold -> MatMul -> (Threshold | Dequantize), each tensor read once and not a network output."""
    def only_consumer(tensor: str):
        users = graph.consumers(tensor)
        return users[0] if len(users) == 1 and tensor not in graph.outputs else None

    act = only_consumer(first.output)
    nxt = only_consumer(act.output) if isinstance(act, Threshold) else None
    after = graph.consumers(nxt.output) if isinstance(nxt, MatMul) else []
    if not isinstance(act, Threshold) or not isinstance(nxt, MatMul) or len(after) != 1 \
            or not isinstance(after[0], Threshold | Dequantize):
        return None
    return act, nxt, after[0]


def _remove_once(graph: Graph) -> tuple[Graph, dict[str, int]]:
    removed: dict[str, int] = {}
    nodes = {n.name: n for n in graph.nodes}
    shapes, types = dict(graph.tensor_shapes), dict(graph.tensor_types)
    for first in [n for n in graph.nodes if isinstance(n, MatMul)]:
        chain = _chain(graph, nodes[first.name])
        if chain is None:
            continue
        first = nodes[first.name]
        act, nxt, after = (nodes[n.name] for n in chain)
        constant, levels = _constant_levels(act, first)
        unused = ~np.any(nxt.weights != 0, axis=0)
        if isinstance(after, Dequantize):
            # the network's output accumulators themselves would move: only neurons nothing reads may go
            constant = constant & unused
        drop = constant | unused
        if not drop.any() or drop.all():
            continue
        keep = ~drop
        values = numerics.integer_values(levels, act.out_dtype)
        shift = nxt.weights[:, constant].astype(np.int64) @ values[constant].astype(np.int64)
        weights = nxt.weights[:, keep]
        nodes[first.name] = replace(first, weights=first.weights[keep],
                                    acc_dtype=numerics.accumulator_type(first.weights[keep], first.in_dtype))
        nodes[act.name] = replace(act, thresholds=act.thresholds[keep])
        nodes[nxt.name] = replace(nxt, weights=weights, acc_dtype=numerics.accumulator_type(weights, nxt.in_dtype))
        if isinstance(after, Threshold) and shift.any():
            # acc = acc' + shift: acc >= T <=> acc' >= T - shift, clamped into acc' range as the frontend does
            moved = numerics.clamp_thresholds(after.thresholds - shift[:, None], weights, nxt.in_dtype)
            nodes[after.name] = replace(after, thresholds=moved)
        types[first.output], types[nxt.output] = nodes[first.name].acc_dtype, nodes[nxt.name].acc_dtype
        kept = int(keep.sum())
        for tensor in (first.output, act.output):
            shapes[tensor] = (kept,)
        removed[act.name] = int(drop.sum())
    new = replace(graph, nodes=tuple(nodes[n.name] for n in graph.nodes), tensor_shapes=shapes, tensor_types=types)
    return new, removed


def remove_constant_neurons(graph: Graph) -> tuple[Graph, dict[str, int]]:
    """The graph without constant or unread hidden neurons, and how many went per activation node; repeated
    until nothing more goes (removing a column can leave a later neuron constant)."""
    total: dict[str, int] = {}
    while True:
        graph, removed = _remove_once(graph)
        if not removed:
            return graph, total
        for name, count in removed.items():
            total[name] = total.get(name, 0) + count


def without_constant_neurons(graph: Graph) -> Graph:
    """remove_constant_neurons as a pass (Graph -> Graph)."""
    return remove_constant_neurons(graph)[0]


PIPELINE = (without_constant_neurons,)


def pipeline(graph: Graph) -> Graph:
    """The backend graph of a compiled graph: each pass of PIPELINE in order."""
    for run_pass in PIPELINE:
        graph = run_pass(graph)
    return graph


def exit_schedule(graph: Graph) -> tuple[list[set[str]], list]:
    """The order every backend computes a network with early exits in: per exit in turn the nodes its output
    needs that no earlier exit needs (by name), then the rest; each group in the graph's (topological) order.
    Returns the groups and the nodes in that order (the graph's order without exits)."""
    groups: list[set[str]] = []
    placed: set[str] = set()
    for output, _ in graph.exits:
        group, todo = set(), [output]
        while todo:
            node = graph.producer(todo.pop())
            if node is None or node.name in placed or node.name in group:
                continue
            group.add(node.name)
            todo.extend(inputs_of(node))
        groups.append(group)
        placed |= group
    ordered = [n for group in groups for n in graph.nodes if n.name in group]
    return groups, ordered + [n for n in graph.nodes if n.name not in placed]


def fused_threshold(graph: Graph, layer: MatMul | Conv) -> Threshold | None:
    """The threshold a dataflow unit applies to its own accumulators (the hardware's MVTU compares them at the
    end of each vector; no stream of sums between): the Threshold that reads the layer's output, or None when
    the accumulators are an output. The C backend keeps its own kernel for each node, the same integers."""
    return next((c for c in graph.consumers(layer.output) if isinstance(c, Threshold)), None)
