"""The integer IR: a closed set of frozen node types over named integer tensors.

Semantics of every node live in `xnorkit.golden` (the executable definition); the numeric rules the
nodes rely on live in `xnorkit.numerics`. A BUILD folder stores the IR as `ir.json` (structure,
versioned) plus `ir.npz` (arrays).
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xnorkit import naming, numerics
from xnorkit.errors import XnorkitError
from xnorkit.inttype import BIPOLAR, IntType  # noqa: F401  (part of the IR's vocabulary)

# 8: Quantize's float prologue and narrow range; Dequantize's float softmax
# 7: Dequantize's integer class scores (exit margins)
# 6: Transpose; 5: SumPool; 4: Add, Concat, several outputs; 3: Conv, MaxPool, Reshape, k-bit; 2: signed dot products
FORMAT_VERSION = 8




PROLOGUE_OPS = ("mul", "div", "add", "sub")


@dataclass(frozen=True, eq=False)
class Quantize:
    """Float input to integers. First the float32 prologue: for each step in order, x = x op constant
    (`steps[i]` one of PROLOGUE_OPS, `constants[i]` a float32 array broadcasting against (N, *input_shape)),
    as the exporter's float ops before the quantizer compute it. Then clamp(round_half_even(x / scale +
    zero_point)) into [qmin, qmax] (`narrow`: the most negative value of a signed type, or the largest of an
    unsigned one, is left out); a bipolar `dtype` is the bit x >= 0 (1 is +1)."""

    name: str
    input: str
    output: str
    scale: float
    zero_point: int
    dtype: IntType
    narrow: bool = False
    steps: tuple[str, ...] = ()
    constants: tuple[np.ndarray, ...] = ()

    @property
    def qmin(self) -> int:
        return self.dtype.quant_range(self.narrow)[0]

    @property
    def qmax(self) -> int:
        return self.dtype.quant_range(self.narrow)[1]


@dataclass(frozen=True, eq=False)
class MatMul:
    """Accumulator per output channel from a weight matrix `weights` (out, in) of integers of `w_dtype`:
    the integer dot product sum_i x_i * w_i, a bipolar input or weight bit counting as -1 (bit 0) or +1
    (bit 1). Weights stay unpacked integers here (bipolar ones as -1/+1); zeros are explicit sparsity."""

    name: str
    input: str
    output: str
    weights: np.ndarray
    in_dtype: IntType
    w_dtype: IntType
    acc_dtype: IntType

    @property
    def in_features(self) -> int:
        return int(self.weights.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weights.shape[0])


@dataclass(frozen=True, eq=False)
class Conv:
    """2-D convolution over (C, H, W) with weights (out, in / groups, kh, kw): per output channel and
    position, the integer dot product of the window with the kernel. Padding positions contribute 0
    (a bipolar input counts -1/+1, so padding is neither: it is the real value 0, as in PyTorch)."""

    name: str
    input: str
    output: str
    weights: np.ndarray
    in_dtype: IntType
    w_dtype: IntType
    acc_dtype: IntType
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    groups: int

    @property
    def out_channels(self) -> int:
        return int(self.weights.shape[0])


@dataclass(frozen=True, eq=False)
class Threshold:
    """Activation per channel c: with L = thresholds.shape[1] levels, out = base + #{l : acc >= T[c, l]}.
    A bipolar output (L = 1, base 0) is the bit acc >= T[c, 0]: 1 is +1, 0 is -1."""

    name: str
    input: str
    output: str
    thresholds: np.ndarray  # (C, L), int64, nondecreasing along L
    base: int
    out_dtype: IntType
    out_scale: float = 1.0  # what the output means: real = out_scale * (out - out_zero_point), bipolar: +-out_scale
    out_zero_point: int = 0

    @property
    def channels(self) -> int:
        return int(self.thresholds.shape[0])


@dataclass(frozen=True)
class MaxPool:
    """Maximum over windows of (C, H, W); padding positions never win. On bipolar bits it is an OR."""

    name: str
    input: str
    output: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]


@dataclass(frozen=True)
class SumPool:
    """Sum of the integers of each window (no padding): average pooling without its division, which the
    compiler moves into the real scale of the result (scale / window area), so it stays exact."""

    name: str
    input: str
    output: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    in_dtype: IntType


@dataclass(frozen=True)
class Reshape:
    """Layout only: the values in row-major (C, H, W) order take the new shape."""

    name: str
    input: str
    output: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Add:
    """Elementwise sum of two integer tensors of one shape (residual connections); bipolar inputs count
    as -1/+1. The compiler only adds tensors of one real scale, so the sum of integers is exact."""

    name: str
    inputs: tuple[str, str]
    output: str
    in_dtypes: tuple[IntType, IntType]


@dataclass(frozen=True)
class Concat:
    """Concatenation along the channel axis (fire modules); the inputs share one integer type."""

    name: str
    inputs: tuple[str, ...]
    output: str


@dataclass(frozen=True)
class Transpose:
    """Layout only: the axes after the batch axis in the order `perm` (0 = the first axis after batch)."""

    name: str
    input: str
    output: str
    perm: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Dequantize:
    """Float output per channel (axis 1): accumulator * scale[c] + offset[c] (float64). The same in integers,
    what ranks the classes in the backends (an exit's margin, the class returned): score[c] = score_weight[c]
    * accumulator + score_bias[c] (numerics.score_affine, filled in when not given)."""

    name: str
    input: str
    output: str
    scale: np.ndarray
    offset: np.ndarray
    score_weight: np.ndarray | None = None
    score_bias: np.ndarray | None = None
    # "softmax" or "log_softmax": applied in float to the float output along axis 1 (the network ends in one);
    # integer outputs, class scores and exits are unaffected, since both keep the order of the classes
    softmax: str = ""

    def __post_init__(self) -> None:
        if self.score_weight is None or self.score_bias is None:

            weight, bias = numerics.score_affine(self.scale, self.offset)
            object.__setattr__(self, "score_weight", weight)
            object.__setattr__(self, "score_bias", bias)


Node = Quantize | MatMul | Conv | Threshold | MaxPool | SumPool | Reshape | Transpose | Add | Concat | Dequantize
NODE_TYPES: dict[str, type] = {t.__name__: t for t in (Quantize, MatMul, Conv, Threshold, MaxPool, SumPool, Reshape,
                                                      Transpose, Add, Concat, Dequantize)}
_TUPLE_FIELDS = ("stride", "pads", "kernel", "shape", "inputs", "perm", "steps")
SOFTMAXES = ("", "softmax", "log_softmax")


def inputs_of(node: Node) -> tuple[str, ...]:
    return tuple(node.inputs) if isinstance(node, Add | Concat) else (node.input,)


@dataclass(frozen=True)
class Graph:
    """A network: a float input of shape (N, *input_shape), nodes in execution order, integer outputs
    (`outputs`, in the ONNX graph's output order) and their float interpretations (`float_outputs`, each
    produced by a Dequantize node)."""

    input: str
    input_shape: tuple[int, ...]
    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]
    float_outputs: tuple[str, ...]
    tensor_types: dict[str, IntType] = field(default_factory=dict)
    tensor_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # without the batch axis
    # early exits that stop the inference: (integer output, margin), in order, every output but the last one
    # (numerics.exit_taken); empty: every output is always computed
    exits: tuple[tuple[str, int], ...] = ()
    # the model's name (xnorkit.naming): the prefix of what the backends generate
    name: str = naming.DEFAULT

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def producer(self, tensor: str) -> Node | None:
        return next((n for n in self.nodes if n.output == tensor), None)

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self.nodes if tensor in inputs_of(n)]

    @property
    def output(self) -> str:
        """The integer output of a single-output network (backends that build one output use this)."""
        if len(self.outputs) != 1:
            raise XnorkitError(f"this step supports networks with one output; this one has {len(self.outputs)}")
        return self.outputs[0]

    @property
    def float_output(self) -> str:
        if len(self.float_outputs) != 1:
            raise XnorkitError(f"this step supports networks with one output; this one has {len(self.outputs)}")
        return self.float_outputs[0]

    def dequantize_of(self, output: str) -> Dequantize:
        """The Dequantize node that reads an integer output."""
        node = next((n for n in self.consumers(output) if isinstance(n, Dequantize)), None)
        if node is None:
            raise XnorkitError(f"IR output '{output}' has no Dequantize node after it")
        return node

    def result_width(self) -> int:
        """The integers a backend returns per input: every output's values joined, then, with early exits, the
        index of the exit taken (golden.with_exits)."""
        return sum(int(np.prod(self.shape(t))) for t in self.outputs) + (1 if self.exits else 0)

    def class_scores(self, output: str, acc: np.ndarray) -> np.ndarray:
        """An integer output's class scores (numerics.class_scores with its Dequantize's score_affine)."""
        node = self.dequantize_of(output)
        return numerics.class_scores(acc, node.score_weight, node.score_bias)

    def channels_last_input(self) -> Transpose | None:
        """The Transpose (H, W, C) -> (C, H, W) of a channels-last quantized input, when it is the input's only
        reader. Backends store and stream a map pixel by pixel, channels fastest: that order of its output is
        the input's own order, so they take the input as it comes and the transpose costs nothing."""
        first = self.nodes[0]
        readers = self.consumers(first.output)
        if len(readers) != 1 or not isinstance(readers[0], Transpose) or len(self.shape(first.output)) != 3:
            return None
        return readers[0] if readers[0].perm == (2, 0, 1) else None

    def matmuls(self) -> list[MatMul]:
        return [n for n in self.nodes if isinstance(n, MatMul)]

    def shape(self, tensor: str) -> tuple[int, ...]:
        return tuple(self.input_shape) if tensor == self.input else self.tensor_shapes[tensor]


