"""The golden model: the executable definition of every IR node, in integer numpy.

Every backend is compared with this, never with each other. Tensors are (N, *shape) arrays; bipolar
tensors hold uint8 bits (1 = +1, 0 = -1).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from xnorkit import numerics, packing
from xnorkit.errors import XnorkitError
from xnorkit.ir import (
    Add,
    Concat,
    Conv,
    Dequantize,
    Graph,
    MatMul,
    MaxPool,
    Node,
    Quantize,
    Reshape,
    SumPool,
    Threshold,
    Transpose,
    inputs_of,
)

_CHUNK = 2048  # rows per block in the popcount kernel, to bound memory


values_of = numerics.integer_values


def quantize(node: Quantize, x: np.ndarray) -> np.ndarray:
    x = numerics.prologue(x, node.steps, node.constants)
    q = numerics.quantize(x, node.scale, node.zero_point, node.dtype, node.qmin, node.qmax)
    return q.astype(np.uint8) if node.dtype.bipolar else q


def matmul(node: MatMul, x: np.ndarray) -> np.ndarray:
    if node.in_dtype.bipolar and node.w_dtype.bipolar:
        return numerics.popcount_to_dot(xnor_popcount(x, node.weights), node.in_features)
    return values_of(x, node.in_dtype) @ node.weights.astype(np.int64).T


def xnor_popcount(bits: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """popcount(XNOR(x, w)) per (row, channel), bit-packed into 64-bit words. Padding bits are 0 in
    both operands, so their XNOR is 1: subtract them."""
    n = bits.shape[-1]
    xw = packing.pack_bits(bits)
    ww = packing.pack_bits(packing.bipolar_to_bits(weights))
    pad = xw.shape[-1] * 64 - n
    out = np.empty((bits.shape[0], weights.shape[0]), dtype=np.int64)
    for start in range(0, bits.shape[0], _CHUNK):
        block = xw[start:start + _CHUNK, None, :]
        matches = np.bitwise_count(~(block ^ ww[None, :, :])).sum(axis=-1, dtype=np.int64)
        out[start:start + _CHUNK] = matches - pad
    return out


def _windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], pads: tuple[int, int, int, int],
             pad_value: int) -> np.ndarray:
    """(N, C, H, W) -> (N, C, Ho, Wo, kh, kw) windows over the padded input."""
    top, left, bottom, right = pads
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=pad_value)
    return sliding_window_view(padded, kernel, axis=(2, 3))[:, :, ::stride[0], ::stride[1]]


def conv(node: Conv, x: np.ndarray) -> np.ndarray:
    w = node.weights.astype(np.int64)
    # padding is the real value 0, which the integer values (bipolar: -1/+1) express exactly
    windows = _windows(values_of(x, node.in_dtype), w.shape[2:], node.stride, node.pads, 0)
    c_in, c_out = w.shape[1], w.shape[0] // node.groups
    outs = []
    for g in range(node.groups):
        win = windows[:, g * c_in:(g + 1) * c_in]
        outs.append(np.tensordot(win, w[g * c_out:(g + 1) * c_out], axes=([1, 4, 5], [1, 2, 3])))
    return np.concatenate(outs, axis=-1).transpose(0, 3, 1, 2)


def _per_channel(a: np.ndarray, ndim: int) -> np.ndarray:
    """Shape a (C, ...) parameter to broadcast along axis 1 of an ndim-dimensional batch tensor."""
    return a.reshape((1, a.shape[0]) + (1,) * (ndim - 2) + a.shape[1:])


def threshold(node: Threshold, acc: np.ndarray) -> np.ndarray:
    t = _per_channel(node.thresholds, acc.ndim)
    count = (acc[..., None] >= t).sum(axis=-1)
    if node.out_dtype.bipolar:
        return count.astype(np.uint8)
    return node.base + count.astype(np.int64)


def maxpool(node: MaxPool, x: np.ndarray) -> np.ndarray:
    sentinel = np.iinfo(np.int64).min  # padding never wins
    windows = _windows(x.astype(np.int64), node.kernel, node.stride, node.pads, sentinel)
    return windows.max(axis=(-2, -1)).astype(x.dtype)


def sumpool(node: SumPool, x: np.ndarray) -> np.ndarray:
    windows = _windows(values_of(x, node.in_dtype), node.kernel, node.stride, (0, 0, 0, 0), 0)
    return windows.sum(axis=(-2, -1))


def reshape(node: Reshape, x: np.ndarray) -> np.ndarray:
    return x.reshape((len(x),) + tuple(node.shape))


def transpose(node: Transpose, x: np.ndarray) -> np.ndarray:
    return x.transpose((0,) + tuple(p + 1 for p in node.perm))


def add(node: Add, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return values_of(a, node.in_dtypes[0]) + values_of(b, node.in_dtypes[1])


def concat(node: Concat, *xs: np.ndarray) -> np.ndarray:
    return np.concatenate(xs, axis=1)


def dequantize(node: Dequantize, acc: np.ndarray) -> np.ndarray:
    real = acc.astype(np.float64) * _per_channel(node.scale, acc.ndim) + _per_channel(node.offset, acc.ndim)
    return numerics.softmax(real, node.softmax) if node.softmax else real


_EXECUTE = {Quantize: quantize, MatMul: matmul, Conv: conv, Threshold: threshold, MaxPool: maxpool,
            SumPool: sumpool, Reshape: reshape, Transpose: transpose, Add: add, Concat: concat, Dequantize: dequantize}


def execute_node(node: Node, *xs: np.ndarray) -> np.ndarray:
    return _EXECUTE[type(node)](node, *xs)


def run(graph: Graph, x: np.ndarray, keep_all: bool = False) -> dict[str, np.ndarray]:
    """Execute the graph on float inputs of shape (N, *input_shape). Returns the integer and float outputs
    by name and, with keep_all, every intermediate tensor too."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[1:] != tuple(graph.input_shape):
        shape = ", ".join(map(str, graph.input_shape))
        raise XnorkitError(f"input has shape {x.shape}, the model takes (N, {shape})")
    values = {graph.input: x}
    for node in graph.nodes:
        values[node.output] = execute_node(node, *(values[i] for i in inputs_of(node)))
    if keep_all:
        return values
    return {t: values[t] for t in (*graph.outputs, *graph.float_outputs)}


