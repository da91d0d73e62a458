"""Brevitas models. The binary MLP of FINN's TFC/SFC/LFC family, with an integer-pixel input."""

from __future__ import annotations

import torch
from brevitas.inject.enum import RestrictValueType, ScalingImplType
from brevitas.nn import QuantIdentity, QuantLinear
from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
from brevitas.quant.base import UintQuant
from brevitas.quant.solver import ActQuantSolver
from torch import nn


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


class BinaryMLP(nn.Module):
    """Integer pixels -> [binary-weight Linear -> BatchNorm -> sign] x hidden -> binary-weight Linear ->
    BatchNorm (the output affine, as FINN's TensorNorm)."""

    def __init__(self, in_features: int, hidden: list[int], num_classes: int, input_bits: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [QuantIdentity(act_quant=pixel_quant(input_bits), return_quant_tensor=True)]
        width = in_features
        for h in hidden:
            layers += [
                QuantLinear(width, h, bias=False, weight_quant=BinaryWeight),
                nn.BatchNorm1d(h),
                QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
            ]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        layers += [QuantLinear(width, num_classes, bias=False, weight_quant=BinaryWeight),
                   nn.BatchNorm1d(num_classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