# IR names reach generated SV, C, TCL and Python (comments, symbols, file names): letters, digits, _ . - only
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def check_name(name: object, what: str) -> None:
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise XnorkitError(f"IR {what} name {str(name)[:40]!r} is not allowed (letters, digits, '_', '.', '-'; "
                           f"at most 128); recompile the model with `xnorkit compile`")


def _verify_values(graph: Graph) -> None:
    """Names safe, shapes positive, every array of the dtype and the shape its node needs, every float finite:
    what a build folder edited by hand or damaged must not get past."""
    for t in (graph.input, *graph.outputs, *graph.float_outputs, *graph.tensor_types, *graph.tensor_shapes):
        check_name(t, "tensor")
    for shape in (graph.input_shape, *graph.tensor_shapes.values()):
        if not shape or not all(isinstance(d, int) and 0 < d < 1 << 24 for d in shape):
            raise XnorkitError(f"IR shape {tuple(shape)} is not a shape of positive sizes")
    for n in graph.nodes:
        check_name(n.name, "node")
        for t in (*inputs_of(n), n.output):
            check_name(t, "tensor")
        for key, value in vars(n).items():
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.isfinite(value).all():
                raise XnorkitError(f"IR node '{n.name}': {key} holds NaN or infinite values")
            if key in ("weights", "thresholds") and value.dtype.kind not in "iu":
                raise XnorkitError(f"IR node '{n.name}': {key} must be integers, not {value.dtype}")
        if isinstance(n, Quantize) and not (np.isfinite(n.scale) and n.scale > 0):
            raise XnorkitError(f"IR node '{n.name}': the input scale must be finite and positive, not {n.scale}")
        if isinstance(n, MatMul) and (n.input == graph.input or n.input in graph.tensor_shapes):
            size = int(np.prod(graph.shape(n.input)))
            out = graph.tensor_shapes.get(n.output, (n.out_features,))
            if n.weights.shape != (out[0], size):
                raise XnorkitError(f"IR node '{n.name}': weights of shape {n.weights.shape} for {size} inputs and "
                                   f"{out[0]} outputs")
        if isinstance(n, Dequantize) and not (len(n.scale) == len(n.offset) == len(n.score_weight)
                                               == len(n.score_bias)):
            raise XnorkitError(f"IR node '{n.name}': scale, offset and scores of different lengths")


