"""Quantization-aware training with Brevitas and QONNX export."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import random
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn
from torch.nn.utils import parametrize

from xnorkit.quant_train import data as data_mod
from xnorkit.quant_train import distill, models, zoo
from xnorkit.quant_train.config import Config
from xnorkit.quant_train.data import Dataset


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(cfg: Config, data: Dataset) -> nn.Module:
    m = cfg.model
    if m.kind == "mlp":
        return zoo.MLP(data.x_train.shape[1], list(m.hidden), data.num_classes, m.w_bits, m.a_spec, m.input_bits,
                       m.dropout)
    return zoo.build(m.kind, m.w_bits, m.a_spec, data.image_shape, data.num_classes, m.input_bits, m.dropout,
                     m.survival)


def input_shape(cfg: Config, data: Dataset) -> tuple[int, ...]:
    """The layout the model takes (and X.npy of `xnorkit predict` holds) for one image."""
    return (data.x_train.shape[1],) if cfg.model.kind == "mlp" else zoo.input_shape(cfg.model.kind, data.image_shape)


def _outputs(out) -> tuple[torch.Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


def evaluate(model: nn.Module, x: np.ndarray, every_exit: bool = False) -> np.ndarray:
    """The final logits (or every output side by side along axis 1, as `xnorkit predict` writes them)."""
    model.eval()
    with torch.no_grad():
        outs = _outputs(model(torch.from_numpy(np.asarray(x, dtype=np.float32))))
    return np.concatenate([o.numpy() for o in outs], axis=1) if every_exit else outs[-1].numpy()


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float,
                      alpha: float) -> torch.Tensor:
    """Hinton et al.: alpha * T^2 * KL(teacher's soft targets || student's) + (1 - alpha) * cross-entropy."""
    return distill.hinton_loss(student, teacher, labels, temperature, alpha)


def shift_images(x: torch.Tensor, image_shape: tuple[int, int, int], max_shift: int,
                 generator: torch.Generator) -> torch.Tensor:
    """Data augmentation: each image translated by its own random offset of at most `max_shift` pixels in
    each direction, zero filled; `x` in any layout holding whole images (flat for MLPs)."""
    images = x.reshape(-1, *image_shape)
    h, w = image_shape[1:]
    padded = nn.functional.pad(images, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (len(x), 2), generator=generator)
    out = torch.empty_like(images)
    for dy, dx in torch.unique(offsets, dim=0).tolist():
        rows = ((offsets[:, 0] == dy) & (offsets[:, 1] == dx)).nonzero().squeeze(1)
        out[rows] = padded[rows, :, dy:dy + h, dx:dx + w]
    return out.reshape(x.shape)


def train(cfg: Config, data: Dataset, progress=None, model: nn.Module | None = None,
          regularizer=None, reg_weight: float = 0.0, teacher: nn.Module | None = None,
          temperature: float = 4.0, alpha: float = 0.9, distill_kind: str = "hinton", noise: float = 0.0,
          after_step: Callable[[nn.Module], None] | None = None) -> tuple[nn.Module, dict]:
    """Train with Adam and a cosine schedule; from `model` when given (fine-tuning), else a new one.
    `regularizer(model)` times `reg_weight` joins the loss; with a `teacher` (any module taking the same
    input, float or quantized) the final output learns from it by `distill_kind` (quant_train.distill: hinton,
    mimic, noisy with `noise`).
    `after_step(model)` runs after every optimizer step (pruning masks: `compression.apply_masks`).
    `progress(epoch, epochs, loss)` is called per epoch."""
    seed_everything(cfg.train.seed)
    model = model if model is not None else build_model(cfg, data)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.train.epochs)
    shape = input_shape(cfg, data)
    x = torch.from_numpy(data.x_train.reshape(-1, *shape))
    y = torch.from_numpy(data.y_train)
    gen = torch.Generator().manual_seed(cfg.train.seed)
    noise_gen = torch.Generator().manual_seed(cfg.train.seed + 1)  # its own stream: the batch order stays put
    teacher_out = None
    if teacher is not None:
        teacher.eval()
        if not cfg.train.shift:  # the teacher (in eval mode) sees the same images every epoch: label them once
            with torch.no_grad():
                teacher_out = torch.cat([_outputs(teacher(x[i:i + 4096]))[-1] for i in range(0, len(x), 4096)])
    hooks = models.quantize_gradients(model, cfg.train.grad_bits) if cfg.train.grad_bits else []
    history = []  # per epoch: the mean training loss and the accuracy on the batches as they were trained
    for epoch in range(cfg.train.epochs):
        model.train()
        total, correct = 0.0, 0
        for idx in data_mod.batches(len(x), cfg.train.batch_size, gen):
            opt.zero_grad()
            batch = shift_images(x[idx], data.image_shape, cfg.train.shift, gen) if cfg.train.shift else x[idx]
            outs = _outputs(model(batch))
            target = _teacher_target(teacher, teacher_out, idx, batch)
            loss = _loss(cfg, outs, y[idx], target, (distill_kind, temperature, alpha, noise, noise_gen))
            if regularizer is not None:
                loss = loss + reg_weight * regularizer(model)
            loss.backward()
            opt.step()
            if cfg.train.clip_weights:
                zoo.clip_binary_weights(model)
            if after_step is not None:
                after_step(model)
            total += loss.item() * len(idx)
            correct += int((outs[-1].argmax(1) == y[idx]).sum())
        sched.step()
        history.append({"epoch": epoch + 1, "loss": total / len(x), "train_accuracy": correct / len(x)})
        if progress:
            progress(epoch + 1, cfg.train.epochs, total / len(x))
    for h in hooks:
        h.remove()
    out = evaluate(model, data.x_test.reshape(-1, *shape))
    metrics = {"dataset": data.name, "n_test": int(len(data.y_test)),
               "test_accuracy": float((out.argmax(1) == data.y_test).mean()), "history": history}
    return model, metrics


def _teacher_target(teacher: nn.Module | None, labelled: torch.Tensor | None, idx: torch.Tensor,
                    batch: torch.Tensor) -> torch.Tensor | None:
    """The teacher's final output for the batch: labelled once for all images, or run on this batch."""
    if teacher is None:
        return None
    if labelled is not None:
        return labelled[idx]
    with torch.no_grad():
        return _outputs(teacher(batch))[-1]


