"""The integer IR: a closed set of frozen node types over named integer tensors.

Semantics of every node live in `xnorkit.golden` (the executable definition); the numeric rules the
nodes rely on live in `xnorkit.numerics`. A BUILD folder stores the IR as `ir.json` (structure,
versioned) plus `ir.npz` (arrays).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xnorkit.errors import XnorkitError

FORMAT_VERSION = 2  # 2: bipolar accumulators are signed dot products (1: popcounts)


@dataclass(frozen=True)
class IntType:
    """An integer type. `bipolar` is the 1-bit type whose bit 1 means +1 and bit 0 means -1."""

    bits: int
    signed: bool = False
    bipolar: bool = False

    @property
    def min(self) -> int:
        if self.bipolar:
            return -1
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        if self.bipolar:
            return 1
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def name(self) -> str:
        if self.bipolar:
            return "bipolar"
        return f"{'int' if self.signed else 'uint'}{self.bits}"

    @staticmethod
    def parse(text: str) -> IntType:
        if text == "bipolar":
            return BIPOLAR
        if text.startswith("uint"):
            return IntType(int(text[4:]), signed=False)
        if text.startswith("int"):
            return IntType(int(text[3:]), signed=True)
        raise XnorkitError(f"unknown integer type '{text}' in IR")


BIPOLAR = IntType(1, signed=False, bipolar=True)


@dataclass(frozen=True)
class Quantize:
    """Float input to integers: clamp(round_half_even(x / scale) + zero_point) into `dtype`."""

    name: str
    input: str
    output: str
    scale: float
    zero_point: int
    dtype: IntType


@dataclass(frozen=True, eq=False)
class MatMul:
    """Accumulator per output channel from a weight matrix `weights` (out, in) of -1/+1: the integer
    dot product sum_i x_i * w_i, a bipolar input bit counting as -1 (bit 0) or +1 (bit 1)."""

    name: str
    input: str
    output: str
    weights: np.ndarray
    in_dtype: IntType
    acc_dtype: IntType

    @property
    def in_features(self) -> int:
        return int(self.weights.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weights.shape[0])


@dataclass(frozen=True, eq=False)
class Threshold:
    """Bipolar output per channel: bit 1 (+1) when accumulator >= thresholds[c], else bit 0 (-1)."""

    name: str
    input: str
    output: str
    thresholds: np.ndarray


@dataclass(frozen=True, eq=False)
class Dequantize:
    """Float output per channel: accumulator * scale[c] + offset[c] (float64)."""

    name: str
    input: str
    output: str
    scale: np.ndarray
    offset: np.ndarray


Node = Quantize | MatMul | Threshold | Dequantize
NODE_TYPES: dict[str, type] = {t.__name__: t for t in (Quantize, MatMul, Threshold, Dequantize)}


@dataclass(frozen=True)
class Graph:
    """A network: a float input of shape (N, *input_shape), nodes in execution order, one integer
    output (`output`) and its float interpretation (`float_output`, produced by a Dequantize node)."""

    input: str
    input_shape: tuple[int, ...]
    nodes: tuple[Node, ...]
    output: str
    float_output: str
    tensor_types: dict[str, IntType] = field(default_factory=dict)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def producer(self, tensor: str) -> Node | None:
        return next((n for n in self.nodes if n.output == tensor), None)

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self.nodes if n.input == tensor]

    def matmuls(self) -> list[MatMul]:
        return [n for n in self.nodes if isinstance(n, MatMul)]


def verify(graph: Graph) -> None:
    """Structural checks every pass must preserve; raises XnorkitError naming the offending node."""
    defined = {graph.input}
    names = set()
    for n in graph.nodes:
        if n.name in names:
            raise XnorkitError(f"IR node name '{n.name}' is used twice")
        names.add(n.name)
        if n.input not in defined:
            raise XnorkitError(f"IR node '{n.name}' reads '{n.input}' before it is produced")
        if n.output in defined:
            raise XnorkitError(f"IR node '{n.name}' writes '{n.output}', which already exists")
        defined.add(n.output)
        if isinstance(n, MatMul):
            w = n.weights
            if w.ndim != 2 or not np.isin(w, (-1, 1)).all():
                raise XnorkitError(f"IR node '{n.name}': weights must be a 2-D matrix of -1/+1")
        if isinstance(n, Threshold | Dequantize):
            prod = graph.producer(n.input)
            if not isinstance(prod, MatMul):
                raise XnorkitError(f"IR node '{n.name}' must follow a MatMul")
            size = len(n.thresholds) if isinstance(n, Threshold) else len(n.scale)
            if size != prod.out_features:
                raise XnorkitError(f"IR node '{n.name}': {size} channels, its MatMul has {prod.out_features}")
    for t in (graph.output, graph.float_output):
        if t not in defined:
            raise XnorkitError(f"IR output '{t}' is not produced by any node")


# ---- save / load ---------------------------------------------------------------------------------------

_ARRAY_FIELDS = ("weights", "thresholds", "scale", "offset")


def save(graph: Graph, build: Path) -> None:
    build.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    nodes = []
    for n in graph.nodes:
        entry: dict = {"op": type(n).__name__}
        for key, value in vars(n).items():
            if isinstance(value, np.ndarray):
                arrays[f"{n.name}.{key}"] = value
                entry[key] = {"array": f"{n.name}.{key}"}
            elif isinstance(value, IntType):
                entry[key] = value.name()
            else:
                entry[key] = value
        nodes.append(entry)
    doc = {
        "format": "xnorkit-ir",
        "format_version": FORMAT_VERSION,
        "input": graph.input,
        "input_shape": list(graph.input_shape),
        "output": graph.output,
        "float_output": graph.float_output,
        "tensor_types": {k: v.name() for k, v in graph.tensor_types.items()},
        "nodes": nodes,
    }
    np.savez(build / "ir.npz", **arrays)
    (build / "ir.json").write_text(json.dumps(doc, indent=1) + "\n")


def load(build: Path) -> Graph:
    path = Path(build) / "ir.json"
    if not path.is_file():
        raise XnorkitError(f"{build} is not a build folder (no ir.json); create one with `xnorkit compile`")
    doc = json.loads(path.read_text())
    if doc.get("format") != "xnorkit-ir" or doc.get("format_version") != FORMAT_VERSION:
        raise XnorkitError(
            f"{path} has IR format version {doc.get('format_version')!r}, this xnorkit reads version "
            f"{FORMAT_VERSION}; recompile the model with `xnorkit compile`"
        )
    with np.load(Path(build) / "ir.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    nodes = []
    for entry in doc["nodes"]:
        op = entry.pop("op")
        cls = NODE_TYPES[op]
        kwargs = {}
        for key, value in entry.items():
            if isinstance(value, dict) and "array" in value:
                kwargs[key] = arrays[value["array"]]
            elif key in ("dtype", "in_dtype", "acc_dtype"):
                kwargs[key] = IntType.parse(value)
            else:
                kwargs[key] = value
        nodes.append(cls(**kwargs))
    graph = Graph(
        input=doc["input"],
        input_shape=tuple(doc["input_shape"]),
        nodes=tuple(nodes),
        output=doc["output"],
        float_output=doc["float_output"],
        tensor_types={k: IntType.parse(v) for k, v in doc["tensor_types"].items()},
    )
    verify(graph)
    return graph
