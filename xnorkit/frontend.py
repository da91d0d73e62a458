"""QONNX (as Brevitas exports it) to the integer IR.

The importer walks the ONNX graph in order and tracks, for every dynamic tensor, how its real value
relates to an IR integer tensor:
  - a quantized activation: real = scale * (q - zero_point), q of an IntType (or bipolar);
  - an accumulator: real = bn(k[c] * acc[c] + c[c]) per channel, with an optional batch-norm.
A sign (BipolarQuant) after an accumulator becomes an integer Threshold; the graph output becomes a
Dequantize. Anything else is refused with one line naming the node, its op and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from xnorkit import numerics
from xnorkit.errors import XnorkitError
from xnorkit.ir import BIPOLAR, Dequantize, Graph, IntType, MatMul, Quantize, Threshold, verify


@dataclass
class _Quantized:
    tensor: str
    scale: Fraction
    zero_point: int
    dtype: IntType


@dataclass
class _Accumulator:
    name: str
    input: _Quantized
    weights: np.ndarray  # int8 -1/+1, (out, in); rows may still be negated
    k: list[Fraction]
    c: list[Fraction]
    bn: list[numerics.BatchNorm] | None = None
    source: str = ""


@dataclass
class _ConstQuant:
    values: np.ndarray  # integers (-1/+1 for bipolar)
    scale: np.ndarray


@dataclass
class _Importer:
    model: onnx.ModelProto
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    qconsts: dict[str, _ConstQuant] = field(default_factory=dict)
    state: dict[str, _Quantized | _Accumulator] = field(default_factory=dict)
    nodes: list = field(default_factory=list)
    types: dict[str, IntType] = field(default_factory=dict)

    def fail(self, node: onnx.NodeProto, reason: str) -> XnorkitError:
        return XnorkitError(f"node '{node.name}' (op {node.op_type}): {reason}")

    def const(self, node: onnx.NodeProto, name: str) -> np.ndarray:
        if name not in self.consts:
            raise self.fail(node, f"input '{name}' must be a constant initializer")
        return self.consts[name]

    def scalar(self, node: onnx.NodeProto, name: str) -> float:
        v = self.const(node, name)
        if v.size != 1:
            raise self.fail(node, f"'{name}' must be a scalar (per-channel is not supported here yet)")
        return float(v.reshape(-1)[0])

    def dynamic(self, node: onnx.NodeProto, name: str):
        if name not in self.state:
            raise self.fail(node, f"input '{name}' is neither a quantized tensor nor an accumulator the IR "
                                  f"tracks (a float op between quantized layers?)")
        return self.state[name]

    # ---- ops -------------------------------------------------------------------------------------------

    def on_bipolar_quant(self, node: onnx.NodeProto) -> None:
        scale = self.const(node, node.input[1]).astype(np.float64)
        if (scale <= 0).any():
            raise self.fail(node, "scale must be positive")
        if node.input[0] in self.consts:
            w = self.consts[node.input[0]]
            self.qconsts[node.output[0]] = _ConstQuant(np.where(w >= 0, 1, -1).astype(np.int8), scale)
            return
        acc = self.dynamic(node, node.input[0])
        if not isinstance(acc, _Accumulator):
            raise self.fail(node, "sign of a quantized activation (no layer between) is not supported")
        if scale.size != 1:
            raise self.fail(node, "activation scale must be per-tensor")
        out = self.finish_matmul(acc, with_sign=True)
        threshold = self.emit_threshold(node, acc, out)
        self.state[node.output[0]] = _Quantized(threshold, Fraction(float(scale.reshape(-1)[0])), 0, BIPOLAR)

    def on_quant(self, node: onnx.NodeProto) -> None:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        rounding = attrs.get("rounding_mode", b"ROUND")
        rounding = rounding.decode() if isinstance(rounding, bytes) else rounding
        if rounding != "ROUND":
            raise self.fail(node, f"rounding_mode {rounding} is not supported (ROUND only)")
        if attrs.get("narrow", 0):
            raise self.fail(node, "narrow-range quantizers are not supported yet")
        if node.input[0] in self.consts:
            raise self.fail(node, "integer (k-bit) weights are not supported yet; use binary weights")
        if node.input[0] != self.model.graph.input[0].name:
            raise self.fail(node, "k-bit activations are only supported on the network input so far")
        scale = self.scalar(node, node.input[1])
        zero_point = self.scalar(node, node.input[2])
        bits = self.scalar(node, node.input[3])
        if scale <= 0 or zero_point != int(zero_point) or bits != int(bits) or not 2 <= bits <= 16:
            raise self.fail(node, f"needs scale > 0, an integer zero point and 2..16 bits (got {scale}, "
                                  f"{zero_point}, {bits})")
        dtype = IntType(int(bits), signed=bool(attrs.get("signed", 1)))
        out = node.output[0]
        self.nodes.append(Quantize(node.name, node.input[0], out, float(np.float32(scale)), int(zero_point), dtype))
        self.types[out] = dtype
        self.state[out] = _Quantized(out, Fraction(float(np.float32(scale))), int(zero_point), dtype)

    def on_matmul(self, node: onnx.NodeProto) -> None:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        x = self.dynamic(node, node.input[0])
        if not isinstance(x, _Quantized):
            raise self.fail(node, "input must be a quantized activation (a float or unquantized tensor "
                                  "reaches a layer)")
        if node.input[1] not in self.qconsts:
            raise self.fail(node, "weights must come from a BipolarQuant of a constant (binary weights)")
        wq = self.qconsts[node.input[1]]
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
        out_features = w.shape[0]
        s_w = np.broadcast_to(s_w.reshape(-1, 1) if s_w.size > 1 else s_w.reshape(1, 1), (out_features, 1))
        k, c = [], []
        for row, sw in zip(w, s_w[:, 0], strict=True):
            kc = numerics.accumulator_affine(x.dtype, row, x.scale, x.zero_point, Fraction(float(sw)))
            k.append(kc[0])
            c.append(kc[1])
        acc = _Accumulator(node.name, x, w.astype(np.int8).copy(), k, c, source=node.output[0])
        self.state[node.output[0]] = acc
        if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
            self.add_bias(node, acc, self.const(node, node.input[2]), attrs.get("beta", 1.0))

    def add_bias(self, node: onnx.NodeProto, acc: _Accumulator, bias: np.ndarray, factor: float = 1.0) -> None:
        if acc.bn is not None:
            raise self.fail(node, "an addition after batch-norm is not supported")
        b = np.broadcast_to(bias.reshape(-1), (len(acc.c),))
        acc.c = [ci + Fraction(float(factor)) * Fraction(float(bi)) for ci, bi in zip(acc.c, b, strict=True)]

    def on_add(self, node: onnx.NodeProto) -> None:
        acc = self.dynamic(node, node.input[0])
        if not isinstance(acc, _Accumulator):
            raise self.fail(node, "Add is only supported as a bias on a layer's accumulator")
        self.add_bias(node, acc, self.const(node, node.input[1]))
        self.state[node.output[0]] = acc

    def on_batchnorm(self, node: onnx.NodeProto) -> None:
        acc = self.dynamic(node, node.input[0])
        if not isinstance(acc, _Accumulator) or acc.bn is not None:
            raise self.fail(node, "batch-norm must directly follow a layer (Gemm/MatMul)")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        eps = float(attrs.get("epsilon", 1e-5))
        gamma, beta, mean, var = (self.const(node, n).reshape(-1) for n in node.input[1:5])
        acc.bn = [numerics.BatchNorm.from_floats(g, b, m, v, eps) for g, b, m, v in zip(gamma, beta, mean, var,
                                                                                        strict=True)]
        self.state[node.output[0]] = acc

    # ---- emitting IR -----------------------------------------------------------------------------------

    def finish_matmul(self, acc: _Accumulator, with_sign: bool) -> str:
        """Emit the MatMul. Before a sign, negate rows whose pre-activation falls as acc rises."""
        bns = acc.bn or [numerics.IDENTITY_BN] * len(acc.k)
        if with_sign:
            for ch, bn in enumerate(bns):
                if numerics.needs_negation(acc.k[ch], bn):
                    acc.weights[ch] = -acc.weights[ch]
                    acc.k[ch], acc.c[ch] = numerics.negated_affine(acc.k[ch], acc.c[ch])
        acc_dtype = numerics.accumulator_type(acc.weights, acc.input.dtype)
        self.nodes.append(MatMul(acc.name, acc.input.tensor, acc.source, acc.weights, acc.input.dtype, acc_dtype))
        self.types[acc.source] = acc_dtype
        return acc.source

    def emit_threshold(self, node: onnx.NodeProto, acc: _Accumulator, acc_tensor: str) -> str:
        bns = acc.bn or [numerics.IDENTITY_BN] * len(acc.k)
        thresholds = np.empty(len(acc.k), dtype=np.int64)
        for ch, (row, bn) in enumerate(zip(acc.weights, bns, strict=True)):
            lo, hi = numerics.accumulator_range(row, acc.input.dtype)
            thresholds[ch] = numerics.sign_threshold(acc.k[ch], acc.c[ch], bn, lo, hi)
        out = node.output[0]
        self.nodes.append(Threshold(node.name, acc_tensor, out, thresholds))
        self.types[out] = BIPOLAR
        return out

    def emit_output(self, graph_output: str) -> tuple[str, str]:
        acc = self.state.get(graph_output)
        if not isinstance(acc, _Accumulator):
            raise XnorkitError(f"graph output '{graph_output}' must be a layer's accumulator (optionally "
                               f"batch-normed); a network ending in an activation is not supported yet")
        tensor = self.finish_matmul(acc, with_sign=False)
        bns = acc.bn or [numerics.IDENTITY_BN] * len(acc.k)
        affine = [numerics.output_affine(k, c, bn) for k, c, bn in zip(acc.k, acc.c, bns, strict=True)]
        scale = np.array([a[0] for a in affine], dtype=np.float64)
        offset = np.array([a[1] for a in affine], dtype=np.float64)
        self.nodes.append(Dequantize(f"{acc.name}_dequantize", tensor, graph_output, scale, offset))
        return tensor, graph_output

    def run(self) -> Graph:
        g = self.model.graph
        if len(g.input) != 1 or len(g.output) != 1:
            raise XnorkitError(f"the model has {len(g.input)} inputs and {len(g.output)} outputs; "
                               f"one of each is supported so far")
        self.consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        handlers = {
            "BipolarQuant": self.on_bipolar_quant, "Quant": self.on_quant, "IntQuant": self.on_quant,
            "Gemm": self.on_matmul, "MatMul": self.on_matmul, "Add": self.on_add,
            "BatchNormalization": self.on_batchnorm,
        }
        for node in g.node:
            if node.op_type == "Identity":
                self.state[node.output[0]] = self.dynamic(node, node.input[0])
                continue
            handler = handlers.get(node.op_type)
            if handler is None:
                raise self.fail(node, f"op {node.op_type} is not supported by the xnorkit IR (supported: "
                                      f"{', '.join(sorted(handlers))}, Identity)")
            handler(node)
        int_out, float_out = self.emit_output(g.output[0].name)
        dims = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
        graph = Graph(g.input[0].name, tuple(dims[1:]), tuple(self.nodes), int_out, float_out, dict(self.types))
        verify(graph)
        return graph


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """Read an ONNX file and normalize it with qonnx's cleanup (shapes, names, constant folding)."""
    path = Path(path)
    if not path.is_file():
        raise XnorkitError(f"model file {path} does not exist")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # onnx raises DecodeError, ValueError, ... for non-ONNX bytes
        raise XnorkitError(f"{path} is not an ONNX model ({type(e).__name__}); export one with "
                           f"`xnorkit train` or brevitas.export.export_qonnx") from None
    if not model.graph.node:
        raise XnorkitError(f"{path} is not an ONNX model with a graph (no nodes); export one with `xnorkit train`")
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    try:
        return cleanup_model(ModelWrapper(model)).model
    except Exception as e:
        raise XnorkitError(f"{path}: qonnx could not clean up the graph ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''})") from None


def import_qonnx(path: str | Path) -> Graph:
    return _Importer(load_onnx(path)).run()
