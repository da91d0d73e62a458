"""Group lasso and physical neuron removal: removing neurons whose gamma is zero changes nothing."""

import copy

import numpy as np
import torch

from xnorkit import build, compare, golden
from xnorkit.quant_train import config, data, sparsity, train


def _small_trained():
    cfg = config.Config(model=config.ModelConfig(hidden=[24, 16]), train=config.TrainConfig(epochs=2))
    digits = data.load_digits()
    model, _ = train.train(cfg, digits, regularizer=sparsity.neuron_group_lasso, reg_weight=1e-3)
    return model, digits


def test_removal_is_exact_and_compiles(tmp_path):
    model, digits = _small_trained()
    reference = copy.deepcopy(model)
    keep = [np.arange(24) % 3 != 0, np.arange(16) % 2 == 0]  # remove 8 of 24 and 8 of 16
    for block, mask in zip(list(model.net)[1:3], keep, strict=True):
        block[1].weight.data[~torch.from_numpy(mask)] = 0.0
    small = sparsity.remove_neurons(model, keep)
    assert [m.out_features for m in small.modules() if isinstance(m, torch.nn.Linear)] == [16, 8, 10]
    x = digits.x_test
    zeroed = train.evaluate(model, x)  # the original with those gammas at zero
    pruned = train.evaluate(small, x)
    assert compare.float_rows_agree(pruned, zeroed, rtol=1e-5).all()
    assert np.array_equal(pruned.argmax(1), zeroed.argmax(1))
    train.export_qonnx(small, (64,), tmp_path / "m.onnx")
    graph = build.compile_model(tmp_path / "m.onnx", tmp_path / "b")
    assert compare.float_rows_agree(golden.predict_float(graph, x), pruned).all()
    assert [m.out_features for m in graph.matmuls()] == [16, 8, 10]
    assert not np.array_equal(train.evaluate(reference, x), zeroed)  # the zeroed gammas mattered


def test_prune_by_gamma_removes_the_small_ones():
    model, _ = _small_trained()
    gammas = sparsity.hidden_gammas(model)
    threshold = float(np.median(gammas[0] / gammas[0].max()))
    _, removed = sparsity.prune_by_gamma(model, threshold)
    assert 0.2 < removed < 0.9


def test_group_lasso_penalty_shrinks_gammas():
    model, _ = _small_trained()
    gammas = np.concatenate(sparsity.hidden_gammas(model))
    assert (gammas >= 0).all() and len(gammas) == 40
    penalty = sparsity.neuron_group_lasso(model)
    penalty.backward()
    assert model.net[1][1].weight.grad is not None
