"""The model zoo: the networks of the binary/low-bit literature at any weight and activation width.

`build(name, w_bits, a_bits, image_shape, num_classes, input_bits)` returns a Brevitas module whose
forward takes the layout `input_shape(name, image_shape)` gives ((N, features) for MLPs, (N, C, H, W) for
CNNs) and returns the logits, or a tuple (early exits..., final) for B-LeNet.
Weight widths: 1 (binary, constant scale 1), "t" (ternary), 2..8 (per-channel float scales, as XNOR-Net's
alpha). Activation widths: 1 (binary sign), 2..8 (unsigned, after ReLU).
"""

from __future__ import annotations

import math

import torch
from brevitas.inject.enum import ScalingImplType
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import Int8WeightPerChannelFloat, SignedBinaryActPerTensorConst, SignedTernaryWeightPerTensorConst
from torch import nn
from torch.nn.utils import parametrize

from xnorkit.errors import XnorkitError
from xnorkit.quant_train.models import (
    BinaryWeight,
    DoReFaWeight,
    PrunedBinaryWeight,
    XnorWeight,
    pixel_quant,
    plain,
    quantized_by,
)

MLPS = {"tfc": [64, 64, 64], "sfc": [256, 256, 256], "lfc": [1024, 1024, 1024], "lenet300": [300, 100]}
CNNS = ("lenet5", "cnv", "blenet", "resnet", "squeezenet")
NAMES = (*MLPS, *CNNS)


def bits_of(spec: int | str) -> int:
    """The bit width of a weight or activation spec (1, "t", k, "xnor", "dorefa<k>")."""
    if spec in ("t", "xnor"):
        return 2 if spec == "t" else 1
    return int(spec[6:]) if isinstance(spec, str) else int(spec)


def weight_quant(spec: int | str) -> dict:
    """Constructor arguments of a weight layer for a weight spec: 1 (BNN: +-1), "xnor" (XNOR-Net: +-alpha per
    output channel, alpha = mean |W|), "t" (ternary), k (k-bit, per-channel float scale) or "dorefa<k>"
    (DoReFa: k-bit on the tanh-normalized weight, see `DoReFaNormalize`)."""
    if spec == 1:
        return {"weight_quant": BinaryWeight}
    if spec == "xnor":
        return {"weight_quant": XnorWeight}
    if spec == "t":
        return {"weight_quant": SignedTernaryWeightPerTensorConst}
    if isinstance(spec, str) and spec.startswith("dorefa"):
        return {"weight_quant": DoReFaWeight, "weight_bit_width": bits_of(spec)}
    return {"weight_quant": Int8WeightPerChannelFloat, "weight_bit_width": int(spec)}


