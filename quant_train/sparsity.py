"""Structured sparsity for MLPs with constant-scale (binary, ternary) weights: group lasso over neurons
(SSL; network slimming's batch-norm scales) and physical removal of the neurons it switches off.

A neuron's group is its batch-norm scale gamma together with its row of latent weights. A neuron whose
gamma is zero outputs a constant (its activation of beta), so removing it is exact: the constant times
the next layer's quantized weight column is a fixed vector, folded into that layer's batch-norm mean.
Nothing of a removed neuron reaches the exported model, the compiler or the hardware.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from quant_train import zoo


def _layers(model: zoo.MLP) -> list[tuple[nn.Module, nn.BatchNorm1d, nn.Module | None]]:
    """(linear, batch-norm, activation or None for the classifier) for every layer of a zoo MLP."""
    out = []
    for block in list(model.net)[1:]:
        out.append((block[0], block[1], block[2] if len(block) > 2 else None))
    return out


def neuron_group_lasso(model: zoo.MLP, with_rows: bool = True) -> torch.Tensor:
    """Sum over hidden neurons of the L2 norm of their group: gamma and (with_rows) the latent weight row
    scaled by 1 / sqrt(fan-in); gamma alone is network slimming's L1."""
    total = torch.zeros(())
    for linear, bn, act in _layers(model):
        if act is None:
            continue
        rows = (linear.weight ** 2).sum(dim=1) / linear.weight.shape[1] if with_rows else 0.0
        total = total + torch.sqrt(bn.weight ** 2 + rows + 1e-12).sum()
    return total


def hidden_gammas(model: zoo.MLP) -> list[np.ndarray]:
    return [bn.weight.detach().abs().numpy().copy() for _, bn, act in _layers(model) if act is not None]


@torch.no_grad()
def remove_neurons(model: zoo.MLP, keep: list[np.ndarray]) -> zoo.MLP:
    """A smaller MLP without the neurons whose `keep` entry is False, computing exactly what `model`
    computes once those neurons' gammas are zero (their constant outputs are folded forward)."""
    model.eval()
    layers = _layers(model)
    hidden = [int(k.sum()) for k in keep]
    if min(hidden, default=1) < 1:
        raise ValueError("every hidden layer must keep at least one neuron")
    first = layers[0][0]
    small = zoo.MLP(first.in_features, hidden, layers[-1][0].out_features, 1, 1, 5)
    small.net[0] = model.net[0]  # the same input quantizer
    for i, (linear, bn, act) in enumerate(layers):
        keep_out = keep[i] if act is not None else np.ones(linear.out_features, dtype=bool)
        keep_in = keep[i - 1] if i > 0 else np.ones(linear.in_features, dtype=bool)
        # the weight quantizer is shared: constant-scale (binary, ternary) weights keep their meaning
        new_linear = type(linear)(int(keep_in.sum()), int(keep_out.sum()), bias=False, weight_quant=linear.weight_quant)
        new_linear.weight.data = linear.weight.data[keep_out][:, keep_in].clone()
        new_bn = nn.BatchNorm1d(int(keep_out.sum()))
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(new_bn, name).data = getattr(bn, name).data[keep_out].clone()
        if i > 0 and (~keep_in).any():
            prev_bn, prev_act = layers[i - 1][1], layers[i - 1][2]
            constants = prev_act(prev_bn.bias.data[~keep_in].reshape(1, -1)).reshape(-1)  # gamma = 0: y = beta
            column = linear.quant_weight().value.detach()[keep_out][:, ~keep_in]
            new_bn.running_mean.data -= column @ constants
        small.net[1 + i] = nn.Sequential(new_linear, new_bn, *([act] if act is not None else []))
    return small


def prune_by_gamma(model: zoo.MLP, threshold: float) -> tuple[zoo.MLP, float]:
    """Zero the gammas below `threshold` (relative to each layer's largest), remove those neurons, and
    return the smaller model and the fraction of hidden neurons removed."""
    keep = []
    for _linear, bn, act in _layers(model):
        if act is None:
            continue
        g = bn.weight.detach().abs()
        mask = (g >= threshold * g.max()).numpy()
        if not mask.any():
            mask[int(g.argmax())] = True
        bn.weight.data[~torch.from_numpy(mask)] = 0.0
        keep.append(mask)
    total = sum(len(k) for k in keep)
    return remove_neurons(model, keep), 1 - sum(int(k.sum()) for k in keep) / total
