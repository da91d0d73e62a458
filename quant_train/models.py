"""Quantizers shared by the model zoo (quant_train/zoo.py)."""

from __future__ import annotations

import torch
from brevitas.core.function_wrapper import TensorClampSte
from brevitas.inject.enum import RestrictValueType, ScalingImplType, StatsOp
from brevitas.nn import QuantIdentity, QuantReLU
from brevitas.quant import (
    Int8WeightPerTensorFloat,
    SignedBinaryWeightPerTensorConst,
    SignedTernaryWeightPerTensorConst,
)
from brevitas.quant.base import UintQuant
from brevitas.quant.solver import ActQuantSolver
from torch import nn
from torch.nn.utils import parametrize


def plain(t) -> torch.Tensor:
    """The float tensor of a Brevitas QuantTensor (or the tensor itself)."""
    return t.value if hasattr(t, "value") else t


def pixel_quant(bits: int) -> type:
    """Unsigned integer input quantizer with scale fixed at 1: pixels 0 .. 2^bits - 1 pass exactly."""

    class PixelQuant(UintQuant, ActQuantSolver):
        bit_width = bits
        bit_width_impl_type = "const"
        scaling_impl_type = ScalingImplType.CONST
        scaling_per_output_channel = False
        restrict_scaling_type = RestrictValueType.FP
        min_val = 0.0
        max_val = float(2**bits - 1)

    return PixelQuant


class BinaryWeight(SignedBinaryWeightPerTensorConst):
    """Binary weights +-1 (Brevitas' default constant scale is 0.1; 1 keeps the integers readable)."""

    scaling_const = 1.0


def quantized_by(module: nn.Module, *quantizers: type) -> bool:
    """Whether a Brevitas layer's weights use one of these quantizers (or a subclass)."""
    proxy = getattr(module, "weight_quant", None)
    return proxy is not None and issubclass(getattr(proxy, "quant_injector", object), quantizers)


class SignOrZeroSte(nn.Module):
    """sign(x) in {-1, 0, +1} with a straight-through gradient: a weight the pruning mask zeroed stays 0."""

    def __init__(self) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + (torch.sign(x) - x).detach()


class PrunedBinaryWeight(SignedTernaryWeightPerTensorConst):
    """A pruned binary layer: +-1 where the mask keeps a weight, exactly 0 where it removed one. It exports
    as a narrow 2-bit integer weight (so the compiler sees the zeros as sparsity); a binary layer's quantizer
    becomes this one when it gets a pruning mask (quant_train.compression.set_masks)."""

    scaling_const = 1.0
    float_to_int_impl = SignOrZeroSte


class XnorWeight(SignedBinaryWeightPerTensorConst):
    """XNOR-Net weights: sign(W) times a per-output-channel alpha = mean |W|, recomputed every step.
    The clamp is not in place: Brevitas' default would squeeze the latent weights to alpha each step."""

    scaling_impl_type = ScalingImplType.STATS
    scaling_stats_op = StatsOp.AVE
    scaling_per_output_channel = True
    tensor_clamp_impl = TensorClampSte


class DoReFaWeight(Int8WeightPerTensorFloat):
    """DoReFa-Net's k-bit weights on [-1, 1] (the layer's weight is tanh-normalized first, see
    zoo.DoReFaNormalize). The grid is symmetric with a zero level (narrow range, scale 1 / (2^(k-1) - 1)):
    DoReFa's own grid has no zero and would need a half-integer zero point, which no integer datapath keeps."""

    scaling_impl_type = ScalingImplType.CONST
    scaling_const = 1.0
    narrow_range = True


class _QuantizeGradient(torch.autograd.Function):
    """Identity forward; backward quantizes the gradient to k bits as DoReFa-Net does: per sample,
    2 max|g| (round((g / 2max|g| + 1/2 + noise) (2^k - 1)) / (2^k - 1) - 1/2), noise uniform in one level."""

    @staticmethod
    def forward(ctx, x, bits):
        ctx.bits = bits
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        levels = 2 ** ctx.bits - 1
        scale = 2 * g.abs().flatten(1).amax(1).clamp_min(1e-12).view(-1, *([1] * (g.dim() - 1)))
        noise = (torch.rand_like(g) - 0.5) / levels
        q = torch.round((g / scale + 0.5 + noise).clamp(0, 1) * levels) / levels
        return scale * (q - 0.5), None


def quantize_gradients(model: nn.Module, bits: int) -> list:
    """Quantize the gradient leaving every activation of `model` while training (DoReFa's G bits). Forward
    and export are untouched. Returns the hook handles (`.remove()` them to stop)."""

    def hook(module, inputs, output):
        if module.training and isinstance(output, torch.Tensor):
            return _QuantizeGradient.apply(output, bits)
        return None

    return [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, QuantReLU | QuantIdentity)]


def unparametrize(model: nn.Module) -> None:
    """Turn every parametrized tensor of `model` (in place) into a plain parameter holding the value it
    produces. Unlike torch's remove_parametrizations this leaves the dynamically made Parametrized* class
    alone: copies of the model share it, and removing its property would break them."""
    for module in model.modules():
        if parametrize.is_parametrized(module):
            values = {name: getattr(module, name).detach().clone() for name in module.parametrizations}
            module.__class__ = module.__class__.__bases__[0]
            del module.parametrizations
            for name, value in values.items():
                module.register_parameter(name, nn.Parameter(value))
