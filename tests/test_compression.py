"""Deep Compression pieces: masks (magnitude, correlation) that survive training and export, k-means weight
sharing, Huffman code lengths and the exact size report."""

import numpy as np
import pytest
import torch

from xnorkit import build, golden
from xnorkit.errors import XnorkitError
from xnorkit.ir import MatMul
from xnorkit.quant_train import compression, config, data, train, zoo


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


def _cfg(epochs=2, weights="int4", a_bits=4, kind="mlp"):
    return config.Config(model=config.ModelConfig(kind=kind, hidden=[32, 16], weights=weights, a_bits=a_bits),
                         train=config.TrainConfig(epochs=epochs, batch_size=64, lr=0.005))


def test_magnitude_masks_keep_the_largest_weights():
    layer = torch.nn.Linear(4, 2, bias=False)
    layer.weight.data = torch.tensor([[0.1, -0.9, 0.3, -0.05], [0.0, 0.5, -0.6, 0.2]])
    model = torch.nn.Sequential(layer)
    masks = compression.magnitude_masks(model, {"0": 0.5})
    assert masks["0"].tolist() == [[False, True, True, False], [False, True, True, False]]
    compression.set_masks(model, masks)
    assert compression.density(model)["0"] == 0.5
    # a second, stricter step only removes among the survivors
    masks = compression.magnitude_masks(model, {"0": 0.25})
    assert masks["0"].tolist() == [[False, True, False, False], [False, False, True, False]]


def test_pruning_masks_survive_training_and_export(tmp_path, digits):
    model, _ = train.train(_cfg(), digits)
    names = [n for n in compression.prunable(model)]
    compression.set_masks(model, compression.magnitude_masks(model, {n: 0.3 for n in names}))
    model, _ = train.train(_cfg(), digits, model=model, after_step=compression.apply_masks)
    assert all(abs(d - 0.3) < 0.01 for d in compression.density(model).values())
    train.export_qonnx(model, (64,), tmp_path / "m.onnx")
    graph = build.compile_model(tmp_path / "m.onnx", tmp_path / "b")
    layers = [n for n in graph.nodes if isinstance(n, MatMul)]
    for node, name in zip(layers, names, strict=True):
        mask = getattr(compression.prunable(model)[name], compression.MASK).numpy().astype(bool)
        assert not node.weights[~mask].any()  # every pruned weight reaches the compiler as an exact zero
        assert (node.weights[mask] != 0).mean() > 0.8  # (a kept weight may still round to zero)


def test_correlation_masks_pick_correlated_inputs():
    torch.manual_seed(0)
    x = torch.randn(500, 6)
    layer = torch.nn.Linear(6, 2, bias=False)
    layer.weight.data = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, -1.0, 0.2]])
    masks = compression.correlation_masks(torch.nn.Sequential(layer), x, {"0": 1 / 6})
    assert masks["0"].tolist() == [[True] + [False] * 5, [False] * 4 + [True, False]]


def test_correlation_masks_for_convolutions(digits):
    model = zoo.build("lenet5", 4, 4, digits.image_shape, 10, 5)
    x = torch.from_numpy(digits.x_train[:64].reshape(-1, 1, 8, 8))
    masks = compression.correlation_masks(model, x, {"features.2.0": 0.5})
    m = masks["features.2.0"]
    assert m.shape == (16, 6, 5, 5) and m[:, :, 0, 0].sum(1).tolist() == [3] * 16
    assert torch.equal(m, m[:, :, :1, :1].expand_as(m))  # a whole kernel slice kept or dropped


def test_kmeans_linear_init_and_sharing(digits):
    values = np.array([-1.0, -0.9, 0.1, 0.12, 0.95, 1.0])
    centroids, index = compression.kmeans_1d(values, 3)
    assert np.allclose(sorted(centroids), [-0.95, 0.11, 0.975]) and len(set(index[:2])) == 1
    model = zoo.FloatMLP(64, [32], 10, norm=False)
    compression.set_masks(model, compression.magnitude_masks(model, {"net.0": 0.5}))
    compression.share_weights(model, {"net.0": 2, "net.2": 3})
    cfg = config.Config(train=config.TrainConfig(epochs=1, lr=1e-3))
    model, _ = train.train(cfg, data.Dataset("d", digits.x_train / 16, digits.y_train, digits.x_test / 16,
                                             digits.y_test, 10, digits.image_shape), model=model)
    w0 = model.net[0].weight.detach()
    assert len(torch.unique(w0[w0 != 0])) <= 4 and float((w0 != 0).float().mean()) == pytest.approx(0.5, abs=0.01)
    before = train.evaluate(model, digits.x_test / 16)
    compression.bake(model)
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in model.modules())
    assert np.array_equal(train.evaluate(model, digits.x_test / 16), before)
    assert len(torch.unique(model.net[2].weight)) <= 8