def _joined(values: dict[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray:
    """Several outputs side by side along axis 1, in the graph's output order (one output: unchanged)."""
    if len(names) == 1:
        return values[names[0]]
    return np.concatenate([values[t].reshape(len(values[t]), -1) for t in names], axis=1)


def with_exits(graph: Graph, values: dict[str, np.ndarray]) -> np.ndarray:
    """The joined integer outputs as a network with early exits returns them: the taken exit's output (and
    every one before it) as computed, the outputs after it 0, and the index of the taken exit appended
    (numerics.exit_taken; len(exits) is the final output). Without exits: the joined outputs."""
    joined = _joined(values, graph.outputs).astype(np.int64)
    if not graph.exits:
        return joined
    margins = np.stack([numerics.exit_margin(graph.class_scores(t, values[t])) for t, _ in graph.exits], axis=1)
    taken = numerics.exit_taken(margins, [m for _, m in graph.exits])
    start = 0
    for k, t in enumerate(graph.outputs):
        size = int(np.prod(values[t].shape[1:]))
        joined[taken < k, start:start + size] = 0
        start += size
    return np.concatenate([joined, taken[:, None]], axis=1)


def predict_int(graph: Graph, x: np.ndarray) -> np.ndarray:
    return with_exits(graph, run(graph, x))


def predict_float(graph: Graph, x: np.ndarray) -> np.ndarray:
    return _joined(run(graph, x), graph.float_outputs)


def predict_from_int(graph: Graph, x_int: np.ndarray) -> np.ndarray:
    """predict_int for already quantized inputs (what the hardware backends receive): the joined integer
    outputs, with early exits the index of the exit taken appended (with_exits)."""
    first = graph.nodes[0]
    values = {first.output: np.asarray(x_int, dtype=np.int64).reshape((len(x_int),) + graph.shape(first.output))}
    for node in graph.nodes[1:]:
        if all(i in values for i in inputs_of(node)):
            values[node.output] = execute_node(node, *(values[i] for i in inputs_of(node)))
    return with_exits(graph, values)


def real_meanings(graph: Graph) -> dict[str, tuple[float, int]]:
    """(scale, zero point) of every quantized tensor of the graph, real = scale * (q - zero point), as the
    frontend imported them (a bipolar tensor's q is -1 or +1): set by a Quantize or a Threshold, kept by a
    layout change, a max pool or a concat, summed by an addition, and by a SumPool over its window, which stands
    for an average pool (scale / area). Accumulators are not listed: their meaning is per channel."""
    meaning: dict[str, tuple[float, int]] = {}
    for node in graph.nodes:
        ins = [meaning.get(t) for t in inputs_of(node)]
        if isinstance(node, Quantize):
            meaning[node.output] = (node.scale, node.zero_point)
        elif isinstance(node, Threshold):
            meaning[node.output] = (node.out_scale, node.out_zero_point)
        elif None in ins:
            continue
        elif isinstance(node, MaxPool | Reshape | Transpose | Concat):
            meaning[node.output] = ins[0]
        elif isinstance(node, Add):
            terms = [(zp, dtype) for (_, zp), dtype in zip(ins, node.in_dtypes, strict=True)]
            meaning[node.output] = (ins[0][0], numerics.summed_zero_point(terms))
        elif isinstance(node, SumPool):
            area = node.kernel[0] * node.kernel[1]
            meaning[node.output] = (ins[0][0] / area, numerics.summed_zero_point([(ins[0][1], node.in_dtype)] * area))
    return meaning


def random_int_inputs(graph: Graph, count: int, seed: int = 0) -> np.ndarray:
    """`count` seeded random integer inputs over the whole range of the input quantizer's type (what the
    backends' checks and `sim` run when no inputs are given)."""
    q = graph.nodes[0].dtype
    return np.random.default_rng(seed).integers(q.min, q.max + 1, size=(count, *graph.input_shape))


def quantize_input(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The integer input every hardware backend receives, flattened per input: the graph's first
    Quantize node applied."""
    first = graph.nodes[0]
    assert isinstance(first, Quantize)
    return quantize(first, np.asarray(x, dtype=np.float32)).reshape(len(x), -1)
