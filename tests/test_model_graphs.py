"""Graphs beyond a chain: a residual block, a SqueezeNet fire module and a two-exit (BranchyNet) network,
each exact against qonnx on every quantized tensor and within tolerance of Brevitas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from torch import nn

from tests.conftest import check_exact
from tests.test_model_matrix import _randomize_batchnorm_any
from xnorkit import build, golden
from xnorkit.ir import Add, Concat

W = {"bias": False, "weight_bit_width": 2}


def conv_bn_act(c_in: int, c_out: int, kernel: int, act_bits: int, **kw) -> tuple[nn.Module, nn.Module, nn.Module]:
    return QuantConv2d(c_in, c_out, kernel, **kw, **W), nn.BatchNorm2d(c_out), QuantReLU(bit_width=act_bits)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.conv0, self.bn0, self.act0 = conv_bn_act(1, 6, 3, 3, padding=1)
        self.conv1, self.bn1, self.act1 = conv_bn_act(6, 6, 3, 3, padding=1)
        self.shortcut = QuantIdentity(act_quant=self.act1.act_quant)  # one scale for both branches
        self.act2 = QuantReLU(bit_width=2)
        self.fc, self.bn = QuantLinear(6 * 6 * 6, 4, **W), nn.BatchNorm1d(4)

    def forward(self, x):
        x = self.act0(self.bn0(self.conv0(self.inp(x))))
        y = self.act1(self.bn1(self.conv1(x))) + self.shortcut(x)
        return self.bn(self.fc(torch.flatten(self.act2(y), 1)))


class Fire(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.squeeze, self.bn_s, self.act_s = QuantConv2d(1, 4, 1, **W), nn.BatchNorm2d(4), QuantReLU(bit_width=2)
        self.e1, self.bn1 = QuantConv2d(4, 4, 1, **W), nn.BatchNorm2d(4)
        self.e3, self.bn3 = QuantConv2d(4, 4, 3, padding=1, **W), nn.BatchNorm2d(4)
        self.act1 = QuantReLU(bit_width=2)
        self.act3 = QuantReLU(act_quant=self.act1.act_quant)  # concatenated branches share one scale
        self.fc, self.bn = QuantLinear(8 * 6 * 6, 4, **W), nn.BatchNorm1d(4)

    def forward(self, x):
        s = self.act_s(self.bn_s(self.squeeze(self.inp(x))))
        y = torch.cat([self.act1(self.bn1(self.e1(s))), self.act3(self.bn3(self.e3(s)))], dim=1)
        return self.bn(self.fc(torch.flatten(y, 1)))


class TwoExits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.conv0, self.bn0, self.act0 = conv_bn_act(1, 4, 3, 2, padding=1)
        self.exit_fc, self.exit_bn = QuantLinear(4 * 6 * 6, 3, **W), nn.BatchNorm1d(3)
        self.conv1, self.bn1, self.act1 = conv_bn_act(4, 4, 3, 2)
        self.fc, self.bn = QuantLinear(4 * 4 * 4, 3, **W), nn.BatchNorm1d(3)

    def forward(self, x):
        x = self.act0(self.bn0(self.conv0(self.inp(x))))
        early = self.exit_bn(self.exit_fc(torch.flatten(x, 1)))
        final = self.bn(self.fc(torch.flatten(self.act1(self.bn1(self.conv1(x))), 1)))
        return early, final


@pytest.mark.parametrize("cls,node_type", [(Residual, Add), (Fire, Concat), (TwoExits, None)])
def test_graph_is_exact(tmp_path, cls, node_type):
    torch.manual_seed(1)
    model = cls()
    _randomize_batchnorm_any(model, 3)
    x = np.random.default_rng(1).normal(0, 0.6, size=(300, 1, 6, 6)).astype(np.float32)
    graph, ours = check_exact(model, x, tmp_path, min_tensors=4)
    if node_type is not None:
        assert any(isinstance(n, node_type) for n in graph.nodes)
    if cls is TwoExits:
        assert len(graph.outputs) == 2
        assert np.allclose(build.predict(tmp_path / "build", "qonnx", x, dequantize_output=True), ours, rtol=0,
                           atol=1e-5 * np.abs(ours).max())


class AveragePooled(nn.Module):
    """Average pooling between quantized layers, then a global average before the classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.conv0, self.bn0, self.act0 = conv_bn_act(1, 4, 3, 2, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.requant = QuantIdentity(bit_width=4)
        self.conv1, self.bn1, self.act1 = conv_bn_act(4, 6, 3, 3, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc, self.bn = QuantLinear(6, 3, **W), nn.BatchNorm1d(3)

    def forward(self, x):
        x = self.requant(self.pool(self.act0(self.bn0(self.conv0(self.inp(x))))))
        x = self.gap(self.act1(self.bn1(self.conv1(x))))
        return self.bn(self.fc(torch.flatten(x, 1)))


def test_average_pooling_is_exact(tmp_path):
    from xnorkit.ir import SumPool

    torch.manual_seed(2)
    model = AveragePooled()
    x = np.random.default_rng(2).normal(0, 0.6, size=(300, 1, 6, 6)).astype(np.float32)
    _randomize_batchnorm_any(model, 3)
    graph, _ = check_exact(model, x, tmp_path)
    pools = [n for n in graph.nodes if isinstance(n, SumPool)]
    assert len(pools) == 2
    # check_exact compared the window sums with qonnx's averages too: their real meaning is the average's
    meaning = golden.real_meanings(graph)
    for pool in pools:
        area = pool.kernel[0] * pool.kernel[1]
        assert meaning[pool.output] == (meaning[pool.input][0] / area, meaning[pool.input][1] * area)


class TruncPooled(nn.Module):
    """Brevitas' TruncAvgPool2d (AveragePool + Trunc), then a transpose of H and W before the classifier."""

    def __init__(self) -> None:
        from brevitas.nn import TruncAvgPool2d

        super().__init__()
        self.inp = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.conv0, self.bn0 = QuantConv2d(1, 4, 3, padding=1, **W), nn.BatchNorm2d(4)
        self.act0 = QuantReLU(bit_width=3, return_quant_tensor=True)
        self.pool = TruncAvgPool2d(2, 2)
        self.fc, self.bn = QuantLinear(4 * 3 * 3, 3, **W), nn.BatchNorm1d(3)

    def forward(self, x):
        x = self.pool(self.act0(self.bn0(self.conv0(self.inp(x)))))
        return self.bn(self.fc(torch.flatten(x.value.transpose(2, 3) if hasattr(x, "value") else x.transpose(2, 3), 1)))


def test_trunc_average_pool_and_transpose(tmp_path):
    from xnorkit.ir import SumPool, Transpose

    torch.manual_seed(4)
    model = TruncPooled()
    x = np.random.default_rng(4).normal(0, 0.6, size=(200, 1, 6, 6)).astype(np.float32)
    _randomize_batchnorm_any(model, 3)
    graph, _ = check_exact(model, x, tmp_path)
    kinds = {type(n) for n in graph.nodes}
    assert SumPool in kinds and Transpose in kinds