def test_huffman_lengths_are_optimal():
    lengths = compression.huffman_lengths({"a": 45, "b": 13, "c": 12, "d": 16, "e": 9, "f": 5})
    assert lengths == {"a": 1, "b": 3, "c": 3, "d": 3, "e": 4, "f": 4}  # CLRS' example: 224 bits
    assert compression.huffman_bits(["x"] * 7) == (7, 5)


def test_relative_gaps_insert_fillers():
    alive = np.zeros(40, dtype=bool)
    alive[[2, 3, 39]] = True
    gaps, fillers = compression.relative_gaps(alive, gap_bits=3)  # largest gap 7
    assert gaps == [3, 1, 7, 7, 7, 7, 7, 1] and fillers == 5


def test_size_report_counts_every_bit():
    layer = torch.nn.Linear(8, 2)
    layer.weight.data = torch.tensor([[0.5, 0, 0, 0.5, 0, 0, 0, -0.5], [0, 0, 0.5, 0, 0, 0, 0, 0]])
    (r,) = compression.size_report(torch.nn.Sequential(layer), gap_bits=5)
    assert (r.weights, r.nonzero, r.codebook_bits, r.bias_bits) == (16, 4, 64, 64)
    # indices: 3 x value 0.5, 1 x -0.5 -> codes of 1 bit; gaps 1, 3, 5, 3 -> {1, 3, 5}: 2 + 1 + 2 + 1 bits
    assert (r.index_bits, r.gap_bits, r.table_bits) == (4, 6, 2 * 5 + 3 * 5)
    assert r.dense_bits == 32 * 18 and r.total_bits == 4 + 6 + 25 + 64 + 64


def test_pruned_binary_layers_export_their_zeros(tmp_path, digits):
    """A binary layer with a pruning mask: +-1 where kept, exactly 0 where removed, exported as a narrow 2-bit
    weight the compiler sees as sparsity; golden agrees with Brevitas."""
    cfg = _cfg(weights="binary", a_bits=1)
    model, _ = train.train(cfg, digits)
    names = list(compression.prunable(model))
    compression.set_masks(model, compression.magnitude_masks(model, {n: 0.25 for n in names}))
    model, _ = train.train(cfg, digits, model=model, after_step=compression.apply_masks)
    train.export_qonnx(model, (64,), tmp_path / "m.onnx")
    graph = build.compile_model(tmp_path / "m.onnx", tmp_path / "b")
    for node, name in zip(graph.matmuls(), names, strict=True):
        mask = getattr(compression.prunable(model)[name], compression.MASK).numpy().astype(bool)
        assert node.w_dtype.bits == 2 and set(np.unique(node.weights)) <= {-1, 0, 1}
        assert np.array_equal(node.weights != 0, mask)  # every kept weight is +-1, every pruned one 0
    x = digits.x_test
    assert np.array_equal(golden.predict_float(graph, x).argmax(1), train.evaluate(model, x).argmax(1))


def test_block_masks_remove_whole_blocks_by_l1_norm():
    layer = torch.nn.Linear(4, 4, bias=False)
    layer.weight.data = torch.tensor([[0.1, 0.1, 0.9, 0.9], [0.1, 0.1, 0.9, 0.9],
                                      [0.5, 0.5, 0.2, 0.1], [0.5, 0.5, 0.0, 0.0]])
    model = torch.nn.Sequential(layer)
    masks = compression.magnitude_masks(model, {"0": 0.5}, block=(2, 2))
    # block L1 norms: 0.4, 3.6 / 2.0, 0.3: the two largest stay, whole
    assert masks["0"].int().tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]]


def test_block_masks_of_a_convolution_follow_the_window_order():
    """A convolution's blocks are blocks of its unit matrix, outputs x (ky, kx, c): the tiles the RTL reads."""
    conv = torch.nn.Conv2d(2, 2, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(16, dtype=torch.float32).reshape(2, 2, 2, 2) + 1)
    masks = compression.magnitude_masks(torch.nn.Sequential(conv), {"0": 0.5}, block=(1, 4))
    window = masks["0"].permute(0, 2, 3, 1).reshape(2, -1).int()
    assert window.tolist() == [[0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1]]
    with pytest.raises(XnorkitError, match="not divisible into 2 x 3 blocks"):
        compression.magnitude_masks(torch.nn.Sequential(conv), {"0": 0.5}, block=(2, 3))
