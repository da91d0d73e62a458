"""Knowledge distillation: the student's losses against a teacher (any module taking the same input, float
or quantized), and FitNets' hint training.

- "hinton" (Hinton et al. 2015): alpha T^2 KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) CE(s, y).
- "mimic" (Ba & Caruana 2014, logit regression): alpha mean squared error between the logits + (1 - alpha) CE.
- "noisy" (Sau & Balasubramanian 2016, noisy teachers): the Hinton loss against teacher logits perturbed by
  multiplicative Gaussian noise, z (1 + noise N(0, 1)), drawn anew each step: a regularizer.
"""

from __future__ import annotations

import torch
from torch import nn

from xnorkit.quant_train.data import batches
from xnorkit.quant_train.models import plain

KINDS = ("hinton", "mimic", "noisy")


def hinton_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float,
                alpha: float) -> torch.Tensor:
    soft = nn.functional.kl_div(nn.functional.log_softmax(student / temperature, dim=1),
                                nn.functional.softmax(teacher / temperature, dim=1), reduction="batchmean")
    return alpha * temperature ** 2 * soft + (1 - alpha) * nn.functional.cross_entropy(student, labels)


def loss(kind: str, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float,
         alpha: float, noise: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    if kind == "hinton":
        return hinton_loss(student, teacher, labels, temperature, alpha)
    if kind == "mimic":
        return alpha * nn.functional.mse_loss(student, teacher) + (1 - alpha) * nn.functional.cross_entropy(
            student, labels)
    if kind == "noisy":
        perturbed = teacher * (1 + noise * torch.randn(teacher.shape, generator=generator))
        return hinton_loss(student, perturbed, labels, temperature, alpha)
    raise ValueError(f"distillation kind must be one of {', '.join(KINDS)} (got {kind})")


def _features(module: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen = []

    def hook(m, inputs, output):
        seen.append(plain(output))

    handle = layer.register_forward_hook(hook)
    try:
        module(x)
    finally:
        handle.remove()
    return seen[0].flatten(1)


def fitnets_hints(student: nn.Module, teacher: nn.Module, guided: nn.Module, hint: nn.Module, x: torch.Tensor,
                  epochs: int, lr: float, seed: int, batch_size: int = 256) -> float:
    """FitNets stage 1 (Romero et al. 2015): train the student up to its `guided` layer so that a learned
    linear regressor maps the guided layer's output onto the teacher's `hint` layer output (mean squared
    error). Only the student's parameters before and in the guided layer change (the others get no
    gradient from this loss); stage 2 is ordinary distillation (`train.train(teacher=...)`). Returns the
    final hint loss."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    teacher.eval()
    with torch.no_grad():
        student.eval()
        width_s = _features(student, guided, x[:2]).shape[1]
        width_t = _features(teacher, hint, x[:2]).shape[1]
    regressor = nn.Linear(width_s, width_t)
    params = [p for p in student.parameters() if p.requires_grad] + list(regressor.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    last = 0.0
    for _ in range(epochs):
        student.train()
        for idx in batches(len(x), batch_size, gen):
            with torch.no_grad():
                target = _features(teacher, hint, x[idx])
            hint_loss = nn.functional.mse_loss(regressor(_features(student, guided, x[idx])), target)
            opt.zero_grad()
            hint_loss.backward()
            opt.step()
            last = hint_loss.item()
    student.eval()
    return last
