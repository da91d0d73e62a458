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

from xnorkit.quant_train import zoo


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


# --- SSL (Wen et al. 2016) for convolutional networks: filters, channels, filter shapes, residual blocks ---

def _conv_blocks(model: nn.Module) -> list[tuple[str, nn.Conv2d, nn.BatchNorm2d]]:
    """(name, conv, its batch-norm) for every conv block (zoo._Block) of a network, in forward order."""
    return [(name, m[0], m[1]) for name, m in model.named_modules()
            if isinstance(m, nn.Sequential) and len(m) == 3 and isinstance(m[0], nn.Conv2d)
            and isinstance(m[1], nn.BatchNorm2d)]


def conv_group_lasso(model: nn.Module, group: str) -> torch.Tensor:
    """Sum of the L2 norms of the groups of every convolution's latent weights (each scaled by 1/sqrt of
    the group size so that layers weigh alike):
    - "filters": one output channel (its kernel, with its batch-norm gamma and beta, so that a filter driven
      to zero outputs exactly zero after a ReLU quantizer and can be removed);
    - "channels": one input channel across all filters (a zeroed channel is unused and its producer's
      filter can be removed);
    - "shapes": one kernel position (input channel, row, column) across all filters (a zeroed position
      becomes a sparsity mask)."""
    total = torch.zeros(())
    for _, conv, bn in _conv_blocks(model):
        w = conv.weight
        if group == "filters":
            sq = (w ** 2).flatten(1).sum(1) / w[0].numel() + bn.weight ** 2 + bn.bias ** 2
        elif group == "channels":
            sq = (w ** 2).sum((0, 2, 3)) / (w.shape[0] * w.shape[2] * w.shape[3])
        elif group == "shapes":
            sq = (w ** 2).sum(0).flatten() / w.shape[0]
        else:
            raise ValueError(f"SSL group must be filters, channels or shapes (got {group})")
        total = total + torch.sqrt(sq + 1e-12).sum()
    return total


def block_group_lasso(model: zoo.ResNet) -> torch.Tensor:
    """SSL's depth: one group per residual block, all its branch's weights with the last batch-norm's gamma
    and beta; a block driven to zero adds exactly zero (after a ReLU quantizer) and can be removed."""
    total = torch.zeros(())
    for branch in model.blocks:
        if isinstance(branch, zoo.RemovedBlock):
            continue
        params = [p for m in branch.modules() if isinstance(m, nn.Conv2d) for p in (m.weight,)]
        last_bn = branch[-1][1]
        sq = sum((p ** 2).sum() / p.numel() for p in params) + (last_bn.weight ** 2).mean() + (last_bn.bias ** 2).mean()
        total = total + torch.sqrt(sq + 1e-12)
    return total


def zero_conv_groups(model: nn.Module, group: str, threshold: float) -> dict[str, torch.Tensor]:
    """Zero every group whose RMS latent weight is below `threshold` times its layer's largest, and return
    the masks (compression.set_masks keeps them at zero while fine-tuning, and through the export)."""
    masks = {}
    with torch.no_grad():
        for name, conv, bn in _conv_blocks(model):
            w = conv.weight
            if group == "filters":
                rms = (w ** 2).flatten(1).mean(1).sqrt()
                alive = (rms >= threshold * rms.max())[:, None, None, None].expand_as(w)
                dead = ~alive[:, 0, 0, 0]
                bn.weight[dead] = 0.0
                bn.bias[dead] = 0.0
            elif group == "channels":
                rms = (w ** 2).mean((0, 2, 3)).sqrt()
                alive = (rms >= threshold * rms.max())[None, :, None, None].expand_as(w)
            else:
                rms = (w ** 2).mean(0).sqrt()
                alive = (rms >= threshold * rms.max())[None].expand_as(w)
            masks[f"{name}.0"] = alive.clone()
            w.mul_(alive)
    return masks


@torch.no_grad()
def remove_blocks(model: zoo.ResNet, threshold: float) -> list[bool]:
    """Remove the residual blocks whose group (see block_group_lasso) is below `threshold` times the largest:
    their branch becomes a zoo.RemovedBlock, which neither the export nor the hardware computes. A branch
    whose group is exactly zero adds exactly zero under multi-bit (ReLU) activations, so removing it changes
    nothing; a small nonzero one is dropped with what it contributed (fine-tune afterwards). Returns which
    blocks were kept."""
    if any(isinstance(m, zoo.QuantIdentity) for b in model.blocks for m in b.modules()):
        raise ValueError("block removal needs multi-bit (ReLU) activations: a binary branch never outputs zero")
    norms = []
    for branch in model.blocks:
        convs = [m.weight for m in branch.modules() if isinstance(m, nn.Conv2d)]
        norms.append(float(sum((w ** 2).mean() for w in convs).sqrt()) if convs else 0.0)
    keep = [n > 0 and n >= threshold * max(norms) for n in norms]
    for i, kept in enumerate(keep):
        if not kept:
            model.blocks[i] = zoo.RemovedBlock()
    return keep


def input_group_lasso(model: nn.Module) -> torch.Tensor:
    """Feature selection (Scardapane et al. 2017): one group per input feature, its column of latent
    weights in the first weight layer, scaled by 1/sqrt(fan-out). A zeroed column means the feature (a
    pixel) is never read."""
    first = next(m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d))
    w = first.weight.flatten(2).sum(2) if first.weight.dim() == 4 else first.weight
    return torch.sqrt((w ** 2).sum(0) / w.shape[0] + 1e-12).sum()


def zero_inputs(model: nn.Module, threshold: float) -> tuple[dict[str, torch.Tensor], float]:
    """Zero the first layer's input columns whose RMS is below `threshold` times the largest; returns the
    mask (for compression.set_masks) and the fraction of input features dropped."""
    name, first = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear))
    with torch.no_grad():
        rms = (first.weight ** 2).mean(0).sqrt()
        alive = rms >= threshold * rms.max()
        mask = alive[None, :].expand_as(first.weight).clone()
        first.weight.mul_(mask)
    return {name: mask}, 1 - float(alive.float().mean())
