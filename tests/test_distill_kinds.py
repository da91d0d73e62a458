"""Distillation losses (mimicking, noisy teacher) and FitNets' hint stage."""

import pytest
import torch

from xnorkit.quant_train import config, data, distill, train, zoo


def test_mimic_and_noisy_losses():
    torch.manual_seed(0)
    s, t, y = torch.randn(8, 10), torch.randn(8, 10), torch.randint(0, 10, (8,))
    ce = torch.nn.functional.cross_entropy(s, y)
    assert torch.allclose(distill.loss("mimic", s, t, y, 1.0, 0.5), 0.5 * ((s - t) ** 2).mean() + 0.5 * ce)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    noisy = distill.loss("noisy", s, t, y, 4.0, 0.7, noise=0.2, generator=g1)
    perturbed = t * (1 + 0.2 * torch.randn(t.shape, generator=g2))
    assert torch.allclose(noisy, distill.hinton_loss(s, perturbed, y, 4.0, 0.7))
    assert torch.allclose(distill.loss("noisy", s, t, y, 4.0, 0.7, noise=0.0), distill.hinton_loss(s, t, y, 4.0, 0.7))
    with pytest.raises(ValueError, match="hinton, mimic, noisy"):
        distill.loss("dark", s, t, y, 1.0, 0.5)


@pytest.mark.parametrize("kind,noise", [("mimic", 0.0), ("noisy", 0.3)])
def test_students_learn_with_every_kind(kind, noise):
    digits = data.load_digits()
    cfg = config.Config(model=config.ModelConfig(hidden=[32, 32]), train=config.TrainConfig(epochs=3))
    teacher, _ = train.train(cfg, digits, model=zoo.FloatMLP(64, [64], 10))
    _, metrics = train.train(cfg, digits, teacher=teacher, distill_kind=kind, noise=noise, alpha=0.5)
    assert metrics["test_accuracy"] > 0.6


def test_fitnets_hint_stage_reduces_the_hint_loss():
    digits = data.load_digits()
    x = torch.from_numpy(digits.x_train)
    cfg = config.Config(model=config.ModelConfig(hidden=[32, 32]), train=config.TrainConfig(epochs=3))
    teacher, _ = train.train(cfg, digits, model=zoo.FloatMLP(64, [64, 64], 10))
    student = train.build_model(cfg, digits)
    guided, hint = student.net[2], teacher.net[5]  # the student's second hidden block, the teacher's second ReLU
    head_before = [p.detach().clone() for p in student.net[3].parameters()]
    first = distill.fitnets_hints(student, teacher, guided, hint, x, epochs=1, lr=1e-3, seed=0)
    later = distill.fitnets_hints(student, teacher, guided, hint, x, epochs=5, lr=1e-3, seed=0)
    assert later < first
    assert all(torch.equal(a, b) for a, b in zip(head_before, student.net[3].parameters(), strict=True))
    _, metrics = train.train(cfg, digits, model=student, teacher=teacher)  # stage 2: distillation
    assert metrics["test_accuracy"] > 0.6
