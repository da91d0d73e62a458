"""Training options: BNN latent-weight clipping, dropout (gone at export), XNOR-Net's alpha, DoReFa's weight
transform and gradient quantization."""

import numpy as np
import pytest
import torch

from tests.conftest import check_exact
from xnorkit.quant_train import config, data, train, zoo
from xnorkit.quant_train.models import _QuantizeGradient


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


def _cfg(**model):
    return config.Config(model=config.ModelConfig(hidden=[32, 32], **model),
                         train=config.TrainConfig(epochs=2, batch_size=64, lr=0.05))


def test_binary_latent_weights_are_clipped(digits):
    model, _ = train.train(_cfg(), digits)
    assert max(float(m.weight.abs().max()) for m in model.modules() if isinstance(m, torch.nn.Linear)) <= 1.0


def test_dropout_trains_and_exports_exactly(tmp_path, digits):
    model, _ = train.train(_cfg(dropout=0.2), digits)
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.modules()) == 2
    check_exact(model, digits.x_test[:100], tmp_path)


def test_xnor_alpha_is_mean_absolute_weight_per_channel():
    layer = zoo.weight_layer(torch.nn.Module(), 1)  # no transform for plain specs
    assert not torch.nn.utils.parametrize.is_parametrized(layer)
    from brevitas.nn import QuantLinear

    layer = QuantLinear(6, 3, bias=False, **zoo.weight_quant("xnor"))
    w = layer.weight.detach().clone()
    q = layer.quant_weight()
    assert torch.allclose(q.scale.flatten(), w.abs().mean(1))
    assert torch.equal(q.value, torch.sign(w) * w.abs().mean(1, keepdim=True))
    assert torch.equal(layer.weight.detach(), w)  # the latent weights are not clamped in place


def test_dorefa_weights_are_tanh_normalized_on_a_symmetric_grid():
    from brevitas.nn import QuantLinear

    layer = zoo.weight_layer(QuantLinear(8, 4, bias=False, **zoo.weight_quant("dorefa3")), "dorefa3")
    t = torch.tanh(layer.parametrizations.weight.original.detach())
    expected = torch.round(t / t.abs().max() * 3) / 3  # 3 bits: levels -1, -2/3 .. 1
    assert torch.allclose(layer.quant_weight().value, expected)


def test_dorefa_activations_clip_to_one():
    act = zoo.activation("dorefa2")
    assert torch.allclose(act(torch.tensor([-1.0, 0.2, 0.5, 0.9, 3.0])), torch.tensor([0, 1, 2, 3, 3]) / 3)


def test_gradient_quantization_has_two_to_the_k_levels():
    torch.manual_seed(0)
    x = torch.randn(4, 50, requires_grad=True)
    g = torch.randn(4, 50)
    _QuantizeGradient.apply(x, 2).backward(g)
    for row, grad in zip(x.grad, g, strict=True):
        levels = torch.unique(torch.round(row / (2 * grad.abs().max()) * 3 * 1e4) / 1e4)
        assert len(levels) <= 4  # 2 bits; the scale is the sample's own
    # stochastic rounding is unbiased: 0.1 of a row whose largest gradient is 1 lands on -1/3 or 1/3 of it
    many = torch.zeros((4000, 2), requires_grad=True)
    _QuantizeGradient.apply(many, 2).backward(torch.tensor([[0.1, 1.0]]).expand(4000, 2))
    assert set(np.round(many.grad[:, 0].numpy() * 3, 3)) == {-1.0, 1.0}
    assert np.isclose(float(many.grad[:, 0].mean()), 0.1, atol=0.02)


def test_training_with_quantized_gradients_learns(digits):
    cfg = _cfg(weights="dorefa2", a_bits=2, activations="dorefa")
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"grad_bits": 8, "epochs": 4, "lr": 0.01})})
    model, metrics = train.train(cfg, digits)
    assert metrics["test_accuracy"] > 0.7
    hooks = [h for m in model.modules() for h in m._forward_hooks.values()]
    assert not any("quantize_gradients" in getattr(h, "__qualname__", "") for h in hooks)  # removed after training


def test_stochastic_depth_drops_branches_only_while_training(tmp_path, digits):
    cfg = config.Config(model=config.ModelConfig(kind="resnet", weights="int4", a_bits=4, survival=0.5),
                        train=config.TrainConfig(epochs=1, batch_size=64))
    model, _ = train.train(cfg, digits)
    x = torch.from_numpy(digits.x_test[:64].reshape(-1, 1, 8, 8))
    model.eval()
    with torch.no_grad():
        eval_out = model(x)
        model.survival = 1.0
        assert torch.equal(model(x), eval_out)  # inference never drops or rescales
        model.train()
        full = model(x)
        model.survival = 0.5
        torch.manual_seed(1)
        dropped = model(x)
    assert not torch.equal(full, dropped)
    model.survival = 0.5
    check_exact(model, digits.x_test[:100].reshape(-1, 1, 8, 8), tmp_path)
