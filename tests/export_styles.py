"""A corpus of the QONNX styles users bring, made here (nothing downloaded): Brevitas networks exported with
`brevitas.export.export_qonnx` directly (weights in an external `.onnx.data` file, as its default exporter
writes them), in the shapes FINN's BNN-PYNQ, finn-examples and plain Brevitas classifiers have.

Each style is a function (seed) -> (module, sample inputs as the PyTorch model takes them)."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from brevitas import nn as qnn
from brevitas.core.bit_width import BitWidthImplType
from brevitas.core.quant import QuantType
from brevitas.core.restrict_val import RestrictValueType
from brevitas.core.scaling import ScalingImplType
from brevitas.core.zero_point import ZeroZeroPoint
from brevitas.inject import ExtendedInjector
from brevitas.inject.enum import FloatToIntImplType
from brevitas.quant import (
    Int8ActPerTensorFloat,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
    Uint8ActPerTensorFloat,
)
from brevitas.quant.solver import ActQuantSolver, WeightQuantSolver
from dependencies import value
from torch import nn


class TensorNorm(nn.Module):
    """BNN-PYNQ's TensorNorm: one learned affine for the whole tensor, with running statistics; it exports as
    Sub, Div (of a constant-folded Pow), Mul, Add."""

    def __init__(self, eps: float = 1e-4):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.rand(1) + 0.5)
        self.bias = nn.Parameter(torch.rand(1))
        self.register_buffer("running_mean", torch.rand(1))
        self.register_buffer("running_var", torch.rand(1) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.running_mean) / (self.running_var + self.eps).pow(0.5) * self.weight + self.bias


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    """Trained-looking batch-norm statistics (random, seeded), so thresholds are not trivial."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=g) + 0.5
            m.bias.data = torch.randn(n, generator=g) * 0.3
            m.running_mean.data = torch.randn(n, generator=g) * 2
            m.running_var.data = torch.rand(n, generator=g) * 4 + 0.5
    return model.eval()


class BnnPynqQuant(ExtendedInjector):
    """BNN-PYNQ's quantizers (its common.py): a constant scale, narrow range, binary at 1 bit."""

    bit_width_impl_type = BitWidthImplType.CONST
    scaling_impl_type = ScalingImplType.CONST
    restrict_scaling_type = RestrictValueType.FP
    zero_point_impl = ZeroZeroPoint
    float_to_int_impl_type = FloatToIntImplType.ROUND
    scaling_per_output_channel = False
    narrow_range = True
    signed = True

    @value
    def quant_type(bit_width):  # noqa: N805 (a dependency-injection value, not a method)
        return QuantType.BINARY if bit_width == 1 else QuantType.INT


class BnnPynqWeightQuant(BnnPynqQuant, WeightQuantSolver):
    scaling_const = 1.0


class BnnPynqActQuant(BnnPynqQuant, ActQuantSolver):
    min_val = -1.0
    max_val = 1.0


def _bnn_pynq_act(bits: int, **kw) -> nn.Module:
    return qnn.QuantIdentity(act_quant=BnnPynqActQuant, bit_width=bits, return_quant_tensor=True, **kw)


def _bnn_pynq_linear(i: int, o: int, w_bits: int) -> nn.Module:
    return qnn.QuantLinear(i, o, bias=False, weight_quant=BnnPynqWeightQuant, weight_bit_width=w_bits)


