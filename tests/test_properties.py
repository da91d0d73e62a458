"""Property-based: random small layer stacks within the supported set never disagree with Brevitas
(floats, argmax) or with qonnx (every quantized tensor, exactly). Derandomized, so CI is repeatable."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import (
    Int8ActPerTensorFloat,
    Int8WeightPerChannelFloat,
    Int8WeightPerTensorFloat,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
    SignedTernaryWeightPerTensorConst,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from tests.conftest import check_exact
from tests.test_model_matrix import _randomize_batchnorm_any

WEIGHTS = ["binary", "ternary", "int2", "int3", "int4"]


def weight_kwargs(kind: str, per_channel: bool) -> dict:
    if kind == "binary":
        return {"weight_quant": SignedBinaryWeightPerTensorConst}
    if kind == "ternary":
        return {"weight_quant": SignedTernaryWeightPerTensorConst}
    quant = Int8WeightPerChannelFloat if per_channel else Int8WeightPerTensorFloat
    return {"weight_quant": quant, "weight_bit_width": int(kind[3:])}


def act_module(bits: int, signed: bool) -> nn.Module:
    if bits == 1:
        return QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
    return QuantIdentity(act_quant=Int8ActPerTensorFloat, bit_width=bits) if signed else QuantReLU(bit_width=bits)


layer = st.fixed_dictionaries({
    "width": st.integers(2, 10), "weights": st.sampled_from(WEIGHTS), "per_channel": st.booleans(),
    "act_bits": st.sampled_from([1, 2, 3, 4]), "signed": st.booleans(), "kernel": st.sampled_from([1, 3]),
    "pad": st.integers(0, 1), "stride": st.integers(1, 2), "pool": st.booleans(),
})
network = st.fixed_dictionaries({
    "conv": st.booleans(), "input_bits": st.integers(4, 8), "layers": st.lists(layer, min_size=1, max_size=3),
    "seed": st.integers(0, 1000),
})


def build_model(spec: dict) -> tuple[nn.Module, tuple[int, ...]]:
    mods: list[nn.Module] = [QuantIdentity(bit_width=spec["input_bits"], return_quant_tensor=True)]
    if spec["conv"]:
        channels, size = 1, 8
        for ly in spec["layers"]:
            size = (size + 2 * ly["pad"] - ly["kernel"]) // ly["stride"] + 1
            assume(size >= 1)
            conv = QuantConv2d(channels, ly["width"], ly["kernel"], stride=ly["stride"], padding=ly["pad"],
                               bias=False, **weight_kwargs(ly["weights"], ly["per_channel"]))
            mods += [conv,
                     nn.BatchNorm2d(ly["width"]), act_module(ly["act_bits"], ly["signed"])]
            if ly["pool"] and size >= 2:
                mods.append(nn.MaxPool2d(2))
                size //= 2
            channels = ly["width"]
        mods.append(nn.Flatten())
        width, shape = channels * size * size, (1, 8, 8)
    else:
        width, shape = 12, (12,)
        for ly in spec["layers"]:
            mods += [QuantLinear(width, ly["width"], bias=False, **weight_kwargs(ly["weights"], ly["per_channel"])),
                     nn.BatchNorm1d(ly["width"]), act_module(ly["act_bits"], ly["signed"])]
            width = ly["width"]
    last = spec["layers"][-1]
    mods += [QuantLinear(width, 4, bias=True, **weight_kwargs(last["weights"], last["per_channel"])), nn.BatchNorm1d(4)]
    return nn.Sequential(*mods), shape


def _check_stack(tmp_path, spec):
    torch.manual_seed(spec["seed"])
    model, shape = build_model(spec)
    _randomize_batchnorm_any(model, spec["seed"])
    x = np.random.default_rng(spec["seed"]).normal(0, 0.7, size=(120, *shape)).astype(np.float32)
    check_exact(model, x, tmp_path / f"s{spec['seed']}_{len(spec['layers'])}_{int(spec['conv'])}", calibrate=32)


_SETTINGS = {"deadline": None, "derandomize": True,
             "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}


@settings(max_examples=12, **_SETTINGS)
@given(spec=network)
def test_random_stacks_agree(tmp_path, spec):
    _check_stack(tmp_path, spec)


@pytest.mark.slow
@settings(max_examples=80, **_SETTINGS)
@given(spec=network)
def test_many_random_stacks_agree(tmp_path, spec):
    """The exhaustive version (`make test-all`)."""
    _check_stack(tmp_path, spec)
