"""Brevitas models across the supported layer set and bit widths, built here with randomized
batch-norm statistics (negative, zero and positive gammas). For each: golden argmax equals Brevitas'
on every input, float outputs agree within the contract's tolerance, and every quantized tensor equals
qonnx's execution of the same QONNX graph exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import (
    Int8ActPerTensorFloat,
    Int8WeightPerChannelFloat,
    Int8WeightPerTensorFloat,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
    SignedTernaryWeightPerTensorConst,
)
from torch import nn

from tests.conftest import check_exact
from tests.test_frontend import _randomize_batchnorm
from xnorkit import build, compare
from xnorkit.quant_train import train


def weight_quant(bits: str, per_channel: bool) -> dict:
    if bits == "1":
        return {"weight_quant": SignedBinaryWeightPerTensorConst}
    if bits == "t":
        return {"weight_quant": SignedTernaryWeightPerTensorConst}
    quant = Int8WeightPerChannelFloat if per_channel else Int8WeightPerTensorFloat
    return {"weight_quant": quant, "weight_bit_width": int(bits)}


def activation(bits: int, signed: bool = False) -> nn.Module:
    if bits == 1:
        return QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
    if signed:
        return QuantIdentity(act_quant=Int8ActPerTensorFloat, bit_width=bits)
    return QuantReLU(bit_width=bits)


def mlp(w: str, a: int, per_channel: bool, signed_act: bool = False) -> nn.Module:
    layers: list[nn.Module] = [QuantIdentity(bit_width=8, return_quant_tensor=True)]
    width = 20
    for h in (24, 16):
        layers += [QuantLinear(width, h, bias=False, **weight_quant(w, per_channel)), nn.BatchNorm1d(h),
                   activation(a, signed_act)]
        width = h
    layers += [QuantLinear(width, 5, bias=True, **weight_quant(w, per_channel)), nn.BatchNorm1d(5)]
    return nn.Sequential(*layers)


def cnn(w: str, a: int, per_channel: bool, depthwise: bool = False) -> nn.Module:
    wq = weight_quant(w, per_channel)
    layers: list[nn.Module] = [
        QuantIdentity(bit_width=8, return_quant_tensor=True),
        QuantConv2d(1, 8, 3, padding=1, bias=False, **wq), nn.BatchNorm2d(8), activation(a),
        nn.MaxPool2d(2),
        QuantConv2d(8, 8, 3, padding=1, stride=2, groups=8 if depthwise else 1, bias=False, **wq),
        nn.BatchNorm2d(8), activation(a),
        QuantConv2d(8, 6, 1, bias=False, **wq), nn.BatchNorm2d(6), activation(a),
        nn.Flatten(),
        QuantLinear(6 * 2 * 2, 4, bias=False, **wq), nn.BatchNorm1d(4),
    ]
    return nn.Sequential(*layers)


CASES = {
    "mlp_w1a1": lambda: mlp("1", 1, False),
    "mlp_w1a2": lambda: mlp("1", 2, False),
    "mlp_w2a2": lambda: mlp("2", 2, False),
    "mlp_w4a4_per_channel": lambda: mlp("4", 4, True),
    "mlp_ternary_a2_signed": lambda: mlp("t", 2, False, signed_act=True),
    "cnn_w1a1_pad_pool": lambda: cnn("1", 1, False),
    "cnn_w2a2_per_channel": lambda: cnn("2", 2, True),
    "cnn_w4a4_depthwise": lambda: cnn("4", 4, False, depthwise=True),
    "cnn_ternary_a2": lambda: cnn("t", 2, False),
}


def _inputs(model: nn.Module, seed: int) -> np.ndarray:
    shape = (400, 1, 8, 8) if isinstance(model[1], QuantConv2d) else (400, 20)
    return np.random.default_rng(seed).normal(0, 0.6, size=shape).astype(np.float32)


@pytest.mark.parametrize("case", CASES)
def test_golden_equals_brevitas_and_qonnx(tmp_path, case):
    torch.manual_seed(7)
    model = CASES[case]()
    _randomize_batchnorm_any(model, 7)
    check_exact(model, _inputs(model, 7), tmp_path, min_tensors=4)


def _randomize_batchnorm_any(model: nn.Module, seed: int) -> None:
    _randomize_batchnorm(model, seed)
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = (torch.randint(0, 3, (n,), generator=g) - 1) * (0.1 + torch.rand(n, generator=g))
            m.bias.data = torch.randn(n, generator=g)
            m.running_mean.data = torch.randn(n, generator=g) * 3
            m.running_var.data = 0.5 + torch.rand(n, generator=g) * 10


def _compile_error(tmp_path, model: nn.Module, shape: tuple[int, ...]) -> str:
    import subprocess
    import sys

    train.export_qonnx(model.eval(), shape, tmp_path / "m.onnx")
    proc = subprocess.run([sys.executable, "-m", "xnorkit", "compile", str(tmp_path / "m.onnx"), "-o",
                           str(tmp_path / "b")], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "b").exists()
    return proc.stderr


def test_a_float_activation_between_quantized_layers_is_refused(tmp_path):
    model = nn.Sequential(QuantIdentity(bit_width=8, return_quant_tensor=True),
                          QuantLinear(8, 8, bias=False, weight_bit_width=2), nn.BatchNorm1d(8), nn.ReLU(),
                          QuantLinear(8, 3, bias=False, weight_bit_width=2))
    message = _compile_error(tmp_path, model, (8,))
    assert "node 'Gemm_1' (op Gemm)" in message and "unquantized output of layer 'Gemm_0'" in message


def test_a_dilated_convolution_is_refused(tmp_path):
    model = nn.Sequential(QuantIdentity(bit_width=8, return_quant_tensor=True),
                          QuantConv2d(1, 2, 3, dilation=2, bias=False, weight_bit_width=2), nn.BatchNorm2d(2))
    message = _compile_error(tmp_path, model, (1, 8, 8))
    assert "node 'Conv_0' (op Conv): dilated convolutions are not supported" in message


def test_c_and_hls_equal_golden_on_every_case(tmp_path):
    """Every matrix case (binary, ternary, k-bit and per-channel weights, signed and unsigned activations,
    padded, grouped and depthwise convolutions, pooling) in C on the host and in the HLS C++ under g++: the
    same integers as golden."""
    from tests.conftest import require_tool
    from xnorkit import golden
    from xnorkit.firmware import emit_c, runner
    from xnorkit.hw import emit_hls
    from xnorkit.hw import folding as fold_mod
    from xnorkit.outputs import write_tree
    from xnorkit.sim import hls

    require_tool("gcc")
    require_tool("g++")
    for case in CASES:
        torch.manual_seed(7)
        model = CASES[case]()
        _randomize_batchnorm_any(model, 7)
        x = _inputs(model, 7)[:100]
        graph, _ = check_exact(model, x, tmp_path / case / "m", min_tensors=4)
        write_tree(tmp_path / case / "fw", emit_c.emit(graph))
        expected = golden.predict_int(graph, x)
        out = runner.run_host(tmp_path / case / "fw", x, expected.shape[1])
        assert np.array_equal(out, expected), case
        write_tree(tmp_path / case / "hls", emit_hls.emit(graph, fold_mod.solve(graph, 64)))
        x_int = golden.quantize_input(graph, x)
        assert np.array_equal(hls.run(tmp_path / case / "hls", x_int, expected.shape[1]), expected), case


@pytest.mark.parametrize("case", CASES)
def test_rtl_equals_golden(tmp_path, case):
    """Every matrix case (binary, ternary, k-bit and per-channel weights, signed and unsigned activations,
    padded, grouped and depthwise convolutions, pooling): bit-exact with random stalls."""
    from tests.conftest import require_tool
    from xnorkit import golden
    from xnorkit.hw import emit_sv
    from xnorkit.hw import folding as fold_mod
    from xnorkit.outputs import write_tree
    from xnorkit.sim import runner

    require_tool("verilator")
    torch.manual_seed(7)
    model = CASES[case]()
    _randomize_batchnorm_any(model, 7)
    x = _inputs(model, 7)[:60]
    graph, _ = check_exact(model, x, tmp_path / "m", min_tensors=4)
    write_tree(tmp_path / "rtl", emit_sv.emit(graph, fold_mod.solve(graph, 64)))
    x_int = golden.quantize_input(graph, x)
    expected = golden.predict_from_int(graph, x_int)
    result = runner.simulate_bulk(tmp_path / "rtl", x_int, expected, 0.2, 0.2, seed=1)
    assert result.mismatch is None and np.array_equal(result.outputs, expected)


def test_predict_golden_on_a_cnn(tmp_path):
    import subprocess
    import sys

    torch.manual_seed(0)
    model = CASES["cnn_w2a2_per_channel"]().eval()
    train.export_qonnx(model, (1, 8, 8), tmp_path / "m.onnx")
    build.compile_model(tmp_path / "m.onnx", tmp_path / "b")
    x = _inputs(model, 1)[:20]
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run([sys.executable, "-m", "xnorkit", "predict", str(tmp_path / "b"), "--input",
                           str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy"), "--dequantize"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert compare.float_rows_agree(np.load(tmp_path / "y.npy"), train.evaluate(model, x)).all()


def test_hw_and_inspect_on_a_cnn_build(tmp_path):
    import subprocess
    import sys

    torch.manual_seed(0)
    train.export_qonnx(CASES["cnn_w1a1_pad_pool"]().eval(), (1, 8, 8), tmp_path / "m.onnx")
    build.compile_model(tmp_path / "m.onnx", tmp_path / "b")
    for command in (("hw", "--target-cycles", "64"), ("inspect",)):
        proc = subprocess.run([sys.executable, "-m", "xnorkit", *command, str(tmp_path / "b")], capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stderr
    said = " ".join(proc.stdout.split())
    assert "accelerator stages" in said and "window" in said and "pool" in said and "interval 64 cycles" in said
