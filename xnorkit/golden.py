"""The golden model: the executable definition of every IR node, in integer numpy.

Every backend is compared with this, never with each other. Bipolar tensors are uint8 0/1 arrays.
"""

from __future__ import annotations

import numpy as np

from xnorkit import numerics, packing
from xnorkit.errors import XnorkitError
from xnorkit.ir import Dequantize, Graph, MatMul, Node, Quantize, Threshold

_CHUNK = 2048  # rows per block in the popcount kernel, to bound memory


def quantize(node: Quantize, x: np.ndarray) -> np.ndarray:
    return numerics.quantize(x, node.scale, node.zero_point, node.dtype)


def matmul(node: MatMul, x: np.ndarray) -> np.ndarray:
    if node.in_dtype.bipolar:
        return numerics.popcount_to_dot(xnor_popcount(x, node.weights), node.in_features)
    return x.astype(np.int64) @ node.weights.astype(np.int64).T


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


def threshold(node: Threshold, acc: np.ndarray) -> np.ndarray:
    return (acc >= node.thresholds[None, :]).astype(np.uint8)


def dequantize(node: Dequantize, acc: np.ndarray) -> np.ndarray:
    return acc.astype(np.float64) * node.scale[None, :] + node.offset[None, :]


_EXECUTE = {Quantize: quantize, MatMul: matmul, Threshold: threshold, Dequantize: dequantize}


def execute_node(node: Node, x: np.ndarray) -> np.ndarray:
    return _EXECUTE[type(node)](node, x)


def run(graph: Graph, x: np.ndarray, keep_all: bool = False) -> dict[str, np.ndarray]:
    """Execute the graph on float inputs of shape (N, *input_shape). Returns the integer output, the
    float output and, with keep_all, every intermediate tensor by name."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[1:] != tuple(graph.input_shape):
        raise XnorkitError(f"input has shape {x.shape}, the model takes (N, {', '.join(map(str, graph.input_shape))})")
    values = {graph.input: x.reshape(len(x), -1)}
    for node in graph.nodes:
        values[node.output] = execute_node(node, values[node.input])
    if keep_all:
        return values
    return {graph.output: values[graph.output], graph.float_output: values[graph.float_output]}


def predict_int(graph: Graph, x: np.ndarray) -> np.ndarray:
    return run(graph, x)[graph.output].astype(np.int64)


def predict_float(graph: Graph, x: np.ndarray) -> np.ndarray:
    return run(graph, x)[graph.float_output]


def run_from_int(graph: Graph, x_int: np.ndarray) -> np.ndarray:
    """The integer output for already quantized inputs (what the hardware backends receive)."""
    values = {graph.nodes[0].output: np.asarray(x_int, dtype=np.int64).reshape(len(x_int), -1)}
    for node in graph.nodes[1:]:
        if node.input in values:
            values[node.output] = execute_node(node, values[node.input])
    return values[graph.output].astype(np.int64)


def quantize_input(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The integer input every hardware backend receives: the graph's first Quantize node applied."""
    first = graph.nodes[0]
    assert isinstance(first, Quantize)
    return quantize(first, np.asarray(x, dtype=np.float32).reshape(len(x), -1))
