"""Figures computed from the IR: per-layer statistics (`xnorkit inspect`) and the tensor-by-tensor
comparison with qonnx's executor (`xnorkit diff`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xnorkit import golden, packing
from xnorkit.ir import (
    Add,
    Concat,
    Conv,
    Dequantize,
    Graph,
    MatMul,
    MaxPool,
    Quantize,
    Reshape,
    SumPool,
    Threshold,
    Transpose,
    inputs_of,
)


@dataclass(frozen=True)
class LayerStats:
    name: str
    op: str
    shape: str        # inputs -> outputs
    bits: str         # input x weight -> output types
    weights: int
    density: float    # fraction of nonzero weights
    macs: int         # multiply-accumulates per inference (binary MACs when input and weights are bipolar)
    binary: bool
    memory_bits: int  # weights and thresholds as stored
    sparse_bits: int = 0  # the weights in the smallest format of packing.sparse_weight_bits (0: no weights)
    sparse_format: str = ""


def _shape(graph: Graph, tensor: str) -> str:
    return "x".join(map(str, graph.shape(tensor)))


def layer_stats(graph: Graph) -> list[LayerStats]:
    rows = []
    for node in graph.nodes:
        first = inputs_of(node)[0]
        shape = f"{_shape(graph, first)} -> {_shape(graph, node.output)}" if node.output in graph.tensor_shapes \
            else _shape(graph, first)
        if isinstance(node, Quantize):
            bits = f"float32 -> {node.dtype.name()}"
            rows.append(LayerStats(node.name, "Quantize", shape, bits, 0, 1.0, 0, False, 0))
        elif isinstance(node, MatMul | Conv):
            w = node.weights
            positions = int(np.prod(graph.shape(node.output)[1:])) if isinstance(node, Conv) else 1
            formats = packing.sparse_weight_bits(w, node.w_dtype.bits)
            smallest = min(formats, key=formats.get)
            rows.append(LayerStats(
                node.name, type(node).__name__, shape,
                f"{node.in_dtype.name()} x {node.w_dtype.name()} -> {node.acc_dtype.name()}", int(w.size),
                float(np.count_nonzero(w) / w.size), int(np.count_nonzero(w)) * positions,
                node.in_dtype.bipolar and node.w_dtype.bipolar, int(w.size) * node.w_dtype.bits,
                formats[smallest], smallest))
        elif isinstance(node, Threshold):
            acc = graph.tensor_types[node.input]
            rows.append(LayerStats(node.name, "Threshold", shape, f"{acc.name()} -> {node.out_dtype.name()}", 0, 1.0,
                                   0, False, int(node.thresholds.size) * acc.bits))
        elif isinstance(node, MaxPool | SumPool | Reshape | Transpose | Add | Concat):
            dtype = graph.tensor_types[node.output].name()
            rows.append(LayerStats(node.name, type(node).__name__, shape, f"{dtype} -> {dtype}", 0, 1.0, 0, False, 0))
        elif isinstance(node, Dequantize):
            rows.append(LayerStats(node.name, "Dequantize", shape, "int -> float64", 0, 1.0, 0, False, 0))
    return rows


@dataclass(frozen=True)
class TensorDiff:
    tensor: str
    node: str
    op: str
    differing: int
    total: int
    largest: float


def diff_against_qonnx(graph: Graph, qonnx_values: dict[str, np.ndarray], x: np.ndarray,
                       rtol: float = 1e-5) -> tuple[list[TensorDiff], int]:
    """Every IR tensor that qonnx also computes, in execution order: quantized activations compared as
    integers (exactly), the float output within `rtol` of each vector's largest magnitude. Returns the
    differing tensors and how many tensors were compared."""
    ours = golden.run(graph, x, keep_all=True)
    meaning = golden.real_meanings(graph)  # tensor -> (scale, zero point) of its real value
    diffs, compared = [], 0
    for node in graph.nodes:
        theirs = qonnx_values.get(node.output)
        if theirs is None:
            continue
        theirs = np.asarray(theirs).reshape(ours[node.output].shape)
        mine = ours[node.output]
        if isinstance(node, Dequantize):
            delta = np.abs(mine - theirs.astype(np.float64))
            scale = np.abs(theirs).reshape(len(x), -1).max(axis=1).reshape((-1,) + (1,) * (theirs.ndim - 1))
            bad = delta > rtol * scale
        elif node.output in meaning:
            scale, zero_point = meaning[node.output]
            if graph.tensor_types[node.output].bipolar:
                theirs = packing.bipolar_to_bits(theirs).astype(np.int64)
            else:
                theirs = np.rint(theirs.astype(np.float64) / scale) + zero_point
            delta = np.abs(mine.astype(np.float64) - theirs)
            bad = delta > 0
        else:
            continue  # accumulators are integers here and affine floats in qonnx: compared through their outputs
        compared += 1
        if bad.any():
            diffs.append(TensorDiff(node.output, node.name, type(node).__name__, int(bad.sum()), int(bad.size),
                                    float(delta.max())))
    return diffs, compared


def qonnx_tensors(build_dir: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    from xnorkit.build import qonnx_execute

    return qonnx_execute(build_dir, x, every_tensor=True)
