"""QONNX (as Brevitas exports it) to the integer IR.

The importer walks the ONNX graph in order and tracks, for every dynamic tensor, how its real value
relates to an IR integer tensor:
  - a quantized activation: real = scale * (q - zero_point), q of an IntType (or bipolar);
  - an accumulator of a layer (Gemm/MatMul/Conv): real = relu?(bn(k[c] * acc + c[c])) per channel,
    with an optional batch-norm and ReLU, not yet emitted.
  - the float network input after float ops (the prologue: Mul/Div/Add/Sub by constants, Reshape,
    Flatten, Transpose), until its quantizer.
A quantizer after an accumulator becomes an integer Threshold (one level for a sign, 2^k - 1 for k
bits); the quantizer of the float input becomes the Quantize node, which keeps the prologue's
arithmetic ops (in the input's layout) and is followed by the prologue's layout ops as IR Reshape and
Transpose (a per-tensor quantizer commutes with them). The graph output becomes a Dequantize, with any
per-channel affine after the last layer (the epilogue) folded in and a final Softmax kept in float.
IR tensor names are the ONNX names, except that an integer tensor never takes a graph output's name
(its Dequantize writes that). Anything else is refused with one line naming the node, its op and the
reason.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.external_data_helper import load_external_data_for_model

from xnorkit import numerics
from xnorkit.errors import XnorkitError
from xnorkit.ir import (
    BIPOLAR,
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
    verify,
)


@dataclass
class _Quantized:
    tensor: str
    scale: Fraction
    zero_point: int
    dtype: IntType


@dataclass
class _Accumulator:
    """An integer tensor whose real value is relu?(bn(k[c] * acc + c[c])): the pending output of a layer
    (Gemm/MatMul/Conv, emitted when its activation is known), or an integer tensor already in the IR
    (`tensor`, e.g. a residual sum or a quantized activation being requantized) with its exact `range`."""

    node: onnx.NodeProto
    input: _Quantized | None
    weights: np.ndarray | None  # integers, (out, ...); rows may still be negated
    w_dtype: IntType | None
    k: list[Fraction]
    c: list[Fraction]
    conv: dict | None = None  # stride, pads, groups for a Conv
    bn: list[numerics.BatchNorm] | None = None
    relu: bool = False
    tensor: str | None = None
    range: tuple[int, int] | None = None
    finished: bool = False
    post: list[tuple[float, float]] | None = None  # per channel (m, a): m * real + a after batch-norm/ReLU
    softmax: str = ""


@dataclass
class _Float:
    """The float network input after the prologue so far: `steps` with `constants` in the input's layout,
    then `layout`, ONNX Reshape/Transpose ops as (node, kind, argument, shape before), in order."""

    steps: list[str] = field(default_factory=list)
    constants: list[np.ndarray] = field(default_factory=list)
    layout: list[tuple[onnx.NodeProto, str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    def then(self, step: str | None = None, constant: np.ndarray | None = None, layout=None) -> _Float:
        return _Float(self.steps + ([step] if step else []), self.constants + ([constant] if step else []),
                      self.layout + ([layout] if layout else []))


@dataclass
class _ConstQuant:
    values: np.ndarray  # integers (-1/+1 for bipolar)
    scale: np.ndarray
    dtype: IntType


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


@dataclass
class _Importer:
    model: onnx.ModelProto
    shapes: dict[str, tuple[int, ...]]
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    qconsts: dict[str, _ConstQuant] = field(default_factory=dict)
    state: dict[str, _Quantized | _Accumulator | _Float] = field(default_factory=dict)
    nodes: list = field(default_factory=list)
    types: dict[str, IntType] = field(default_factory=dict)
    ir_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    readers: Counter = field(default_factory=Counter)  # how many nodes read each tensor
    taken: set[str] = field(default_factory=set)  # every ONNX and IR tensor name
    onnx_of: dict[str, str] = field(default_factory=dict)  # IR names that differ from their ONNX tensor's

    def fail(self, node: onnx.NodeProto, reason: str) -> XnorkitError:
        return XnorkitError(f"node '{node.name}' (op {node.op_type}): {reason}")

    def const(self, node: onnx.NodeProto, name: str) -> np.ndarray:
        """A constant input, finite (docs/numerics.md: NaN or Inf in a model is refused)."""
        if name not in self.consts:
            raise self.fail(node, f"input '{name}' must be a constant initializer")
        value = self.consts[name]
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            bad = int((~np.isfinite(value)).sum())
            raise self.fail(node, f"constant '{name}' holds {bad} NaN or infinite value(s) of {value.size}; "
                                  f"re-export a model with finite weights and parameters")
        return value

    def scalar(self, node: onnx.NodeProto, name: str) -> float:
        v = self.const(node, name)
        if v.size != 1:
            raise self.fail(node, f"'{name}' must be a scalar (per-tensor)")
        return float(v.reshape(-1)[0])

    def dynamic(self, node: onnx.NodeProto, name: str):
        if name not in self.state:
            raise self.fail(node, f"input '{name}' is neither a quantized tensor nor a layer's accumulator (a "
                                  f"float op between quantized layers?)")
        value = self.state[name]
        # the ops after a layer (batch-norm, ReLU, an affine, its quantizer) fold into that one layer: a second
        # reader would see the first one's folding
        if isinstance(value, _Accumulator) and self.readers.get(name, 0) > 1:
            raise self.fail(node, f"'{name}', a layer's output before its activation, is read by "
                                  f"{self.readers[name]} nodes; one activation or output per layer is supported")
        return value

    def quantized(self, node: onnx.NodeProto, name: str) -> _Quantized:
        x = self.dynamic(node, name)
        if isinstance(x, _Float):
            raise self.fail(node, f"input '{name}' is the float network input (after float ops only); quantize it "
                                  f"first (a Quant or BipolarQuant, or `xnorkit compile --input-quant`)")
        if not isinstance(x, _Quantized):
            raise self.fail(node, f"input '{name}' must be a quantized activation, but it is the unquantized "
                                  f"output of layer '{x.node.name}' (add an activation quantizer)")
        return x

    def ir_name(self, onnx_name: str) -> str:
        """The IR name of the integer tensor computing ONNX tensor `onnx_name`: the same, unless that is a
        graph output (the Dequantize after it writes that name)."""
        if onnx_name not in self.graph_outputs:
            return onnx_name
        name = self.fresh(f"{onnx_name}_int")
        self.onnx_of[name] = onnx_name
        return name

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name

    @property
    def graph_outputs(self) -> set[str]:
        return {o.name for o in self.model.graph.output}

    def emit(self, ir_node, dtype: IntType, shape: tuple[int, ...] | None = None) -> None:
        """Append an IR node; its output's shape is `shape` (without the batch axis), else the ONNX tensor's
        of the same name."""
        self.nodes.append(ir_node)
        self.taken.add(ir_node.output)
        self.types[ir_node.output] = dtype
        onnx_name = self.onnx_of.get(ir_node.output, ir_node.output)
        self.ir_shapes[ir_node.output] = tuple(shape) if shape is not None else self.shapes[onnx_name][1:]

    # ---- quantizers -----------------------------------------------------------------------------------

    def on_bipolar_quant(self, node: onnx.NodeProto) -> None:
        scale = self.const(node, node.input[1]).astype(np.float64)
        if (scale <= 0).any():
            raise self.fail(node, "scale must be positive")
        if node.input[0] in self.consts:
            w = self.const(node, node.input[0])
            self.qconsts[node.output[0]] = _ConstQuant(np.where(w >= 0, 1, -1).astype(np.int8), scale, BIPOLAR)
            return
        if scale.size != 1:
            raise self.fail(node, "activation scale must be per-tensor")
        acc = self.dynamic(node, node.input[0])
        if isinstance(acc, _Float):
            self.emit_input_quantizer(node, acc, float(scale.reshape(-1)[0]), 0, BIPOLAR, False)
            return
        if isinstance(acc, _Quantized):
            acc = self.as_accumulator(node, acc)
        out = self.emit_threshold(node, acc, None, out_scale=float(np.float32(scale.reshape(-1)[0])))
        self.state[node.output[0]] = _Quantized(out, Fraction(float(np.float32(scale.reshape(-1)[0]))), 0, BIPOLAR)

    def on_quant(self, node: onnx.NodeProto) -> None:
        attrs = _attrs(node)
        rounding = attrs.get("rounding_mode", b"ROUND")
        rounding = rounding.decode() if isinstance(rounding, bytes) else rounding
        if rounding != "ROUND":
            raise self.fail(node, f"rounding_mode {rounding} is not supported (ROUND only)")
        signed, narrow = bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0))
        zero_point = self.const(node, node.input[2])
        bits = self.scalar(node, node.input[3])
        if bits != int(bits) or not 1 <= bits <= 16:
            raise self.fail(node, f"bit width {bits} is not an integer in 1..16")
        bits = int(bits)
        if node.input[0] in self.consts:  # weights
            scale = self.const(node, node.input[1]).astype(np.float64)
            if (scale <= 0).any() or (zero_point != 0).any():
                raise self.fail(node, "weight quantizers need positive scales and zero point 0")
            act = numerics.ActQuant.from_attrs(1.0, 0, bits, signed, narrow)
            values = numerics.quantize_values(self.const(node, node.input[0]), scale, 0, act.qmin, act.qmax)
            self.qconsts[node.output[0]] = _ConstQuant(values.astype(np.int8 if bits <= 8 else np.int16), scale,
                                                       IntType(bits, signed))
            return
        scale = self.scalar(node, node.input[1])
        zp = float(zero_point.reshape(-1)[0]) if zero_point.size == 1 else None
        if scale <= 0 or zp is None or zp != int(zp):
            raise self.fail(node, "activation quantizers need a positive per-tensor scale and an integer zero point")
        dtype = IntType(bits, signed=signed)
        out = node.output[0]
        acc = self.dynamic(node, node.input[0])
        if isinstance(acc, _Float):
            self.emit_input_quantizer(node, acc, scale, int(zp), dtype, narrow)
            return
        act = numerics.ActQuant.from_attrs(scale, int(zp), bits, signed, narrow)
        if isinstance(acc, _Quantized):
            if acc.scale == act.scale and acc.zero_point == act.zero_point and not acc.dtype.bipolar \
                    and act.qmin <= acc.dtype.min and acc.dtype.max <= act.qmax:
                self.state[out] = acc  # the same quantizer again (a shared residual quantizer): the identity
                return
            acc = self.as_accumulator(node, acc)
        tensor = self.emit_threshold(node, acc, act, dtype)
        self.state[out] = _Quantized(tensor, act.scale, int(zp), dtype)

    def emit_input_quantizer(self, node: onnx.NodeProto, x: _Float, scale: float, zero_point: int, dtype: IntType,
                             narrow: bool) -> None:
        """The Quantize node (the prologue's arithmetic, then the quantizer) and the prologue's layout ops
        after it, on the integers."""
        graph_in, out = self.model.graph.input[0].name, node.output[0]
        scale = float(np.float32(scale))
        tensor = self.fresh(f"{out}_input") if x.layout else self.ir_name(out)
        self.emit(Quantize(node.name, graph_in, tensor, scale, zero_point, dtype, narrow, tuple(x.steps),
                           tuple(x.constants)), dtype, self.shapes[graph_in][1:])
        for i, (op_node, kind, arg, _) in enumerate(x.layout):
            name = self.ir_name(out) if i == len(x.layout) - 1 else self.fresh(f"{op_node.output[0]}_quantized")
            after = self.shapes[op_node.output[0]][1:]
            layout = (Reshape(op_node.name, tensor, name, after) if kind == "reshape"
                      else Transpose(op_node.name, tensor, name, tuple(p - 1 for p in arg[1:])))
            self.emit(layout, dtype, after)
            tensor = name
        self.state[out] = _Quantized(tensor, Fraction(scale), zero_point, dtype)

    # ---- the prologue: float ops on the network input before its quantizer ----------------------------

    def on_float_step(self, node: onnx.NodeProto, op: str) -> bool:
        """Mul/Div/Add/Sub of the float input by a constant: a prologue step (True), else False."""
        a, b = node.input[0], node.input[1]
        if op in ("mul", "add") and isinstance(self.state.get(b), _Float):
            a, b = b, a
        x = self.state.get(a)
        if not isinstance(x, _Float):
            if isinstance(self.state.get(b), _Float):
                raise self.fail(node, "only 'input op constant' is supported before the input quantizer")
            return False
        if b not in self.consts:
            raise self.fail(node, f"'{b}' must be a constant: the prologue before the input quantizer takes "
                                  f"elementwise ops by constants only")
        c = self.const(node, b).astype(np.float32)
        shape = (1, *self.shapes[a][1:])
        try:
            fits = np.broadcast_shapes(c.shape, shape) == shape
        except ValueError:
            fits = False
        if not fits:
            raise self.fail(node, f"a constant of shape {c.shape} does not broadcast against the input {shape}")
        self.state[node.output[0]] = x.then(op, self.in_input_layout(x, c, shape))
        return True

    @staticmethod
    def in_input_layout(x: _Float, c: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """A constant for the current layout, moved back through the layout ops to the network input's."""
        if c.size == 1 or not x.layout:
            return c.reshape(()) if c.size == 1 else c
        full = np.broadcast_to(c, shape)
        for _, kind, arg, before in reversed(x.layout):
            full = full.transpose(np.argsort(arg)) if kind == "transpose" else full.reshape((1, *before[1:]))
        return np.ascontiguousarray(full, dtype=np.float32)

    def on_float_layout(self, node: onnx.NodeProto, x: _Float) -> None:
        before, after = self.shapes.get(node.input[0]), self.shapes.get(node.output[0])
        if not before or not after or after[0] != before[0]:
            raise self.fail(node, "the reshape must keep the batch axis and have a known shape")
        if node.op_type == "Transpose":
            perm = tuple(int(p) for p in _attrs(node)["perm"])
            if perm[0] != 0:
                raise self.fail(node, "a transpose must keep the batch axis first")
            self.state[node.output[0]] = x.then(layout=(node, "transpose", perm, before))
        else:
            self.state[node.output[0]] = x.then(layout=(node, "reshape", after, before))

    def as_accumulator(self, node: onnx.NodeProto, x: _Quantized) -> _Accumulator:
        """A quantized tensor seen as integers to requantize: real = s * (q - zp), per channel."""
        if x.dtype.bipolar:
            raise self.fail(node, "requantizing a binary activation is not supported")
        channels = self.ir_shapes[x.tensor][0]
        return _Accumulator(node, None, None, None, [x.scale] * channels, [-x.scale * x.zero_point] * channels,
                            tensor=x.tensor, range=(x.dtype.min, x.dtype.max))

    # ---- layers ---------------------------------------------------------------------------------------

    def weights_of(self, node: onnx.NodeProto, name: str) -> _ConstQuant:
        if name not in self.qconsts:
            raise self.fail(node, "weights must be quantized constants (BipolarQuant or Quant of an initializer); "
                                  "float weights are not supported")
        return self.qconsts[name]

    def start_accumulator(self, node: onnx.NodeProto, x: _Quantized, w: np.ndarray, s_w: np.ndarray,
                          w_dtype: IntType, conv: dict | None = None) -> _Accumulator:
        out_ch = w.shape[0]
        s_w = s_w.reshape(-1) if s_w.size > 1 else np.repeat(s_w.reshape(-1), out_ch)
        if len(s_w) != out_ch:
            raise self.fail(node, f"weight scale of {len(s_w)} values for {out_ch} output channels")
        k, c = [], []
        for row, sw in zip(w, s_w, strict=True):
            kc = numerics.accumulator_affine(x.dtype, row, x.scale, x.zero_point, Fraction(float(sw)))
            k.append(kc[0])
            c.append(kc[1])
        self.check_float32_range(node, x, w, k, c)
        acc = _Accumulator(node, x, w.astype(np.int8 if w_dtype.bits <= 8 else np.int16).copy(), w_dtype, k, c, conv)
        self.state[node.output[0]] = acc
        return acc

    def check_float32_range(self, node: onnx.NodeProto, x: _Quantized, w: np.ndarray, k: list, c: list) -> None:
        """The layer's real values (k * acc + c, as a float32 runtime computes them) stay well inside float32:
        beyond 2^100 or below 2^-100 (per unit of acc) runtimes overflow or underflow, and no exact reference
        exists (docs/numerics.md)."""
        x_max = max(abs(x.dtype.min), abs(x.dtype.max))
        rows = np.abs(w.reshape(len(w), -1).astype(np.int64)).sum(axis=1)
        largest = max(abs(kk) * int(r) * x_max + abs(cc) for kk, cc, r in zip(k, c, rows, strict=True))
        smallest = min((abs(kk) for kk in k if kk != 0), default=1)
        if largest > 2 ** 100 or smallest < Fraction(1, 2 ** 100):
            raise self.fail(node, f"input scale x weight scale ({float(smallest):g} .. {float(largest):g} at most) "
                                  f"is outside 2^-100 .. 2^100: float32 runtimes overflow or underflow on it")

    def on_matmul(self, node: onnx.NodeProto) -> None:
        attrs = _attrs(node)
        x = self.quantized(node, node.input[0])
        if len(self.shapes[node.input[0]]) != 2:
            raise self.fail(node, f"input of shape {self.shapes[node.input[0]]} is not (N, features); flatten first")
        wq = self.weights_of(node, node.input[1])
        w, s_w = wq.values, wq.scale
        if node.op_type == "Gemm":
            if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0:
                raise self.fail(node, "transA and alpha != 1 are not supported")
            if not attrs.get("transB", 0):
                w, s_w = w.T, s_w.T
        else:
            w, s_w = w.T, s_w.T
        if w.ndim != 2:
            raise self.fail(node, f"weights of shape {w.shape} are not a matrix")
        acc = self.start_accumulator(node, x, w, s_w, wq.dtype)
        if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
            self.add_bias(node, acc, self.const(node, node.input[2]) * attrs.get("beta", 1.0))

    def on_conv(self, node: onnx.NodeProto) -> None:
        attrs = _attrs(node)
        x = self.quantized(node, node.input[0])
        if len(self.shapes[node.input[0]]) != 4:
            raise self.fail(node, "only 2-D convolutions over (N, C, H, W) are supported")
        wq = self.weights_of(node, node.input[1])
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise self.fail(node, "dilated convolutions are not supported")
        auto_pad = attrs.get("auto_pad", b"NOTSET")
        if (auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad) != "NOTSET":
            raise self.fail(node, "auto_pad is not supported; export explicit pads")
        pads = tuple(int(p) for p in attrs.get("pads", [0, 0, 0, 0]))
        if any(pads) and x.zero_point != 0 and not x.dtype.bipolar:
            raise self.fail(node, "padding an input with a nonzero zero point is not supported")
        conv = {"stride": tuple(int(s) for s in attrs.get("strides", [1, 1])), "pads": pads,
                "groups": int(attrs.get("group", 1))}
        acc = self.start_accumulator(node, x, wq.values, wq.scale, wq.dtype, conv)
        if len(node.input) > 2 and node.input[2]:
            self.add_bias(node, acc, self.const(node, node.input[2]))

    # ---- what may follow a layer ----------------------------------------------------------------------

    def add_bias(self, node: onnx.NodeProto, acc: _Accumulator, bias: np.ndarray) -> None:
        if acc.bn is not None or acc.relu:
            raise self.fail(node, "an addition after batch-norm or ReLU is not supported")
        b = np.broadcast_to(bias.reshape(-1), (len(acc.c),)) if bias.size in (1, len(acc.c)) else None
        if b is None:
            raise self.fail(node, f"a bias of {bias.size} values does not match {len(acc.c)} channels")
        acc.c = [ci + Fraction(float(bi)) for ci, bi in zip(acc.c, b, strict=True)]

    def on_add(self, node: onnx.NodeProto) -> None:
        if self.on_float_step(node, "add"):
            return
        if not any(self.is_constant(name) for name in node.input[:2]):
            self.on_residual_add(node)
            return
        self.on_affine(node, "add")

    def is_constant(self, name: str) -> bool:
        return name in self.consts or name in self.qconsts

    def constant_value(self, name: str) -> np.ndarray:
        """A constant's float value: an initializer, or a quantized one as qonnx computes it (float32 q * scale),
        such as the quantized bias of a QKeras layer."""
        if name in self.consts:
            return self.consts[name]
        q = self.qconsts[name]
        return q.values.astype(np.float32) * q.scale.astype(np.float32)  # bipolar values are -1/+1 already

    def on_affine(self, node: onnx.NodeProto, op: str) -> None:
        """Mul/Div/Add/Sub of a layer's accumulator by a per-channel constant: folded into the layer's
        exact affine before a batch-norm or ReLU; after them, kept in float for the output (the epilogue)."""
        a, b = node.input[0], node.input[1]
        if op in ("mul", "add") and self.is_constant(a):
            a, b = b, a
        acc = self.dynamic(node, a)
        if not isinstance(acc, _Accumulator) or not self.is_constant(b):
            raise self.fail(node, f"{node.op_type} is supported on the float input before its quantizer and by a "
                                  f"constant after a layer (Gemm/MatMul/Conv), not here")
        v = self.constant_value(b).reshape(-1).astype(np.float64)
        if not np.isfinite(v).all():
            raise self.fail(node, f"constant '{b}' holds NaN or infinite values; re-export a model with finite "
                                  f"parameters")
        if v.size not in (1, len(acc.k)):
            raise self.fail(node, f"a constant of {v.size} values does not match the layer's {len(acc.k)} channels")
        v = np.broadcast_to(v, (len(acc.k),))
        if op == "div" and (v == 0).any():
            raise self.fail(node, "division by zero")
        if acc.bn is None and not acc.relu and acc.post is None:
            if op in ("add", "sub"):
                self.add_bias(node, acc, v if op == "add" else -v)
            else:
                f = [Fraction(float(x)) for x in v]
                f = f if op == "mul" else [1 / x for x in f]
                acc.k = [ki * fi for ki, fi in zip(acc.k, f, strict=True)]
                acc.c = [ci * fi for ci, fi in zip(acc.c, f, strict=True)]
        else:
            m, add = {"mul": (v, 0 * v), "div": (1 / v, 0 * v), "add": (1 + 0 * v, v), "sub": (1 + 0 * v, -v)}[op]
            acc.post = (acc.post or []) + [(m, add)]
        self.state[node.output[0]] = acc

    def on_residual_add(self, node: onnx.NodeProto) -> None:
        a, b = (self.quantized(node, name) for name in node.input[:2])
        if a.scale != b.scale:
            raise self.fail(node, f"the branches are quantized with different scales ({float(a.scale):g} and "
                                  f"{float(b.scale):g}); quantize both with one shared quantizer")
        if self.shapes[node.input[0]] != self.shapes[node.input[1]]:
            raise self.fail(node, "broadcasting additions are not supported")
        lo, hi = a.dtype.min + b.dtype.min, a.dtype.max + b.dtype.max
        dtype = numerics.signed_type_for(lo, hi + 1)
        out = self.ir_name(node.output[0])
        self.emit(Add(node.name, (a.tensor, b.tensor), out, (a.dtype, b.dtype)), dtype)
        channels = self.shapes[node.output[0]][1]
        zero_point = numerics.summed_zero_point([(a.zero_point, a.dtype), (b.zero_point, b.dtype)])
        self.state[node.output[0]] = _Accumulator(node, None, None, None, [a.scale] * channels,
                                                  [-a.scale * zero_point] * channels, tensor=out, range=(lo, hi))

    def on_concat(self, node: onnx.NodeProto) -> None:
        parts = [self.quantized(node, name) for name in node.input]
        rank = len(self.shapes[node.output[0]])
        if _attrs(node).get("axis", 1) not in (1, 1 - rank):
            raise self.fail(node, "only concatenation along the channel axis is supported")
        first = parts[0]
        if any((p.scale, p.zero_point, p.dtype) != (first.scale, first.zero_point, first.dtype) for p in parts):
            raise self.fail(node, "the inputs are quantized differently; quantize them with one shared quantizer")
        out = self.ir_name(node.output[0])
        self.emit(Concat(node.name, tuple(p.tensor for p in parts), out), first.dtype)
        self.state[node.output[0]] = _Quantized(out, first.scale, first.zero_point, first.dtype)

    def on_arithmetic(self, node: onnx.NodeProto) -> None:
        op = node.op_type.lower()
        if not self.on_float_step(node, op):
            self.on_affine(node, op)

    def on_softmax(self, node: onnx.NodeProto) -> None:
        """A Softmax/LogSoftmax at the end, over the classes: applied in float after the Dequantize."""
        acc = self.dynamic(node, node.input[0])
        rank = len(self.shapes[node.input[0]])
        axis = int(_attrs(node).get("axis", -1 if self.opset >= 13 else 1))
        if not isinstance(acc, _Accumulator) or acc.relu or acc.softmax or rank != 2 or axis % rank != 1:
            raise self.fail(node, "a softmax is supported only at the end, over the classes of a layer's (N, "
                                  "classes) output")
        acc.softmax = "log_softmax" if node.op_type == "LogSoftmax" else "softmax"
        self.state[node.output[0]] = acc

    def on_batchnorm(self, node: onnx.NodeProto) -> None:
        acc = self.dynamic(node, node.input[0])
        if not isinstance(acc, _Accumulator) or acc.bn is not None or acc.relu:
            raise self.fail(node, "batch-norm must directly follow a layer (Gemm/MatMul/Conv)")
        eps = float(_attrs(node).get("epsilon", 1e-5))
        gamma, beta, mean, var = (self.const(node, n).reshape(-1) for n in node.input[1:5])
        var_eps = var.astype(np.float32) + np.float32(eps)  # as ONNX and PyTorch compute it
        if not (var_eps > 0).all():
            k = int(np.argmin(var_eps > 0))
            raise self.fail(node, f"variance + epsilon must be positive (channel {k}: {float(var[k]):g} + {eps:g}); "
                                  f"a variance this small is a broken export or checkpoint")
        # runtimes fold batch-norm into x * s + b in float32; where s or b nears float32's range they overflow
        # and no exact reference exists (docs/numerics.md)
        s64 = gamma.astype(np.float64) / np.sqrt(var_eps.astype(np.float64))
        b64 = beta.astype(np.float64) - mean.astype(np.float64) * s64
        if max(np.abs(s64).max(), np.abs(b64).max()) > 2.0 ** 100:
            raise self.fail(node, "its folded scale gamma / sqrt(var + eps) or offset exceeds 2^100: float32 "
                                  "runtimes overflow on it; re-export a model with trained batch-norm statistics")
        acc.bn = [numerics.BatchNorm.from_floats(g, b, m, v, eps)
                  for g, b, m, v in zip(gamma, beta, mean, var, strict=True)]
        self.state[node.output[0]] = acc

    def on_relu(self, node: onnx.NodeProto) -> None:
        acc = self.dynamic(node, node.input[0])
        if isinstance(acc, _Quantized):
            if not acc.dtype.bipolar and acc.dtype.min >= acc.zero_point:
                self.state[node.output[0]] = acc  # no negative values: the identity
                return
            acc = self.as_accumulator(node, acc)  # requantized by the quantizer that must follow
        acc.relu = True
        self.state[node.output[0]] = acc

    # ---- layout and pooling on quantized tensors -------------------------------------------------------

    def on_maxpool(self, node: onnx.NodeProto) -> None:
        attrs = _attrs(node)
        x = self.quantized(node, node.input[0])
        if attrs.get("ceil_mode", 0) or any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise self.fail(node, "ceil_mode and dilations are not supported")
        kernel = tuple(int(k) for k in attrs["kernel_shape"])
        out = self.ir_name(node.output[0])
        self.emit(MaxPool(node.name, x.tensor, out, kernel, tuple(int(s) for s in attrs.get("strides", kernel)),
                          tuple(int(p) for p in attrs.get("pads", [0, 0, 0, 0]))), x.dtype)
        self.state[node.output[0]] = _Quantized(out, x.scale, x.zero_point, x.dtype)

    def on_average_pool(self, node: onnx.NodeProto) -> None:
        """Average = window sum x (1 / area): the sum is an exact integer tensor of scale s / area."""
        x = self.quantized(node, node.input[0])
        attrs = _attrs(node)
        if node.op_type == "ReduceMean":  # AdaptiveAvgPool2d(1) exports as a mean over the spatial axes
            axes = attrs.get("axes")
            if axes is None and len(node.input) > 1:
                axes = self.const(node, node.input[1]).tolist()
            rank = len(self.shapes[node.input[0]])
            if sorted(a % rank for a in (axes or [])) != [2, 3] or not attrs.get("keepdims", 1):
                raise self.fail(node, "only a mean over H and W keeping the dimensions (global average) is supported")
        if node.op_type in ("GlobalAveragePool", "ReduceMean"):
            kernel = tuple(self.shapes[node.input[0]][2:])
            stride = kernel
        else:
            if any(attrs.get("pads", [0, 0, 0, 0])) or attrs.get("ceil_mode", 0):
                raise self.fail(node, "average pooling with padding or ceil_mode is not exact here; remove them")
            kernel = tuple(int(k) for k in attrs["kernel_shape"])
            stride = tuple(int(s) for s in attrs.get("strides", kernel))
        area = kernel[0] * kernel[1]
        lo, hi = area * x.dtype.min, area * x.dtype.max
        dtype = numerics.signed_type_for(lo, hi)
        out = self.ir_name(node.output[0])
        self.emit(SumPool(node.name, x.tensor, out, kernel, stride, x.dtype), dtype)
        zero_point = numerics.summed_zero_point([(x.zero_point, x.dtype)] * area)
        self.state[node.output[0]] = _Quantized(out, x.scale / area, zero_point, dtype)

    def on_trunc(self, node: onnx.NodeProto) -> None:
        """qonnx Trunc: the integers divided by a power of two T, clamped to the output bits and rounded
        (ROUND: half to even, FLOOR). T <= 1 with room to spare changes no real value: the identity."""
        x = self.quantized(node, node.input[0])
        attrs = _attrs(node)
        mode = attrs.get("rounding_mode", b"FLOOR")
        mode = (mode.decode() if isinstance(mode, bytes) else mode).upper()
        scale, zero_point, in_bits = (self.scalar(node, n) for n in node.input[1:4])
        if len(node.input) == 6:  # Trunc v2: an output scale
            out_scale, out_bits = self.scalar(node, node.input[4]), self.scalar(node, node.input[5])
            power = int(np.round(np.log2(out_scale / scale)))
        else:
            out_bits = self.scalar(node, node.input[4])
            power = int(in_bits - out_bits)
        if zero_point != 0 or x.zero_point != 0 or abs(scale - float(x.scale)) > 1e-6 * float(x.scale):
            raise self.fail(node, "only a zero-point-free truncation of the tensor's own scale is supported")
        if mode not in ("ROUND", "FLOOR"):
            raise self.fail(node, f"rounding_mode {mode} is not supported (ROUND, FLOOR)")
        trunc = Fraction(2) ** power
        act = numerics.ActQuant.from_attrs(1.0, 0, int(out_bits), bool(attrs.get("signed", 1)),
                                           bool(attrs.get("narrow", 0)))
        act = numerics.ActQuant(x.scale * trunc, 0, act.qmin, act.qmax)
        if power <= 0 and act.qmin * trunc <= x.dtype.min and x.dtype.max <= act.qmax * trunc:
            self.state[node.output[0]] = x  # an exact rescaling: no real value changes
            return
        acc = self.as_accumulator(node, x)
        lo, hi = acc.range
        if mode == "ROUND":
            rows = numerics.quant_thresholds(x.scale, Fraction(0), numerics.IDENTITY_BN, act, lo, hi)
        else:
            rows = [numerics.level_threshold(x.scale, Fraction(0), numerics.IDENTITY_BN, act.scale * t, True, lo, hi)
                    for t in range(act.qmin + 1, act.qmax + 1)]
        channels = self.ir_shapes[x.tensor][0]
        dtype = IntType(int(out_bits), signed=act.qmin < 0)
        out = self.ir_name(node.output[0])
        self.emit(Threshold(node.name, x.tensor, out, np.array([rows] * channels, dtype=np.int64), act.qmin, dtype,
                            float(act.scale), 0), dtype)
        self.state[node.output[0]] = _Quantized(out, act.scale, 0, dtype)

    def on_transpose(self, node: onnx.NodeProto) -> None:
        if isinstance(self.state.get(node.input[0]), _Float):
            self.on_float_layout(node, self.state[node.input[0]])
            return
        x = self.quantized(node, node.input[0])
        perm = [int(p) for p in _attrs(node)["perm"]]
        if perm[0] != 0:
            raise self.fail(node, "a transpose must keep the batch axis first")
        out = self.ir_name(node.output[0])
        self.emit(Transpose(node.name, x.tensor, out, tuple(p - 1 for p in perm[1:])), x.dtype)
        self.state[node.output[0]] = _Quantized(out, x.scale, x.zero_point, x.dtype)

    def on_reshape(self, node: onnx.NodeProto) -> None:
        if isinstance(self.state.get(node.input[0]), _Float):
            self.on_float_layout(node, self.state[node.input[0]])
            return
        x = self.quantized(node, node.input[0])
        out = self.ir_name(node.output[0])
        shape = self.shapes.get(node.output[0])
        if not shape or shape[0] != self.shapes[node.input[0]][0]:
            raise self.fail(node, "the reshape must keep the batch axis and have a known shape")
        self.emit(Reshape(node.name, x.tensor, out, tuple(shape[1:])), x.dtype)
        self.state[node.output[0]] = _Quantized(out, x.scale, x.zero_point, x.dtype)

    # ---- emitting IR -----------------------------------------------------------------------------------

    def finish_layer(self, acc: _Accumulator, fold_slope: bool) -> str:
        """Emit the MatMul/Conv. Before an activation, negate rows whose pre-activation falls as acc rises."""
        if acc.finished:
            raise self.fail(acc.node, "its output feeds two activations or outputs; that is not supported")
        acc.finished = True
        bns = acc.bn or [numerics.IDENTITY_BN] * len(acc.k)
        if acc.weights is None:  # already an IR tensor: nothing to emit, and no weights to negate
            if fold_slope and any(numerics.needs_negation(k, bn) for k, bn in zip(acc.k, bns, strict=True)):
                raise self.fail(acc.node, "a negative batch-norm scale after this node cannot be folded")
            return acc.tensor
        if fold_slope:
            for ch, bn in enumerate(bns):
                if numerics.needs_negation(acc.k[ch], bn):
                    acc.weights[ch] = -acc.weights[ch]
                    acc.k[ch], acc.c[ch] = numerics.negated_affine(acc.k[ch], acc.c[ch])
        acc_dtype = numerics.accumulator_type(acc.weights, acc.input.dtype)
        name, out = acc.node.name, self.ir_name(acc.node.output[0])
        if acc.conv is None:
            layer = MatMul(name, acc.input.tensor, out, acc.weights, acc.input.dtype, acc.w_dtype, acc_dtype)
        else:
            layer = Conv(name, acc.input.tensor, out, acc.weights, acc.input.dtype, acc.w_dtype, acc_dtype,
                         acc.conv["stride"], acc.conv["pads"], acc.conv["groups"])
        self.emit(layer, acc_dtype)
        return out

    def emit_threshold(self, node: onnx.NodeProto, acc: _Accumulator, act: numerics.ActQuant | None,
                       dtype: IntType = BIPOLAR, out_scale: float = 1.0) -> str:
        if acc.post or acc.softmax:
            raise self.fail(node, f"its input went through float ops after '{acc.node.name}''s batch-norm or ReLU "
                                  f"(or a softmax); only a layer's output may end in them")
        acc_tensor = self.finish_layer(acc, fold_slope=True)
        bns = acc.bn or [numerics.IDENTITY_BN] * len(acc.k)
        rows = []
        for ch, bn in enumerate(bns):
            lo, hi = acc.range if acc.weights is None else numerics.accumulator_range(acc.weights[ch],
                                                                                      acc.input.dtype)
            if act is None:
                rows.append([numerics.level_threshold(acc.k[ch], acc.c[ch], bn, Fraction(0), True, lo, hi, acc.relu)])
            else:
                rows.append(numerics.quant_thresholds(acc.k[ch], acc.c[ch], bn, act, lo, hi, acc.relu))
        out = self.ir_name(node.output[0])
        base = 0 if act is None else act.qmin
        scale, zero_point = (out_scale, 0) if act is None else (float(act.scale), act.zero_point)
        self.emit(Threshold(node.name, acc_tensor, out, np.array(rows, dtype=np.int64), base, dtype, scale,
                            zero_point), dtype)
        return out

    def emit_output(self, graph_output: str) -> tuple[str, str]:
        """The Dequantize writing a graph output: of a layer's accumulator (its affine, batch-norm and any
        epilogue folded into scale and offset), or of a quantized activation (a final sign or k-bit quantizer)."""
        x = self.state.get(graph_output)
        if isinstance(x, _Quantized):
            channels = self.ir_shapes[x.tensor][0]
            s = float(x.scale)
            scale, offset = (2 * s, -s) if x.dtype.bipolar else (s, -s * x.zero_point)
            node = Dequantize(f"{x.tensor}_dequantize", x.tensor, graph_output, np.full(channels, scale),
                              np.full(channels, offset))
            return self.append_output(node)
        if not isinstance(x, _Accumulator) or (x.relu and not x.post):
            raise XnorkitError(f"graph output '{graph_output}' must be a layer's output (optionally batch-normed "
                               f"and scaled) or a quantized activation; a network ending in a float activation "
                               f"(ReLU, ...) is not supported: quantize it, or end in the layer")
        if x.relu:
            raise self.fail(x.node, "float ops after a ReLU at the end are not supported; end in the layer")
        tensor = self.finish_layer(x, fold_slope=False)
        bns = x.bn or [numerics.IDENTITY_BN] * len(x.k)
        affine = [numerics.output_affine(k, c, bn) for k, c, bn in zip(x.k, x.c, bns, strict=True)]
        scale = np.array([a[0] for a in affine], dtype=np.float64)
        offset = np.array([a[1] for a in affine], dtype=np.float64)
        for m, a in x.post or []:  # the epilogue: real -> m * real + a, in order
            scale, offset = m * scale, m * offset + a
        return self.append_output(Dequantize(f"{x.node.name}_dequantize", tensor, graph_output, scale, offset,
                                             softmax=x.softmax))

    def append_output(self, node: Dequantize) -> tuple[str, str]:
        self.nodes.append(node)
        self.ir_shapes[node.output] = self.ir_shapes[node.input]
        return node.input, node.output

    @property
    def opset(self) -> int:
        return next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), 13)

    def run(self) -> Graph:
        g = self.model.graph
        if len(g.input) != 1:
            raise XnorkitError(f"the model has {len(g.input)} inputs; one is supported")
        self.consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        self.taken = {g.input[0].name, *self.consts, *(t for n in g.node for t in n.output)}
        self.state[g.input[0].name] = _Float()
        self.readers = Counter(t for n in g.node for t in n.input if t)
        handlers = {
            "BipolarQuant": self.on_bipolar_quant, "Quant": self.on_quant, "IntQuant": self.on_quant,
            "Gemm": self.on_matmul, "MatMul": self.on_matmul, "Conv": self.on_conv, "Add": self.on_add,
            "Mul": self.on_arithmetic, "Div": self.on_arithmetic, "Sub": self.on_arithmetic,
            "Softmax": self.on_softmax, "LogSoftmax": self.on_softmax, "BatchNormalization": self.on_batchnorm,
            "Relu": self.on_relu,
            "MaxPool": self.on_maxpool, "Reshape": self.on_reshape, "Flatten": self.on_reshape,
            "Concat": self.on_concat, "AveragePool": self.on_average_pool, "GlobalAveragePool": self.on_average_pool,
            "ReduceMean": self.on_average_pool, "Trunc": self.on_trunc, "Transpose": self.on_transpose,
        }
        for node in g.node:
            if node.op_type == "Identity":
                self.state[node.output[0]] = self.dynamic(node, node.input[0])
                continue
            handler = handlers.get(node.op_type)
            if handler is None:
                raise self.fail(node, f"op {node.op_type} is not supported by the xnorkit IR (supported: "
                                      f"{', '.join(sorted(handlers))}, Identity)")
            bad = [a.name for a in node.attribute if a.type == onnx.AttributeProto.FLOAT and not np.isfinite(a.f)]
            if bad:
                raise self.fail(node, f"attribute '{bad[0]}' is NaN or infinite; re-export the model")
            handler(node)
        ends = [self.emit_output(o.name) for o in g.output]
        graph = Graph(g.input[0].name, tuple(self.shapes[g.input[0].name][1:]), tuple(self.nodes),
                      tuple(e[0] for e in ends), tuple(e[1] for e in ends), dict(self.types), dict(self.ir_shapes))
        verify(graph)
        return graph