def verify(graph: Graph) -> None:
    """Structural checks every pass must preserve; raises XnorkitError naming the offending node."""
    _verify_values(graph)
    defined = {graph.input}
    names = set()
    for n in graph.nodes:
        if n.name in names:
            raise XnorkitError(f"IR node name '{n.name}' is used twice")
        names.add(n.name)
        missing = [i for i in inputs_of(n) if i not in defined]
        if missing:
            raise XnorkitError(f"IR node '{n.name}' reads '{missing[0]}' before it is produced")
        if n.output in defined:
            raise XnorkitError(f"IR node '{n.name}' writes '{n.output}', which already exists")
        defined.add(n.output)
        if isinstance(n, MatMul | Conv):
            w = n.weights
            if w.ndim != (2 if isinstance(n, MatMul) else 4):
                raise XnorkitError(f"IR node '{n.name}': weights of shape {w.shape} have the wrong rank")
            allowed = (-1, 1) if n.w_dtype.bipolar else None
            if allowed and not np.isin(w, allowed).all():
                raise XnorkitError(f"IR node '{n.name}': bipolar weights must be -1/+1")
            if not allowed and (w.min() < n.w_dtype.min or w.max() > n.w_dtype.max):
                raise XnorkitError(f"IR node '{n.name}': weights outside {n.w_dtype.name()}")
        if isinstance(n, Threshold):
            t = n.thresholds
            if t.ndim != 2 or (t.shape[1] > 1 and (np.diff(t, axis=1) < 0).any()):
                raise XnorkitError(f"IR node '{n.name}': thresholds must be (channels, levels), nondecreasing")
            if n.out_dtype.bipolar and (t.shape[1] != 1 or n.base != 0):
                raise XnorkitError(f"IR node '{n.name}': a bipolar output has one level and base 0")
        if isinstance(n, Quantize):
            _verify_prologue(n, graph.shape(graph.input))
        if isinstance(n, Dequantize) and n.softmax not in SOFTMAXES:
            raise XnorkitError(f"IR node '{n.name}': unknown softmax '{n.softmax}'")
        if isinstance(n, Threshold | Dequantize):
            channels = n.channels if isinstance(n, Threshold) else len(n.scale)
            shape = graph.tensor_shapes.get(n.input)
            if shape is not None and shape[0] != channels:
                raise XnorkitError(f"IR node '{n.name}': {channels} channels, its input has {shape[0]}")
    if not graph.outputs or len(graph.outputs) != len(graph.float_outputs):
        raise XnorkitError("IR graph needs as many float outputs as integer outputs, at least one")
    for t in (*graph.outputs, *graph.float_outputs):
        if t not in defined:
            raise XnorkitError(f"IR output '{t}' is not produced by any node")
    if graph.exits and [t for t, _ in graph.exits] != list(graph.outputs[:-1]):
        raise XnorkitError(f"IR exits {[t for t, _ in graph.exits]} must be the outputs before the last, "
                           f"{list(graph.outputs[:-1])}, in order")


