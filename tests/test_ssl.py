"""SSL for convolutional networks: group lasso over filters, channels, shapes and residual blocks; zeroed
groups stay zero through fine-tuning and export; removed blocks vanish from the compiled graph."""

import numpy as np
import pytest
import torch

from tests.conftest import check_exact
from xnorkit import build
from xnorkit.ir import Conv
from xnorkit.quant_train import compression, config, data, sparsity, train, zoo


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


def test_group_lasso_values():
    model = zoo.build("lenet5", 4, 4, (1, 8, 8), 10, 5)
    (_, conv, bn), _ = sparsity._conv_blocks(model)
    w = conv.weight
    filters = torch.sqrt((w ** 2).flatten(1).sum(1) / 25 + bn.weight ** 2 + bn.bias ** 2).sum()
    channels = torch.sqrt((w ** 2).sum((0, 2, 3)) / (6 * 25)).sum()
    shapes = torch.sqrt((w ** 2).sum(0).flatten() / 6).sum()
    one = torch.nn.Sequential(model.features[0])
    assert torch.allclose(sparsity.conv_group_lasso(one, "filters"), filters)
    assert torch.allclose(sparsity.conv_group_lasso(one, "channels"), channels)
    assert torch.allclose(sparsity.conv_group_lasso(one, "shapes"), shapes)
    with pytest.raises(ValueError, match="filters, channels or shapes"):
        sparsity.conv_group_lasso(one, "rows")


@pytest.mark.parametrize("group", ["filters", "channels", "shapes"])
def test_zeroed_groups_survive_fine_tuning_and_export(tmp_path, digits, group):
    cfg = config.Config(model=config.ModelConfig(kind="lenet5", weights="int4", a_bits=4),
                        train=config.TrainConfig(epochs=1, batch_size=64))
    model, _ = train.train(cfg, digits, regularizer=lambda m: sparsity.conv_group_lasso(m, group), reg_weight=1e-3)
    masks = sparsity.zero_conv_groups(model, group, threshold=0.99)  # zeroes all but the largest
    compression.set_masks(model, masks)
    model, _ = train.train(cfg, digits, model=model, after_step=compression.apply_masks)
    train.export_qonnx(model, (1, 8, 8), tmp_path / "m.onnx")
    graph = build.compile_model(tmp_path / "m.onnx", tmp_path / "b")
    convs = [n for n in graph.nodes if isinstance(n, Conv)]
    assert any(mask.float().mean() < 1 for mask in masks.values())  # something was zeroed
    for node, mask in zip(convs, masks.values(), strict=True):
        assert not node.weights[~mask.numpy()].any()


def test_block_removal_is_exact_when_the_group_is_zero(tmp_path, digits):
    cfg = config.Config(model=config.ModelConfig(kind="resnet", weights="int4", a_bits=4),
                        train=config.TrainConfig(epochs=1, batch_size=64))
    model, _ = train.train(cfg, digits, regularizer=sparsity.block_group_lasso, reg_weight=1e-3)
    with torch.no_grad():  # as group lasso leaves it when it wins: the second block's group at zero
        for m in model.blocks[1].modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.zero_()
        model.blocks[1][-1][1].weight.zero_()
        model.blocks[1][-1][1].bias.zero_()
    x = digits.x_test[:100].reshape(-1, 1, 8, 8)
    before = train.evaluate(model, x)
    assert sparsity.remove_blocks(model, threshold=0.01) == [True, False]
    assert np.array_equal(train.evaluate(model, x), before)
    graph, _ = check_exact(model, x, tmp_path)
    assert sum(isinstance(n, Conv) for n in graph.nodes) == 3  # the stem and the first block's two


def test_block_removal_refuses_binary_activations():
    model = zoo.build("resnet", 1, 1, (1, 8, 8), 10, 5)
    with pytest.raises(ValueError, match="multi-bit"):
        sparsity.remove_blocks(model, 0.5)