def read_onnx(path: str | Path) -> onnx.ModelProto:
    """An ONNX file (with its external data files, if any) as one model, or one line saying why not."""
    path = Path(path)
    if not path.is_file():
        raise XnorkitError(f"model file {path} does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError, ValueError, ... for bytes that are not ONNX
        raise XnorkitError(f"{path} is not an ONNX model ({type(e).__name__}); export one with `xnorkit train` or "
                           "brevitas.export.export_qonnx") from None
    try:  # onnx refuses a data file outside the model's folder, a link, or a missing one
        load_external_data_for_model(model, str(path.parent))
    except Exception as e:
        reason = " ".join(str(e).split())[:300]
        raise XnorkitError(f"{path}: cannot read its external data ({reason}); keep the data files beside the "
                           "model, as onnx.save(..., save_as_external_data=True) writes them") from None
    if not model.graph.node:
        raise XnorkitError(f"{path} is not an ONNX model with a graph (no nodes); export one with `xnorkit train`")
    return model


def load_onnx(path: str | Path):
    """Read an ONNX file and normalize it with qonnx's cleanup (shapes, names, constant folding).
    Returns qonnx's ModelWrapper."""
    model = read_onnx(path)
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    try:
        return cleanup_model(ModelWrapper(model))
    except Exception as e:
        raise XnorkitError(f"{path}: qonnx could not clean up the graph ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''})") from None


def import_qonnx(path: str | Path) -> Graph:
    wrapper = load_onnx(path)
    model = wrapper.model
    names = {t.name for t in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}
    shapes = {}
    for name in names:
        shape = wrapper.get_tensor_shape(name)
        if shape is not None:
            shapes[name] = tuple(int(d) for d in shape)
    return _Importer(model, shapes).run()


# ---- an explicit input quantizer (--input-quant) and what compile says about the prologue and epilogue -----

_FIXED = re.compile(r"(u?)fixed<(\d+),(-?\d+)>")
_INT = re.compile(r"(u?)int(\d+)(?::scale=(.+))?")


def parse_input_quant(spec: str) -> tuple[int, bool, float]:
    """(bits, signed, scale) of an input quantizer spec: `int8`, `uint8` (integers, scale 1), `int8:scale=0.0625`,
    or `fixed<W,I>` / `ufixed<W,I>` (hls4ml's ap_fixed: W bits, I of them integer bits: scale 2^(I - W))."""
    text = spec.replace(" ", "").lower()
    fixed, integer = _FIXED.fullmatch(text), _INT.fullmatch(text)
    try:
        if fixed:
            bits, scale, signed = int(fixed[2]), 2.0 ** (int(fixed[3]) - int(fixed[2])), not fixed[1]
        elif integer:
            bits, signed = int(integer[2]), not integer[1]
            scale = float(integer[3]) if integer[3] else 1.0
        else:
            raise ValueError
    except ValueError:
        bits, scale, signed = 0, 0.0, True
    if not 2 <= bits <= 16 or not np.isfinite(scale) or scale <= 0 or np.float32(scale) == 0:
        raise XnorkitError(f"--input-quant '{spec}': give int<bits> or uint<bits> (2..16 bits), optionally "
                           f":scale=<positive number>, or fixed<W,I> / ufixed<W,I>, e.g. int8, uint8:scale=0.00392, "
                           f"fixed<16,6>")
    return bits, signed, scale


def insert_input_quant(model: onnx.ModelProto, spec: str) -> onnx.ModelProto:
    """The model with a qonnx Quant (ROUND, zero point 0) of the network input before its first use: the
    quantizer a QKeras- or float-input export leaves implicit, made explicit."""
    bits, signed, scale = parse_input_quant(spec)
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    if len(g.input) != 1:
        raise XnorkitError(f"the model has {len(g.input)} inputs; one is supported")
    source = g.input[0].name
    taken = {t for n in g.node for t in (*n.input, *n.output)} | {i.name for i in g.initializer}
    name = next(f"{source}_quantized{k or ''}" for k in range(len(taken) + 1)
                if f"{source}_quantized{k or ''}" not in taken)
    for node in g.node:
        node.input[:] = [name if i == source else i for i in node.input]
    params = {f"{name}_scale": np.float32(scale), f"{name}_zero_point": np.float32(0),
              f"{name}_bits": np.float32(bits)}
    g.initializer.extend(numpy_helper.from_array(np.asarray(v), k) for k, v in params.items())
    quant = onnx.helper.make_node("Quant", [source, *params], [name], name=f"{name}_Quant",
                                  domain="qonnx.custom_op.general", signed=int(signed), narrow=0,
                                  rounding_mode="ROUND")
    g.node.insert(0, quant)
    return model


def describe(graph: Graph) -> list[str]:
    """What compile made of the input and of each output, one line each (`xnorkit compile`, `inspect`)."""
    first = graph.nodes[0]
    symbols = {"mul": "*", "div": "/", "add": "+", "sub": "-"}
    parts = [f"x {symbols[op]} {float(c):g}" if c.size == 1 else f"x {symbols[op]} (per element)"
             for op, c in zip(first.steps, first.constants, strict=True)]
    tensor = first.output
    for node in graph.nodes[1:]:  # the prologue's layout ops, on the integers
        if not isinstance(node, Reshape | Transpose) or node.input != tensor:
            break
        parts.append(f"{type(node).__name__.lower()} to {'x'.join(map(str, graph.shape(node.output)))}")
        tensor = node.output
    narrow = " narrow" if first.narrow else ""
    parts.append("sign -> 1 bit" if first.dtype.bipolar else f"{first.dtype.name()}{narrow}, scale {first.scale:g}")
    lines = ["input: " + ", ".join(parts)]
    for out in graph.outputs:
        node = graph.dequantize_of(out)
        what = ("a quantized activation, dequantized" if isinstance(graph.producer(out), Threshold)
                else "the last layer, dequantized with the float ops after it folded in")
        lines.append(f"output '{node.output}': {what}" + (f"; {node.softmax} kept in float" if node.softmax else ""))
    return lines