class DoReFaNormalize(nn.Module):
    """DoReFa-Net's weight transform: tanh(W) / max|tanh(W)|, in [-1, 1], before the k-bit quantizer."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        t = torch.tanh(w)
        return t / t.abs().max().clamp_min(1e-8)


def weight_layer(layer: nn.Module, spec: int | str) -> nn.Module:
    """`layer` (built with `weight_quant(spec)`), with the DoReFa transform attached where the spec asks."""
    if isinstance(spec, str) and spec.startswith("dorefa"):
        parametrize.register_parametrization(layer, "weight", DoReFaNormalize())
    return layer


def activation(spec: int | str, shared: nn.Module | None = None) -> nn.Module:
    """A quantized activation: 1 (binary sign), k (unsigned after ReLU, learned scale) or "dorefa<k>"
    (DoReFa: clip to [0, 1], k bits). `shared` reuses another activation's quantizer (one scale for tensors
    that are added or concatenated)."""
    bits = bits_of(spec)
    if bits == 1:
        return QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
    if shared is not None:
        return QuantReLU(act_quant=shared.act_quant)
    if isinstance(spec, str):
        return QuantReLU(bit_width=bits, scaling_impl_type=ScalingImplType.CONST, max_val=1.0)
    return QuantReLU(bit_width=bits)


def clip_binary_weights(model: nn.Module) -> None:
    """BNN (Courbariaux et al.): keep latent binary weights in [-scale, scale], where the clamped
    straight-through estimator still passes gradients; a weight beyond it would never flip again."""
    with torch.no_grad():
        for module in model.modules():
            proxy = getattr(module, "weight_quant", None)
            if quantized_by(module, BinaryWeight, PrunedBinaryWeight):
                scale = float(proxy.scale().max())
                module.weight.clamp_(-scale, scale)


class _Block(nn.Sequential):
    """Conv (or Linear) -> BatchNorm -> quantized activation."""

    def __init__(self, layer: nn.Module, channels: int, a_bits: int, conv: bool, shared: nn.Module | None = None):
        norm = nn.BatchNorm2d(channels) if conv else nn.BatchNorm1d(channels)
        super().__init__(layer, norm, activation(a_bits, shared))


def _conv(c_in: int, c_out: int, k: int, w_bits, a_bits: int, pad: int = 0, stride: int = 1, **kw) -> _Block:
    conv = QuantConv2d(c_in, c_out, k, padding=pad, stride=stride, bias=False, **weight_quant(w_bits))
    return _Block(weight_layer(conv, w_bits), c_out, a_bits, True, **kw)


def _fc(f_in: int, f_out: int, w_bits, a_bits: int) -> _Block:
    return _Block(weight_layer(QuantLinear(f_in, f_out, bias=False, **weight_quant(w_bits)), w_bits), f_out, a_bits,
                  False)


def _classifier(f_in: int, classes: int, w_bits) -> nn.Sequential:
    # the output affine is a batch-norm (FINN's TensorNorm): the last layer's integers map to logits
    layer = weight_layer(QuantLinear(f_in, classes, bias=False, **weight_quant(w_bits)), w_bits)
    return nn.Sequential(layer, nn.BatchNorm1d(classes))


class MLP(nn.Module):
    def __init__(self, features: int, hidden: list[int], classes: int, w_bits, a_bits: int, input_bits: int,
                 dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [QuantIdentity(act_quant=pixel_quant(input_bits), return_quant_tensor=True)]
        for h in hidden:
            layers.append(_fc(features, h, w_bits, a_bits))
            if dropout:  # an identity at inference: nothing of it reaches the export
                layers.append(nn.Dropout(dropout))
            features = h
        layers.append(_classifier(features, classes, w_bits))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class FloatMLP(nn.Module):
    """An unquantized MLP (Linear, BatchNorm, ReLU, optional dropout): a teacher for knowledge distillation
    (Hinton et al. regularize theirs with dropout, so that its soft targets on its own training images still
    rank the wrong classes); without batch-norm, the float reference of Deep Compression's LeNet-300-100."""

    def __init__(self, features: int, hidden: list[int], classes: int, norm: bool = True, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(features, h), *([nn.BatchNorm1d(h)] if norm else []), nn.ReLU(),
                       *([nn.Dropout(dropout)] if dropout else [])]
            features = h
        layers.append(nn.Linear(features, classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class D2NN(nn.Module):
    """A D2NN (Liu & Deng 2018) cascade: a small branch, a control node reading the small branch's quantized
    hidden activations, and a large branch; conditional.q_learning trains the node. The node's first layer
    recomputes the small branch's logits (8-bit ReLU; `init_control` copies the head into it, since how
    sure the small branch is lives there), then one hidden layer and the two outputs. Its
    two outputs are Q-values of the actions (0: answer with the small branch, 1: run the large one); argmax
    picks one. Every layer is quantized, so the compiled graph keeps the decision: forward returns
    (small logits, Q-values, large logits), the three outputs `xnorkit predict` writes side by side."""

    def __init__(self, features: int, classes: int, small: int, large: list[int], w_bits, a_bits, input_bits: int,
                 control: int = 32, control_bits: int = 8):
        super().__init__()
        self.inp = QuantIdentity(act_quant=pixel_quant(input_bits), return_quant_tensor=True)
        self.small = _fc(features, small, w_bits, a_bits)
        self.small_head = _classifier(small, classes, w_bits)
        c = control_bits  # the node is tiny: its own (higher) precision costs little and sharpens the decision
        self.control = nn.Sequential(_fc(small, classes, c, c), _fc(classes, control, c, c), _classifier(control, 2, c))
        layers, width = [], features
        for h in large:
            layers.append(_fc(width, h, w_bits, a_bits))
            width = h
        self.large = nn.Sequential(*layers, _classifier(width, classes, w_bits))

    def forward(self, x):
        x = self.inp(x)
        hidden = self.small(x)
        return self.small_head(hidden), self.control(hidden), self.large(x)

    def control_state(self, x):
        """What the control node reads: the small branch's hidden activations."""
        return self.small(self.inp(x))

    @torch.no_grad()
    def init_control(self, x: torch.Tensor) -> None:
        """Start the control node's first layer as a copy of the small branch's head (weights, batch-norm),
        its affine scaled so that the largest logit on `x` lands at the top of the 8-bit activation's range:
        uncalibrated, logits of 10 or more saturate and the margin between the top two, which says how
        sure the small branch is, is lost."""
        self.eval()
        head, norm, act = self.control[0]
        head.load_state_dict(self.small_head[0].state_dict())
        norm.load_state_dict(self.small_head[1].state_dict())
        logits = plain(self.small_head(self.control_state(x)))
        top = float(act.act_quant.scale()) * (2 ** int(act.act_quant.bit_width()) - 1)
        shrink = top / max(float(logits.max()), 1e-6)
        norm.weight.mul_(shrink)
        norm.bias.mul_(shrink)

    def branch_parameters(self):
        return [p for name, p in self.named_parameters() if not name.startswith("control.")]


class _CNN(nn.Module):
    """Features (a module list, run in order) -> flatten -> classifier; the flatten size is measured."""

    def __init__(self, image_shape: tuple[int, int, int], input_bits: int):
        super().__init__()
        self.image_shape = image_shape
        self.inp = QuantIdentity(act_quant=pixel_quant(input_bits), return_quant_tensor=True)

    def _flat_size(self, features: nn.Module) -> int:
        with torch.no_grad():
            features.eval()
            return int(math.prod(features(torch.zeros(1, *self.image_shape)).shape[1:]))


class LeNet5(_CNN):
    def __init__(self, image_shape, classes, w_bits, a_bits, input_bits):
        super().__init__(image_shape, input_bits)
        c = image_shape[0]
        self.features = nn.Sequential(_conv(c, 6, 5, w_bits, a_bits, pad=2), nn.MaxPool2d(2),
                                      _conv(6, 16, 5, w_bits, a_bits, pad=2), nn.MaxPool2d(2), nn.Flatten())
        flat = self._flat_size(self.features)
        self.head = nn.Sequential(_fc(flat, 120, w_bits, a_bits), _fc(120, 84, w_bits, a_bits),
                                  _classifier(84, classes, w_bits))

    def forward(self, x):
        return self.head(self.features(self.inp(x)))


class CNV(_CNN):
    """A small CNV (FINN's CIFAR net, scaled to small images): 2 x (conv, conv, pool), 2 FC."""

    def __init__(self, image_shape, classes, w_bits, a_bits, input_bits):
        super().__init__(image_shape, input_bits)
        c = image_shape[0]
        self.features = nn.Sequential(
            _conv(c, 16, 3, w_bits, a_bits, pad=1), _conv(16, 16, 3, w_bits, a_bits, pad=1), nn.MaxPool2d(2),
            _conv(16, 32, 3, w_bits, a_bits, pad=1), _conv(32, 32, 3, w_bits, a_bits, pad=1), nn.MaxPool2d(2),
            nn.Flatten())
        flat = self._flat_size(self.features)
        self.head = nn.Sequential(_fc(flat, 64, w_bits, a_bits), _classifier(64, classes, w_bits))

    def forward(self, x):
        return self.head(self.features(self.inp(x)))


class FinnCNV(_CNN):
    """FINN's CNV at its own size (Umuroglu et al., FPGA 2017): a 3 x 32 x 32 image, unpadded 3x3 convolutions
    of 64, 64, (max-pool) 128, 128, (max-pool) 256, 256 channels, fully connected 512, 512, classes. For hardware
    comparisons with FINN's published CNV figures; CIFAR-10 is not part of xnorkit's datasets."""

    def __init__(self, image_shape, classes, w_bits, a_bits, input_bits):
        super().__init__(image_shape, input_bits)
        c, blocks = image_shape[0], []
        for out_c, pool in ((64, False), (64, True), (128, False), (128, True), (256, False), (256, False)):
            blocks.append(_conv(c, out_c, 3, w_bits, a_bits))
            if pool:
                blocks.append(nn.MaxPool2d(2))
            c = out_c
        self.features = nn.Sequential(*blocks, nn.Flatten())
        flat = self._flat_size(self.features)
        self.head = nn.Sequential(_fc(flat, 512, w_bits, a_bits), _fc(512, 512, w_bits, a_bits),
                                  _classifier(512, classes, w_bits))

    def forward(self, x):
        return self.head(self.features(self.inp(x)))


def finn_cnv(w_bits: int | str, a_bits: int, classes: int = 10, input_bits: int = 8, seed: int = 0) -> nn.Module:
    """FINN's CNV topology (FinnCNV) on 3 x 32 x 32 images, untrained: seeded weights, and batch-norm statistics
    measured on seeded random images (with_random_statistics), in eval mode."""
    torch.manual_seed(seed)
    return with_random_statistics(FinnCNV((3, 32, 32), classes, w_bits, a_bits, input_bits), (3, 32, 32), seed)


def finn_mlp(name: str, seed: int = 0) -> nn.Module:
    """FINN's SFC or LFC W1A1 (BNN-PYNQ): 784 -> 3 x 256 (SFC) or 3 x 1024 (LFC) -> 10, binary weights and
    activations, and binarized input pixels (-1 / +1, as BNN-PYNQ feeds them), untrained: seeded weights and
    batch-norm statistics from random inputs (with_random_statistics)."""
    if name not in ("sfc", "lfc"):
        raise XnorkitError(f"FINN's MLPs are sfc and lfc, not '{name}'")
    torch.manual_seed(seed)
    model = MLP(784, MLPS[name], 10, 1, 1, 8)
    model.net[0] = QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
    return with_random_statistics(model, (784,), seed, centered=True)


def with_random_statistics(model: nn.Module, input_shape: tuple[int, ...], seed: int = 0,
                           batches: int = 3, centered: bool = False) -> nn.Module:
    """`model` with its batch-norm running statistics measured on seeded uniform random inputs (in [0, 1), or
    [-1, 1) when `centered`), in eval mode: an untrained network whose thresholds fall within its accumulators'
    range, as a trained one's do (for hardware figures where no dataset is at hand)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches
    generator = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            x = torch.rand((64, *input_shape), generator=generator)
            model(2 * x - 1 if centered else x)
    return model.eval()


class BLeNet(_CNN):
    """B-LeNet (BranchyNet): LeNet-5 with one early exit after the first convolution block. Returns
    (exit logits, final logits)."""

    def __init__(self, image_shape, classes, w_bits, a_bits, input_bits):
        super().__init__(image_shape, input_bits)
        c = image_shape[0]
        self.stem = nn.Sequential(_conv(c, 6, 5, w_bits, a_bits, pad=2), nn.MaxPool2d(2))
        stem_out = self._flat_size(self.stem)
        self.exit = nn.Sequential(nn.Flatten(), _classifier(stem_out, classes, w_bits))
        self.trunk = nn.Sequential(_conv(6, 16, 5, w_bits, a_bits, pad=2), nn.MaxPool2d(2), nn.Flatten())
        flat = self._flat_size(nn.Sequential(self.stem, self.trunk))
        self.head = nn.Sequential(_fc(flat, 84, w_bits, a_bits), _classifier(84, classes, w_bits))

    def forward(self, x):
        s = self.stem(self.inp(x))
        return self.exit(s), self.head(self.trunk(s))


class RemovedBlock(nn.Module):
    """Stands where structured sparsity removed a residual branch: the block adds nothing."""

    def forward(self, x):
        raise RuntimeError("a removed residual block is never run")


class ResNet(_CNN):
    """A small residual net: a stem and two residual blocks whose branch and shortcut share a quantizer.
    `survival` < 1 trains with stochastic depth (Huang et al. 2016): block l of L keeps its branch with
    probability 1 - l/L (1 - survival), linear decay to `survival` at the last. A kept branch is scaled by
    1 / probability while training, so inference (and the export) runs every block unscaled."""

    def __init__(self, image_shape, classes, w_bits, a_bits, input_bits, width: int = 16, survival: float = 1.0):
        super().__init__(image_shape, input_bits)
        self.survival = survival
        self.stem = _conv(image_shape[0], width, 3, w_bits, a_bits, pad=1)
        self.blocks = nn.ModuleList()
        self.shortcuts = nn.ModuleList()
        self.outs = nn.ModuleList()
        for _ in range(2):
            branch = nn.Sequential(_conv(width, width, 3, w_bits, a_bits, pad=1),
                                   _conv(width, width, 3, w_bits, a_bits, pad=1))
            self.blocks.append(branch)
            self.shortcuts.append(activation(a_bits, shared=branch[1][2]) if bits_of(a_bits) > 1 else nn.Identity())
            self.outs.append(activation(a_bits))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.requant = activation(a_bits) if bits_of(a_bits) > 1 else nn.Identity()
        self.head = _classifier(width, classes, w_bits)

    def forward(self, x):
        x = self.stem(self.inp(x))
        for depth, (branch, shortcut, out) in enumerate(zip(self.blocks, self.shortcuts, self.outs, strict=True)):
            if isinstance(branch, RemovedBlock):
                x = out(shortcut(x))
                continue
            residual = branch(x)
            if self.training and self.survival < 1:
                p = 1 - (depth + 1) / len(self.blocks) * (1 - self.survival)
                residual = residual * (torch.rand(len(residual), 1, 1, 1) < p).to(residual.dtype) / p
            x = out(residual + shortcut(x))
        return self.head(torch.flatten(self.requant(self.pool(x)), 1))


class Fire(nn.Module):
    def __init__(self, c_in: int, squeeze: int, expand: int, w_bits, a_bits: int):
        super().__init__()
        self.squeeze = _conv(c_in, squeeze, 1, w_bits, a_bits)
        self.expand1 = _conv(squeeze, expand, 1, w_bits, a_bits)
        self.expand3 = _conv(squeeze, expand, 3, w_bits, a_bits, pad=1,
                             shared=self.expand1[2] if bits_of(a_bits) > 1 else None)

    def forward(self, x):
        s = self.squeeze(x)
        return torch.cat([self.expand1(s), self.expand3(s)], dim=1)


class SqueezeNet(_CNN):
    """A small SqueezeNet: a stem, two fire modules, a max-pool and the classifier."""

    def __init__(self, image_shape, classes, w_bits, a_bits, input_bits):
        super().__init__(image_shape, input_bits)
        self.features = nn.Sequential(
            _conv(image_shape[0], 16, 3, w_bits, a_bits, pad=1), Fire(16, 8, 16, w_bits, a_bits), nn.MaxPool2d(2),
            Fire(32, 8, 16, w_bits, a_bits), nn.MaxPool2d(2), nn.Flatten())
        self.head = _classifier(self._flat_size(self.features), classes, w_bits)

    def forward(self, x):
        return self.head(self.features(self.inp(x)))


def input_shape(name: str, image_shape: tuple[int, int, int]) -> tuple[int, ...]:
    return (math.prod(image_shape),) if name in MLPS else tuple(image_shape)


def build(name: str, w_bits: int | str, a_bits: int, image_shape: tuple[int, int, int], num_classes: int,
          input_bits: int, dropout: float = 0.0, survival: float = 1.0) -> nn.Module:
    if name not in NAMES:
        raise XnorkitError(f"unknown model '{name}'; the zoo has {', '.join(NAMES)}")
    if not (w_bits in ("t", "xnor") or 1 <= bits_of(w_bits) <= 8) or not 1 <= bits_of(a_bits) <= 8:
        raise XnorkitError(f"weight bits must be 1..8, 't', 'xnor' or 'dorefa<k>' and activation bits 1..8 "
                           f"(got {w_bits}, {a_bits})")
    if name in MLPS:
        return MLP(math.prod(image_shape), MLPS[name], num_classes, w_bits, a_bits, input_bits, dropout)
    if name == "resnet":
        return ResNet(tuple(image_shape), num_classes, w_bits, a_bits, input_bits, survival=survival)
    cls = {"lenet5": LeNet5, "cnv": CNV, "blenet": BLeNet, "squeezenet": SqueezeNet}[name]
    return cls(tuple(image_shape), num_classes, w_bits, a_bits, input_bits)


class ACTResNet(nn.Module):
    """A small float residual net with adaptive computation time (Figurnov et al. 2017): a stride-2 stem and
    one stage of `blocks` residual blocks, each followed by a halting unit. `mode` is "full" (every block,
    no halting: the baseline), "act" (one halting score per image, from the block's pooled features) or
    "sact" (spatially adaptive: a score per position, from a 1x1 convolution and the pooled features; a
    halted position keeps its features while the others go on). forward returns the logits; the ponder cost
    (executed blocks plus remainder, averaged over images or positions) and the executed-block count of
    the last batch are in `self.ponder` and `self.executed`."""

    def __init__(self, image_shape, classes: int, mode: str = "act", blocks: int = 6, width: int = 16,
                 epsilon: float = 0.01):
        super().__init__()
        if mode not in ("full", "act", "sact"):
            raise XnorkitError(f"ACT mode must be full, act or sact (got {mode})")
        self.mode, self.epsilon = mode, epsilon
        self.stem = nn.Sequential(nn.Conv2d(image_shape[0], width, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                          nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))
            for _ in range(blocks))
        self.halt_global = nn.ModuleList(nn.Linear(width, 1) for _ in range(blocks - 1))
        self.halt_local = nn.ModuleList(nn.Conv2d(width, 1, 1) for _ in range(blocks - 1))
        for layer in self.halt_global:  # a negative bias starts deep (Figurnov et al. use -3 for long training;
            nn.init.constant_(layer.bias, -1.0)  # -1, about 4 of 6 blocks at first, suits a few epochs)
        self.head = nn.Linear(width, classes)

    def _halting(self, b: int, x: torch.Tensor) -> torch.Tensor:
        score = self.halt_global[b](x.mean((2, 3)))  # (N, 1)
        if self.mode == "act":
            return torch.sigmoid(score).squeeze(1)
        return torch.sigmoid(self.halt_local[b](x).squeeze(1) + score[:, :, None])  # (N, H, W)

    def forward(self, x):
        from xnorkit.quant_train.conditional import act_step

        x = self.stem(x)
        if self.mode == "full":
            for block in self.blocks:
                x = torch.relu(x + block(x))
            self.executed = torch.full((len(x),), float(len(self.blocks)))
            self.ponder = self.executed.mean()
            return self.head(x.mean((2, 3)))
        shape = (len(x),) if self.mode == "act" else (len(x), *x.shape[2:])
        cumulative = torch.zeros(shape, device=x.device)
        executed = torch.zeros(shape, device=x.device)
        ponder_remainder = torch.zeros(shape, device=x.device)
        out = torch.zeros_like(x)
        for b, block in enumerate(self.blocks):
            last = b == len(self.blocks) - 1
            running = (cumulative < 1 - self.epsilon).to(x.dtype)
            mask = running.view(len(x), 1, *shape[1:], *([1, 1] if self.mode == "act" else []))
            x = torch.where(mask > 0, torch.relu(x + block(x)), x)  # a halted unit keeps its features
            h = None if last else self._halting(b, x)
            weight, cumulative, ran, remainder = act_step(h if h is not None else torch.ones(shape), cumulative,
                                                          last, self.epsilon)
            out = out + weight.view_as(mask) * x
            executed = executed + ran
            ponder_remainder = ponder_remainder + remainder
        self.executed = executed.flatten(1).mean(1) if self.mode == "sact" else executed
        self.ponder = (executed + ponder_remainder).mean()
        return self.head(out.mean((2, 3)))
