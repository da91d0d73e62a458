"""QONNX import: Brevitas models built here, with batch-norm statistics forced into the hard cases."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from xnorkit import build, compare, golden, numerics
from xnorkit.frontend import import_qonnx
from xnorkit.quant_train import train
from xnorkit.quant_train.zoo import MLP


def _randomize_batchnorm(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            n = m.num_features
            sign = torch.randint(0, 3, (n,), generator=g) - 1  # negative, zero and positive gammas
            m.weight.data = sign * (0.1 + torch.rand(n, generator=g))
            m.bias.data = torch.randn(n, generator=g)
            m.running_mean.data = torch.randn(n, generator=g) * 8
            m.running_var.data = 0.5 + torch.rand(n, generator=g) * 30


@pytest.mark.parametrize("seed,hidden,input_bits", [(0, [32, 24], 5), (1, [16], 8), (2, [64, 64, 64], 4)])
def test_golden_equals_brevitas(tmp_path, seed, hidden, input_bits):
    torch.manual_seed(seed)
    model = MLP(20, hidden, 7, 1, 1, input_bits)
    _randomize_batchnorm(model, seed)
    train.export_qonnx(model, (20,), tmp_path / "m.onnx")
    graph = import_qonnx(tmp_path / "m.onnx")
    x = np.random.default_rng(seed).uniform(-2, 2**input_bits + 2, size=(300, 20)).astype(np.float32)
    x[:10] = np.round(x[:10]) + 0.5  # ties, rounded half to even
    ref = train.evaluate(model, x)
    ours = golden.predict_float(graph, x)
    assert compare.float_rows_agree(ours, ref).all()
    assert np.array_equal(ours.argmax(1), ref.argmax(1))


def test_negative_gamma_negates_rows_and_zero_gamma_is_constant(tmp_path):
    torch.manual_seed(0)
    model = MLP(12, [16], 3, 1, 1, 5)
    bn = model.net[1][1]
    bn.weight.data = torch.tensor([-1.0] * 8 + [0.0] * 4 + [1.0] * 4)
    bn.bias.data = torch.tensor([0.5] * 10 + [-0.5] * 2 + [0.0] * 4)
    train.export_qonnx(model, (12,), tmp_path / "m.onnx")
    graph = import_qonnx(tmp_path / "m.onnx")
    mm, th = graph.nodes[1], graph.nodes[2]
    lin = model.net[1][0].quant_weight().value.detach().numpy().astype(np.int8)
    assert np.array_equal(mm.weights[:8], -lin[:8]) and np.array_equal(mm.weights[8:], lin[8:])
    # zero gamma: beta >= 0 always fires (threshold = lowest accumulator), beta < 0 never (one past the highest)
    assert th.thresholds[8, 0] == numerics.accumulator_range(mm.weights[8], mm.in_dtype)[0]
    assert th.thresholds[10, 0] == numerics.accumulator_range(mm.weights[10], mm.in_dtype)[1] + 1
    x = np.random.default_rng(0).integers(0, 32, size=(50, 12)).astype(np.float32)
    acts = golden.run(graph, x, keep_all=True)[th.output]
    assert acts[:, 8:10].all() and not acts[:, 10:12].any()


def _compile_exit(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xnorkit", "compile", str(path), "-o", str(path) + ".build"],
                          capture_output=True, text=True)


def test_compile_rejects_a_file_that_is_not_onnx(tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("this is not a protobuf")
    proc = _compile_exit(bad)
    assert proc.returncode == 2
    assert "is not an ONNX model" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "notes.onnx.build").exists()


def test_compile_rejects_an_unsupported_op_naming_the_node(tmp_path):
    model = torch.nn.Sequential(MLP(12, [16], 3, 1, 1, 5), torch.nn.Tanh())
    train.export_qonnx(model, (12,), tmp_path / "m.onnx")
    proc = _compile_exit(tmp_path / "m.onnx")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "op Tanh" in proc.stderr and "node 'Tanh_0'" in proc.stderr
    assert not (tmp_path / "m.onnx.build").exists()


def test_compile_writes_a_loadable_build(trained_build):
    graph = build.load(trained_build / "build")
    assert [type(n).__name__ for n in graph.nodes] == [
        "Quantize", "MatMul", "Threshold", "MatMul", "Threshold", "MatMul", "Threshold", "MatMul", "Dequantize"]


def test_every_quantized_tensor_equals_qonnx_exactly(trained_build):
    """IR tensors keep their ONNX names: the quantized input and every sign activation must equal qonnx's
    execution of the same QONNX graph exactly (bipolar bit b is the value 2b - 1)."""
    from xnorkit.ir import Quantize, Threshold
    from xnorkit.quant_train.data import load_digits

    graph = build.load(trained_build / "build")
    x = load_digits().x_test
    ours = golden.run(graph, x, keep_all=True)
    theirs = build.qonnx_execute(trained_build / "build", x, every_tensor=True)
    checked = 0
    for node in graph.nodes:
        if isinstance(node, Quantize):
            assert np.array_equal(ours[node.output], theirs[node.output].astype(np.int64)), node.name
            checked += 1
        elif isinstance(node, Threshold):
            assert np.array_equal(2 * ours[node.output].astype(np.int64) - 1, theirs[node.output]), node.name
            checked += 1
    assert checked == 4
