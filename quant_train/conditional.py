"""Conditional computation: cost counting and the exit decisions of BranchyNet-style early exits.

A cascade runs its stages in order and stops at the first exit confident enough: BranchyNet's criterion is
the entropy of the exit's softmax, below a per-exit threshold calibrated on held-out data.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from xnorkit.quant_train import models, zoo
from xnorkit.quant_train.data import batches


def count_macs(module: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass of `module` on one input (`x` has a batch of one):
    every Linear and Conv2d (Brevitas' included), from the shapes actually seen."""
    total = 0

    def hook(layer, inputs, output):
        nonlocal total
        out = models.plain(output)
        if isinstance(layer, nn.Conv2d):
            k = layer.kernel_size[0] * layer.kernel_size[1] * layer.in_channels // layer.groups
            total += out[0].numel() * k
        else:
            total += layer.in_features * layer.out_features

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    return total


def entropy(logits: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each row's softmax."""
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    return -(p * np.log(np.clip(p, 1e-30, None))).sum(1)


def cascade(exits: list[np.ndarray], thresholds: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Predictions of a cascade and the exit each input left at: input i leaves at the first exit e whose
    entropy is at most thresholds[e]; the last exit takes everything left."""
    n = len(exits[-1])
    taken = np.full(n, len(exits) - 1)
    for e in reversed(range(len(exits) - 1)):
        taken = np.where(entropy(exits[e]) <= thresholds[e], e, taken)
    predictions = np.stack([out.argmax(1) for out in exits])[taken, np.arange(n)]
    return predictions, taken


def average_cost(taken: np.ndarray, cost_to_exit: list[int]) -> float:
    """Mean cost per input, where leaving at exit e costs cost_to_exit[e] (every stage before it included)."""
    return float(np.asarray(cost_to_exit, dtype=np.float64)[taken].mean())


def calibrate_single_exit(exit_logits: np.ndarray, final_logits: np.ndarray, labels: np.ndarray,
                          allowance: float) -> float:
    """The largest entropy threshold of a two-exit cascade whose accuracy on held-out data stays within
    `allowance` (a fraction) of always running to the end. Candidates are the observed entropies."""
    h = entropy(exit_logits)
    order = np.argsort(h, kind="stable")
    early_right = (exit_logits.argmax(1) == labels)[order]
    final_right = (final_logits.argmax(1) == labels)[order]
    # accuracy when the k lowest-entropy inputs leave early: their early answers, the rest's final ones
    accuracy = (np.cumsum(early_right) + final_right.sum() - np.cumsum(final_right)) / len(labels)
    ok = np.flatnonzero(accuracy >= final_right.mean() - allowance)
    if len(ok) == 0:
        return -1.0
    k = ok[-1]
    # ties: a threshold admits every input of equal entropy, so stop below the first tie that breaks it
    while k >= 0 and k + 1 < len(h) and h[order[k + 1]] == h[order[k]]:
        k -= 1
    return float(h[order[k]]) if k >= 0 else -1.0


def q_learning(model: nn.Module, x: torch.Tensor, rewards: torch.Tensor, epochs: int, lr: float,
               epsilon: float, seed: int, batch_size: int = 64) -> None:
    """Train the control node by Q-learning with an epsilon-greedy policy. Each input is a one-step episode:
    the node acts, the episode ends with reward rewards[i, action] (correctness minus a cost weight times
    the MACs the action spends), so the target of Q(s, a) is that reward; nothing is bootstrapped because
    no control node follows. The branches stay frozen (their batch-norms in eval mode)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.control.parameters(), lr=lr)
    model.eval()
    with torch.no_grad():
        hidden = model.control_state(x)
    model.control.train()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for epoch in range(epochs):
        explore = epsilon * (1 - epoch / epochs)  # decays to greedy
        for idx in batches(len(x), batch_size, gen):
            q = model.control(hidden[idx])
            greedy = q.argmax(1)
            random_action = torch.randint(0, 2, (len(idx),), generator=gen)
            act = torch.where(torch.rand(len(idx), generator=gen) < explore, random_action, greedy)
            target = rewards[idx, act]
            loss = nn.functional.mse_loss(q.gather(1, act[:, None]).squeeze(1), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    model.eval()


def d2nn_rewards(small_logits: np.ndarray, large_logits: np.ndarray, labels: np.ndarray, cost_small: float,
                 cost_large: float, cost_weight: float) -> np.ndarray:
    """Reward per input and action: 1 if the answer is right, minus cost_weight times the MACs spent as a
    fraction of the large branch's (stop: the small branch; go: both)."""
    right_small = (small_logits.argmax(1) == labels).astype(np.float32)
    right_large = (large_logits.argmax(1) == labels).astype(np.float32)
    stop = right_small - cost_weight * cost_small / cost_large
    go = right_large - cost_weight * (cost_small + cost_large) / cost_large
    return np.stack([stop, go], axis=1)


def train_branches(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, seed: int,
                   batch_size: int = 64) -> None:
    """D2NN's first phase: both branches of a `zoo.D2NN` learn the labels (the sum of their cross-entropies);
    the control node is left to `q_learning`."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.branch_parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for _ in range(epochs):
        model.train()
        for idx in batches(len(x), batch_size, gen):
            small, _, large = model(x[idx])
            loss = nn.functional.cross_entropy(small, y[idx]) + nn.functional.cross_entropy(large, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            zoo.clip_binary_weights(model)
        sched.step()
    model.eval()


def act_step(h: torch.Tensor, cumulative: torch.Tensor, last: bool, epsilon: float
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One block of adaptive computation time (Graves 2016; Figurnov et al. 2017 for ResNets), for any
    shape of halting score (per image, or per position for spatially adaptive ACT). `cumulative` holds the
    halting scores summed so far. A unit still running executes this block; it halts here once its sum
    reaches 1 - epsilon (or at the last block), and then weighs the block's output with the remainder
    1 - (sum before), else with h. Returns (weight of this block's output, new cumulative sum, executed
    (0/1), remainder where it halted here else 0)."""
    running = (cumulative < 1 - epsilon).to(h.dtype)
    h = torch.ones_like(h) if last else h
    halts = running * ((cumulative + h) >= 1 - epsilon).to(h.dtype)
    remainder = halts * (1 - cumulative)
    weight = remainder + (running - halts) * h
    return weight, cumulative + running * h, running, remainder