def _verify_prologue(n: Quantize, input_shape: tuple[int, ...]) -> None:
    if len(n.steps) != len(n.constants) or any(op not in PROLOGUE_OPS for op in n.steps):
        raise XnorkitError(f"IR node '{n.name}': prologue steps must be {'/'.join(PROLOGUE_OPS)}, one constant each")
    for c in n.constants:
        if c.dtype != np.float32 or not np.isfinite(c).all():
            raise XnorkitError(f"IR node '{n.name}': prologue constants must be finite float32")
        try:
            shape = np.broadcast_shapes(c.shape, (1, *input_shape))
        except ValueError:
            shape = None
        if shape != (1, *input_shape):
            raise XnorkitError(f"IR node '{n.name}': a prologue constant of shape {c.shape} does not broadcast "
                               f"against the input (N, {', '.join(map(str, input_shape))})")
    if n.narrow and n.dtype.bipolar:
        raise XnorkitError(f"IR node '{n.name}': a bipolar quantizer has no narrow range")


# ---- save / load ---------------------------------------------------------------------------------------

_ARRAY_FIELDS = ("weights", "thresholds", "scale", "offset", "score_weight", "score_bias")


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
            elif key == "constants":
                names = [f"{n.name}.{key}.{i}" for i in range(len(value))]
                arrays.update(zip(names, value, strict=True))
                entry[key] = {"arrays": names}
            elif isinstance(value, IntType):
                entry[key] = value.name()
            elif isinstance(value, tuple) and value and isinstance(value[0], IntType):
                entry[key] = [v.name() for v in value]
            else:
                entry[key] = value
        nodes.append(entry)
    doc = {
        "format": "xnorkit-ir",
        "format_version": FORMAT_VERSION,
        "input": graph.input,
        "input_shape": list(graph.input_shape),
        "outputs": list(graph.outputs),
        "float_outputs": list(graph.float_outputs),
        "tensor_types": {k: v.name() for k, v in graph.tensor_types.items()},
        "tensor_shapes": {k: list(v) for k, v in graph.tensor_shapes.items()},
        "exits": [{"output": t, "margin": int(m)} for t, m in graph.exits],
        "name": graph.name,
        "nodes": nodes,
    }
    # each file written beside and renamed over the old one: an interrupted save leaves the old file whole
    with open(build / ".ir.npz.tmp", "wb") as f:
        np.savez(f, **arrays)
    os.replace(build / ".ir.npz.tmp", build / "ir.npz")
    (build / ".ir.json.tmp").write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(build / ".ir.json.tmp", build / "ir.json")