class BnnPynqTFC(nn.Module):
    """FINN BNN-PYNQ's TFC: flatten, 2x - 1, a binary (or 2-bit narrow) input quantizer, binary or 2-bit layers
    with batch-norm, TensorNorm at the end, with BNN-PYNQ's own quantizers."""

    def __init__(self, in_features: int, hidden: int, classes: int, a_bits: int, w_bits: int):
        super().__init__()
        self.inp = _bnn_pynq_act(a_bits)
        self.layers = nn.ModuleList([
            _bnn_pynq_linear(in_features, hidden, w_bits), nn.BatchNorm1d(hidden), _bnn_pynq_act(a_bits),
            _bnn_pynq_linear(hidden, hidden, w_bits), nn.BatchNorm1d(hidden), _bnn_pynq_act(a_bits),
            _bnn_pynq_linear(hidden, classes, w_bits)])
        self.norm = TensorNorm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(x.shape[0], -1)
        x = 2.0 * x - torch.tensor([1.0])
        x = self.inp(x)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class BnnPynqCNV(nn.Module):
    """FINN BNN-PYNQ's CNV (NCHW): 2x - 1, an 8-bit input quantizer with a power-of-two scale on [-1, 1 - 2^-7],
    pairs of unpadded 3x3 convolutions with batch-norm and max-pooling after the first two pairs, two fully
    connected layers, a classifier, TensorNorm. `channels` scales FINN's 64-64-128-128-256-256 / 512-512."""

    def __init__(self, channels: tuple[int, ...], fc: int, classes: int, a_bits: int, w_bits: int):
        super().__init__()
        self.inp = _bnn_pynq_act(8, min_val=-1.0, max_val=1.0 - 2.0 ** -7, narrow_range=False,
                                 restrict_scaling_type=RestrictValueType.POWER_OF_TWO)
        layers, c_in = [], 3
        for k, c_out in enumerate(channels):
            layers += [qnn.QuantConv2d(c_in, c_out, 3, bias=False, weight_quant=BnnPynqWeightQuant,
                                       weight_bit_width=w_bits), nn.BatchNorm2d(c_out), _bnn_pynq_act(a_bits)]
            if k in (1, 3):
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            _bnn_pynq_linear(c_in, fc, w_bits), nn.BatchNorm1d(fc), _bnn_pynq_act(a_bits),
            _bnn_pynq_linear(fc, fc, w_bits), nn.BatchNorm1d(fc), _bnn_pynq_act(a_bits),
            _bnn_pynq_linear(fc, classes, w_bits))
        self.norm = TensorNorm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.inp(2.0 * x - torch.tensor([1.0])))
        return self.norm(self.classifier(x.view(x.shape[0], -1)))