def _loss(cfg: Config, outs: list[torch.Tensor], labels: torch.Tensor, target: torch.Tensor | None,
          distillation: tuple) -> torch.Tensor:
    """The batch's loss: cross-entropy on every output, the early exits weighed by the config; with a teacher's
    `target`, the final output learns from it (quant_train.distill; `distillation` its kind and settings)."""
    exits = list(cfg.model.exit_weights) + [1.0] * len(outs)  # exits beyond the list weigh 1
    weights = exits[:len(outs) - 1] + [1.0]
    losses = [nn.functional.cross_entropy(o, labels) for o in outs]
    if target is not None:
        kind, temperature, alpha, noise, noise_gen = distillation
        losses[-1] = distill.loss(kind, outs[-1], target, labels, temperature, alpha, noise, noise_gen)
    return sum(w * part for w, part in zip(weights, losses, strict=True))


def bake_parametrizations(model: nn.Module) -> nn.Module:
    """A copy of `model` whose parametrized weights (DoReFa's tanh normalization, shared weights) are plain
    tensors holding the values they produce: the exported graph then starts from constants. Pruned binary
    weights become their values -1, 0, +1, which QONNX's rounding Quant node keeps as they are."""
    pruned = [m for m in model.modules() if models.quantized_by(m, models.PrunedBinaryWeight)]
    if not pruned and not any(parametrize.is_parametrized(m) for m in model.modules()):
        return model
    model = copy.deepcopy(model)
    models.unparametrize(model)
    with torch.no_grad():
        for module in model.modules():
            if models.quantized_by(module, models.PrunedBinaryWeight):
                module.weight.copy_(torch.sign(module.weight))
    return model


def export_qonnx(model: nn.Module, input_shape: tuple[int, ...], path: Path) -> None:
    """Brevitas -> QONNX, quietly (the exporter prints progress and warnings)."""
    from brevitas.export import export_qonnx as brevitas_export

    model = bake_parametrizations(model)
    model.eval()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        brevitas_export(model, torch.zeros((1, *input_shape)), export_path=str(path))
    # one self-contained file: the exporter may leave a side file of external weights behind
    onnx_model = onnx.load(str(path))
    onnx.save(onnx_model, str(path), save_as_external_data=False)
    Path(str(path) + ".data").unlink(missing_ok=True)


def save_run(model: nn.Module, metrics: dict, cfg: Config, data: Dataset, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    export_qonnx(model, input_shape(cfg, data), out / "model.onnx")
    torch.save({"state_dict": model.state_dict(), "config": cfg.to_dict()}, out / "checkpoint.pt")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
