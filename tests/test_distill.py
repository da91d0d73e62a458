import torch

from xnorkit.quant_train import config, data, train, zoo


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


class _CountingTeacher(torch.nn.Module):
    def __init__(self, teacher: torch.nn.Module):
        super().__init__()
        self.teacher, self.images = teacher, 0

    def forward(self, x):
        self.images += len(x)
        return self.teacher(x)


def test_the_teacher_labels_the_training_set_once_unless_images_are_shifted(monkeypatch):
    """Without augmentation the teacher (in eval mode) would label the same images every epoch, so it labels
    them once; with shifts every batch is new and is labelled as it comes."""
    digits = data.load_digits()
    cfg = config.Config(model=config.ModelConfig(hidden=[32]), train=config.TrainConfig(epochs=2, seed=3))
    torch.manual_seed(0)
    teacher = _CountingTeacher(zoo.FloatMLP(64, [64], 10))
    train.train(cfg, digits, teacher=teacher)
    assert teacher.images == len(digits.x_train)
    per_batch = _CountingTeacher(teacher.teacher)
    cfg_shift = cfg.model_copy(update={"train": cfg.train.model_copy(update={"shift": 1})})
    train.train(cfg_shift, digits, teacher=per_batch)
    assert per_batch.images == 2 * len(digits.x_train)  # every image of both epochs, shifted

    # the labels handed to the loss belong to the batch's images: a teacher that knows each image's label
    labels = {row.tobytes(): int(y) for row, y in zip(digits.x_train, digits.y_train, strict=True)}

    class Oracle(torch.nn.Module):
        def forward(self, x):
            return 10.0 * torch.nn.functional.one_hot(torch.tensor([labels[r.tobytes()] for r in x.numpy()]), 10)

    seen = []
    loss = train.distill.loss
    monkeypatch.setattr(train.distill, "loss", lambda kind, s, t, y, *a: seen.append((t, y)) or loss(kind, s, t, y, *a))
    train.train(cfg, digits, teacher=Oracle())
    assert len(seen) > 2 and all(torch.equal(t.argmax(1), y) for t, y in seen)


def test_shifted_images_keep_their_pixels_inside_the_frame():
    gen = torch.Generator().manual_seed(0)
    images = torch.zeros(50, 1, 8, 8)
    images[:, :, 3:5, 3:5] = torch.arange(1, 51, dtype=torch.float32)[:, None, None, None]
    shifted = train.shift_images(images.reshape(50, 64), (1, 8, 8), 2, gen).reshape(50, 1, 8, 8)
    assert torch.equal(shifted.sum((1, 2, 3)), images.sum((1, 2, 3)))  # translated, nothing lost or added
    assert not torch.equal(shifted, images)
    assert torch.equal(train.shift_images(images, (1, 8, 8), 0, gen), images)
