import torch

from quant_train import config, data, train, zoo


def test_distillation_loss_matches_its_definition():
    torch.manual_seed(0)
    s, t, y = torch.randn(8, 5), torch.randn(8, 5), torch.randint(0, 5, (8,))
    temperature, alpha = 3.0, 0.7
    p_t = torch.softmax(t / temperature, 1)
    kl = (p_t * (p_t.log() - torch.log_softmax(s / temperature, 1))).sum(1).mean()
    expected = alpha * temperature ** 2 * kl + (1 - alpha) * torch.nn.functional.cross_entropy(s, y)
    assert torch.allclose(train.distillation_loss(s, t, y, temperature, alpha), expected)
    assert torch.allclose(train.distillation_loss(s, t, y, temperature, 0.0), torch.nn.functional.cross_entropy(s, y))


def test_a_student_learns_from_a_float_teacher():
    digits = data.load_digits()
    cfg = config.Config(model=config.ModelConfig(hidden=[32, 32]), train=config.TrainConfig(epochs=3))
    teacher, _ = train.train(cfg, digits, model=zoo.FloatMLP(64, [64], 10))
    before = [p.detach().clone() for p in teacher.parameters()]
    student, metrics = train.train(cfg, digits, teacher=teacher)
    assert metrics["test_accuracy"] > 0.5
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters(), strict=True))  # the teacher is fixed