class PlainEnd(nn.Module):
    """The most common Brevitas classifier ending: a plain QuantLinear with a float bias, nothing after it
    (optionally a Softmax or LogSoftmax); 8-bit input quantizer, 4-bit ReLU."""

    def __init__(self, in_features: int, hidden: int, classes: int, end: nn.Module | None = None):
        super().__init__()
        self.net = nn.Sequential(
            qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True),
            qnn.QuantLinear(in_features, hidden, bias=True, weight_bit_width=3),
            nn.BatchNorm1d(hidden),
            qnn.QuantReLU(bit_width=4, return_quant_tensor=True),
            qnn.QuantLinear(hidden, classes, bias=True, weight_bit_width=3),
            *([end] if end is not None else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class NormalizedSign(nn.Module):
    """finn-examples' UNSW-NB15 style: per-feature input normalization (x + a) / b, an 8-bit unsigned input
    quantizer, 2-bit layers, one output ending in a sign (a binary classifier)."""

    def __init__(self, in_features: int, hidden: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("shift", torch.rand(in_features, generator=g))
        self.register_buffer("spread", torch.rand(in_features, generator=g) + 0.5)
        self.inp = qnn.QuantIdentity(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True)
        self.net = nn.Sequential(
            qnn.QuantLinear(in_features, hidden, bias=True, weight_bit_width=2), nn.BatchNorm1d(hidden),
            qnn.QuantReLU(bit_width=2, return_quant_tensor=True),
            qnn.QuantLinear(hidden, 1, bias=True, weight_bit_width=2),
            qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.inp((x + self.shift) / self.spread))


class ChannelsLastCNV(nn.Module):
    """A small CNN taking channels-last images: Transpose to NCHW, per-channel (x - mean) / std after it, a
    narrow 8-bit input quantizer, binary convolutions, max-pooling, a binary classifier layer."""

    def __init__(self, channels: int, classes: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("mean", torch.rand(1, channels, 1, 1, generator=g))
        self.register_buffer("std", torch.rand(1, channels, 1, 1, generator=g) + 0.5)
        sign = SignedBinaryActPerTensorConst
        self.inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, narrow_range=True, return_quant_tensor=True)
        self.features = nn.Sequential(
            qnn.QuantConv2d(channels, 8, 3, bias=False, weight_quant=SignedBinaryWeightPerTensorConst),
            nn.BatchNorm2d(8), qnn.QuantIdentity(act_quant=sign, return_quant_tensor=True),
            nn.MaxPool2d(2),
            qnn.QuantConv2d(8, 8, 3, bias=False, weight_quant=SignedBinaryWeightPerTensorConst),
            nn.BatchNorm2d(8), qnn.QuantIdentity(act_quant=sign, return_quant_tensor=True))
        self.classifier = qnn.QuantLinear(8 * 3 * 3, classes, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)
        self.norm = TensorNorm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.permute(0, 3, 1, 2) - self.mean) / self.std
        x = self.features(self.inp(x))
        return self.norm(self.classifier(x.reshape(x.shape[0], -1)))


def bnn_pynq_tfc(seed: int, a_bits: int = 1, w_bits: int = 1):
    torch.manual_seed(seed)
    x = np.random.default_rng(seed).random((64, 1, 6, 6), dtype=np.float32)
    return _randomize(BnnPynqTFC(36, 32, 10, a_bits, w_bits), seed), x


def bnn_pynq_cnv(seed: int, a_bits: int = 1, w_bits: int = 1):
    """CNV's topology on 3x32x32 images (pixels in [0, 1]) with channels scaled down by 8."""
    torch.manual_seed(seed)
    x = np.random.default_rng(seed).random((16, 3, 32, 32), dtype=np.float32)
    return _randomize(BnnPynqCNV((8, 8, 16, 16, 32, 32), 64, 10, a_bits, w_bits), seed), x


def bnn_pynq_sfc(seed: int):
    """SFC's size (784-256-256-256-10 in BNN-PYNQ; three hidden layers there, two here) on 28x28 images."""
    torch.manual_seed(seed)
    x = np.random.default_rng(seed).random((32, 1, 28, 28), dtype=np.float32)
    return _randomize(BnnPynqTFC(784, 256, 10, 1, 1), seed), x


def plain_end(seed: int, end: nn.Module | None = None):
    torch.manual_seed(seed)
    x = np.random.default_rng(seed).normal(size=(64, 12)).astype(np.float32)
    return _randomize(PlainEnd(12, 16, 5, end), seed), x


def normalized_sign(seed: int):
    torch.manual_seed(seed)
    x = np.random.default_rng(seed).random((64, 10), dtype=np.float32) * 3
    return _randomize(NormalizedSign(10, 16, seed), seed), x


def channels_last_cnv(seed: int):
    torch.manual_seed(seed)
    x = np.random.default_rng(seed).random((64, 12, 12, 3), dtype=np.float32)
    return _randomize(ChannelsLastCNV(3, 4, seed), seed), x


def export(model: nn.Module, x: np.ndarray, path: Path) -> Path:
    """brevitas.export.export_qonnx as a user calls it: its default exporter, the weights left where it puts
    them (an external `.onnx.data` file)."""
    from brevitas.export import export_qonnx

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        export_qonnx(model.eval(), torch.from_numpy(x[:1]), export_path=str(path))
    return path


def rename_everything(path: Path, out: Path) -> Path:
    """The same model with the ONNX names users' tools write: numbers, dots, slashes, colons."""
    import onnx

    model = onnx.load(str(path))
    g = model.graph
    names = {n for node in g.node for n in (*node.input, *node.output) if n}
    names |= {i.name for i in g.initializer} | {i.name for i in g.input} | {o.name for o in g.output}
    new = {name: (str(k) if k % 3 == 0 else f"/model/layer.{k}/out:0") for k, name in enumerate(sorted(names))}
    for node in g.node:
        node.input[:] = [new.get(n, n) for n in node.input]
        node.output[:] = [new.get(n, n) for n in node.output]
        node.name = f"/model/{node.op_type}.{len(node.name)}"
    for t in (*g.initializer, *g.input, *g.output, *g.value_info):
        t.name = new.get(t.name, t.name)
    for k, node in enumerate(g.node):  # node names unique again
        node.name = f"{node.name}/{k}"
    onnx.save(model, str(out), save_as_external_data=False)
    return out


# ---- graphs written with onnx.helper: the qonnx Keras converter's style and an older exporter's ----------

def _const(name: str, value):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def _quant(inp: str, out: str, scale: float, bits: int, signed: bool, node_name: str) -> tuple[list, list]:
    from onnx import helper

    inits = [_const(f"{out}_scale", scale), _const(f"{out}_zp", 0.0), _const(f"{out}_bits", bits)]
    node = helper.make_node("Quant", [inp, *(i.name for i in inits)], [out], name=node_name,
                            domain="qonnx.custom_op.general", signed=int(signed), narrow=0, rounding_mode="ROUND")
    return [node], inits


def qkeras_style_mlp(seed: int, path: Path) -> np.ndarray:
    """As qonnx's Keras converter writes a QKeras MLP (QDense with quantized_bits kernels and biases,
    quantized_relu activations, a final Softmax): MatMul of the float input by a Quant of the kernel, Add of a
    Quant of the bias, Relu then Quant; the network input is not quantized. Returns sample inputs."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    sizes = [10, 16, 16, 5]
    nodes, inits, x = [], [], "input_1"
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        inits += [_const(f"dense_{k}/kernel", rng.normal(size=(n_in, n_out)) * 0.4),
                  _const(f"dense_{k}/bias", rng.normal(size=n_out) * 0.3)]
        for param, bits in ((f"dense_{k}/kernel", 6), (f"dense_{k}/bias", 8)):
            q, i = _quant(param, f"{param}_q", 2.0 ** -4, bits, True, f"Quant_{param}")
            nodes += q
            inits += i
        nodes += [helper.make_node("MatMul", [x, f"dense_{k}/kernel_q"], [f"dense_{k}/mm"],
                                   name=f"dense_{k}/MatMul"),
                  helper.make_node("Add", [f"dense_{k}/mm", f"dense_{k}/bias_q"], [f"dense_{k}/out"],
                                   name=f"dense_{k}/BiasAdd")]
        x = f"dense_{k}/out"
        if k < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"act_{k}/relu"], name=f"act_{k}/Relu"))
            q, i = _quant(f"act_{k}/relu", f"act_{k}/out", 2.0 ** -2, 4, False, f"act_{k}/Quant")
            nodes += q
            inits += i
            x = f"act_{k}/out"
    nodes.append(helper.make_node("Softmax", [x], ["softmax"], name="softmax", axis=-1))
    graph = helper.make_graph(nodes, "qkeras_mlp",
                              [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, [1, 10])],
                              [helper.make_tensor_value_info("softmax", TensorProto.FLOAT, [1, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("qonnx.custom_op.general", 1)])
    import onnx

    onnx.save(model, str(path))
    return (rng.normal(size=(64, 10)) * 2).astype(np.float32)


def older_export_tfc(seed: int, path: Path) -> np.ndarray:
    """An older exporter's BNN-PYNQ TFC: opset 9, every parameter also listed as a graph input, the flatten
    computed by Shape/Gather/Unsqueeze/Concat/Reshape, 2x - 1 then BipolarQuant, BatchNormalization, and
    TensorNorm written out as Sub, Pow, Div, Mul, Add. Returns sample inputs."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    inits = [_const("two", 2.0), _const("one", 1.0), _const("one_scale", 1.0), _const("half", 0.5),
             _const("tn_mean", 0.3), _const("tn_var_eps", 0.8), _const("tn_w", 1.3), _const("tn_b", 0.2),
             onnx.numpy_helper.from_array(np.array([0], dtype=np.int64), "zero"),
             onnx.numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus_one")]
    nodes = [helper.make_node("Shape", ["0"], ["shape"]),
             helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
             helper.make_node("Concat", ["batch", "minus_one"], ["flat_shape"], axis=0),
             helper.make_node("Reshape", ["0", "flat_shape"], ["flat"]),
             helper.make_node("Mul", ["flat", "two"], ["doubled"]),
             helper.make_node("Sub", ["doubled", "one"], ["centered"]),
             helper.make_node("BipolarQuant", ["centered", "one_scale"], ["a0"], domain="qonnx.custom_op.general")]
    x, sizes = "a0", [36, 24, 24, 10]
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        inits.append(_const(f"w{k}", rng.normal(size=(n_in, n_out))))
        nodes += [helper.make_node("BipolarQuant", [f"w{k}", "one_scale"], [f"w{k}q"],
                                   domain="qonnx.custom_op.general"),
                  helper.make_node("MatMul", [x, f"w{k}q"], [f"mm{k}"])]
        x = f"mm{k}"
        if k < len(sizes) - 2:
            bn = [f"bn{k}_{p}" for p in ("gamma", "beta", "mean", "var")]
            inits += [_const(bn[0], rng.random(n_out) + 0.5), _const(bn[1], rng.normal(size=n_out)),
                      _const(bn[2], rng.normal(size=n_out) * 3), _const(bn[3], rng.random(n_out) * 9 + 1)]
            nodes += [helper.make_node("BatchNormalization", [x, *bn], [f"bn{k}"], epsilon=1e-4),
                      helper.make_node("BipolarQuant", [f"bn{k}", "one_scale"], [f"a{k + 1}"],
                                       domain="qonnx.custom_op.general")]
            x = f"a{k + 1}"
    nodes += [helper.make_node("Sub", [x, "tn_mean"], ["tn0"]),
              helper.make_node("Pow", ["tn_var_eps", "half"], ["tn_std"]),
              helper.make_node("Div", ["tn0", "tn_std"], ["tn1"]), helper.make_node("Mul", ["tn1", "tn_w"], ["tn2"]),
              helper.make_node("Add", ["tn2", "tn_b"], ["out"])]
    inputs = [helper.make_tensor_value_info("0", TensorProto.FLOAT, [1, 1, 6, 6])]
    inputs += [helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in inits]
    graph = helper.make_graph(nodes, "tfc_old", inputs,
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9),
                                                    helper.make_opsetid("qonnx.custom_op.general", 1)])
    model.ir_version = 4
    onnx.save(model, str(path))
    return rng.random((64, 1, 6, 6), dtype=np.float32)