def load(build: Path) -> Graph:
    """A build's IR, verified; a missing, damaged or edited ir.json / ir.npz is one line."""
    path = Path(build) / "ir.json"
    if not path.is_file():
        raise XnorkitError(f"{build} is not a build folder (no ir.json); create one with `xnorkit compile`")
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict):
            raise TypeError("not a JSON object")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as e:
        raise XnorkitError(f"{path} is not an IR file ({type(e).__name__}); recompile the model with "
                           f"`xnorkit compile`") from None
    if doc.get("format") != "xnorkit-ir" or doc.get("format_version") != FORMAT_VERSION:
        raise XnorkitError(
            f"{path} has IR format version {str(doc.get('format_version'))[:20]}, this xnorkit reads version "
            f"{FORMAT_VERSION}; recompile the model with `xnorkit compile`"
        )
    try:
        graph = _from_doc(doc, Path(build) / "ir.npz")
    except XnorkitError:
        raise
    except (OSError, zipfile.BadZipFile, KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise XnorkitError(f"{build}: ir.json or ir.npz is damaged or edited ({type(e).__name__}: "
                           f"{str(e)[:80]}); recompile the model with `xnorkit compile`") from None
    verify(graph)
    return graph


_PLAIN_TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool, "np.ndarray": np.ndarray,
                "IntType": IntType}


def _fits(annotation: str, value: object) -> bool:
    """Whether `value` has the type a node field's annotation names (the annotations of this module's nodes)."""
    for option in (o.strip() for o in annotation.split(" | ")):
        if option == "None" and value is None:
            return True
        if option.startswith("tuple["):
            parts = [p.strip() for p in option[6:-1].split(",")]
            if not isinstance(value, tuple):
                continue
            if parts[-1] == "...":
                if all(_fits(parts[0], v) for v in value):
                    return True
            elif len(parts) == len(value) and all(_fits(t, v) for t, v in zip(parts, value, strict=True)):
                return True
        elif option in _PLAIN_TYPES and isinstance(value, _PLAIN_TYPES[option]):
            if isinstance(value, bool) and option != "bool":
                continue
            if isinstance(value, float) and not np.isfinite(value):
                continue
            return True
    return False


def _check_fields(cls: type, kwargs: dict) -> None:
    import dataclasses

    for f in dataclasses.fields(cls):
        if f.name in kwargs and not _fits(f.type, kwargs[f.name]):
            raise XnorkitError(f"IR node '{str(kwargs.get('name'))[:40]}': field '{f.name}' must be {f.type}, not "
                               f"{str(kwargs[f.name])[:40]!r}; recompile the model with `xnorkit compile`")


def _from_doc(doc: dict, npz_path: Path) -> Graph:
    with np.load(npz_path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    nodes = []
    for entry in doc["nodes"]:
        entry = dict(entry)
        cls = NODE_TYPES[entry.pop("op")]
        kwargs = {}
        for key, value in entry.items():
            if isinstance(value, dict) and "array" in value:
                kwargs[key] = arrays[value["array"]]
            elif isinstance(value, dict) and "arrays" in value:
                kwargs[key] = tuple(arrays[name] for name in value["arrays"])
            elif key in ("dtype", "in_dtype", "w_dtype", "acc_dtype", "out_dtype"):
                kwargs[key] = IntType.parse(value)
            elif key == "in_dtypes":
                kwargs[key] = tuple(IntType.parse(v) for v in value)
            elif key in _TUPLE_FIELDS:
                kwargs[key] = tuple(value)
            else:
                kwargs[key] = value
        _check_fields(cls, kwargs)
        nodes.append(cls(**kwargs))
    return Graph(
        input=doc["input"],
        input_shape=tuple(doc["input_shape"]),
        nodes=tuple(nodes),
        outputs=tuple(doc["outputs"]),
        float_outputs=tuple(doc["float_outputs"]),
        tensor_types={k: IntType.parse(v) for k, v in doc["tensor_types"].items()},
        tensor_shapes={k: tuple(v) for k, v in doc.get("tensor_shapes", {}).items()},
        exits=tuple((e["output"], int(e["margin"])) for e in doc.get("exits", [])),
        name=_name(doc.get("name", naming.DEFAULT)),
    )


def _name(value: object) -> str:
    try:
        return naming.check(value)
    except XnorkitError:
        raise ValueError(f"name {str(value)[:40]!r} is not a name") from None
