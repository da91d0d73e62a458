"""Figures computed from the IR: per-layer statistics (`xnorkit inspect`) and the tensor-by-tensor
comparison with qonnx's executor (`xnorkit diff`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xnorkit import golden
from xnorkit.ir import Dequantize, Graph, MatMul, Quantize, Threshold


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


def layer_stats(graph: Graph) -> list[LayerStats]:
    rows = []
    for node in graph.nodes:
        if isinstance(node, Quantize):
            n = int(np.prod(graph.input_shape))
            rows.append(LayerStats(node.name, "Quantize", f"{n} -> {n}", f"float32 -> {node.dtype.name()}",
                                   0, 1.0, 0, False, 0))
        elif isinstance(node, MatMul):
            w = node.weights
            rows.append(LayerStats(
                node.name, "MatMul", f"{node.in_features} -> {node.out_features}",
                f"{node.in_dtype.name()} x bipolar -> {node.acc_dtype.name()}", int(w.size),
                float(np.count_nonzero(w) / w.size), int(w.size), node.in_dtype.bipolar, int(w.size)))
        elif isinstance(node, Threshold):
            acc = graph.tensor_types[node.input]
            c = len(node.thresholds)
            rows.append(LayerStats(node.name, "Threshold", f"{c} -> {c}", f"{acc.name()} -> bipolar", 0, 1.0, 0,
                                   False, c * acc.bits))
        elif isinstance(node, Dequantize):
            c = len(node.scale)
            rows.append(LayerStats(node.name, "Dequantize", f"{c} -> {c}", "int -> float64", 0, 1.0, 0, False, 0))
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
    diffs, compared = [], 0
    for node in graph.nodes:
        theirs = qonnx_values.get(node.output)
        if theirs is None:
            continue
        theirs = np.asarray(theirs).reshape(len(x), -1)
        mine = ours[node.output]
        if isinstance(node, Quantize):
            theirs = np.rint(theirs.astype(np.float64) / node.scale) + node.zero_point
            delta = np.abs(mine.astype(np.float64) - theirs)
            bad = delta > 0
        elif isinstance(node, Threshold):
            theirs = (theirs > 0).astype(np.int64)
            delta = np.abs(mine.astype(np.int64) - theirs).astype(np.float64)
            bad = delta > 0
        elif isinstance(node, Dequantize):
            delta = np.abs(mine - theirs.astype(np.float64))
            bad = delta > rtol * np.abs(theirs).max(axis=1, keepdims=True)
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
