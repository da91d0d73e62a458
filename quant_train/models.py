"""Quantizers shared by the model zoo (quant_train/zoo.py)."""

from __future__ import annotations

from brevitas.inject.enum import RestrictValueType, ScalingImplType
from brevitas.quant import SignedBinaryWeightPerTensorConst
from brevitas.quant.base import UintQuant
from brevitas.quant.solver import ActQuantSolver


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
