"""A configured training recipe: the techniques of quant_train composed in the order they make sense.

    teacher (distill) -> FitNets hints (distill.hints) -> training (with the group lasso of `sparsity` and the
    teacher's loss) -> structured sparsity: small groups removed or zeroed, fine-tuned -> iterative pruning
    (prune) -> weight sharing and Huffman coding (share)

Each stage reads its own config section (quant_train.config) and is skipped when the section is absent;
the test accuracy after every stage goes into the metrics. The result is an ordinary Brevitas model: masks and
shared values are plain weights by the time it is exported, so the compiler sees them as zeros and values.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from xnorkit.errors import XnorkitError
from xnorkit.quant_train import compression, config, distill, sparsity, train, zoo
from xnorkit.quant_train.data import Dataset

Progress = Callable[[str, int, int, float], None] | None  # (stage, epoch, epochs, loss)


def _with_train(cfg: config.Config, **update) -> config.Config:
    return cfg.model_copy(update={"train": cfg.train.model_copy(update=update)})


def _accuracy(cfg: config.Config, data: Dataset, model: nn.Module) -> float:
    x = data.x_test.reshape(-1, *train.input_shape(cfg, data))
    return float((train.evaluate(model, x).argmax(1) == data.y_test).mean())


def _stage_progress(progress: Progress, stage: str):
    return (lambda e, n, loss: progress(stage, e, n, loss)) if progress else None


def load_teacher(cfg: config.Config, data: Dataset, progress: Progress = None) -> nn.Module:
    """The teacher of `cfg.distill`: a float MLP of the zoo trained here ("float:<name>"), or the model of an
    earlier training run (a folder with checkpoint.pt)."""
    from pathlib import Path

    spec = cfg.distill.teacher
    if spec.startswith("float:"):
        name = spec.removeprefix("float:")
        if name not in zoo.MLPS:
            raise XnorkitError(f"distill.teacher: float teachers are the zoo's MLPs ({', '.join(zoo.MLPS)}); "
                               f"got '{name}'")
        features = int(np.prod(data.image_shape))
        teacher = nn.Sequential(nn.Flatten(), zoo.FloatMLP(features, zoo.MLPS[name], data.num_classes,
                                                               dropout=cfg.distill.teacher_dropout))
        teacher_cfg = _with_train(cfg, epochs=cfg.distill.teacher_epochs, lr=1e-3)
        teacher, _ = train.train(teacher_cfg, data, _stage_progress(progress, "teacher"), model=teacher)
        return teacher
    checkpoint = Path(spec) / "checkpoint.pt"
    if not checkpoint.is_file():
        raise XnorkitError(f"distill.teacher: {checkpoint} does not exist; give a training run folder "
                           "(xnorkit train -o FOLDER) or float:<mlp>")
    try:  # weights_only: a checkpoint is data; unpickling anything else could run its code
        saved = torch.load(checkpoint, weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError, EOFError, ... for a foreign or damaged file
        raise XnorkitError(f"distill.teacher: {checkpoint} is not a checkpoint of `xnorkit train` (it holds more "
                           f"than tensors and plain values, or is damaged: {type(e).__name__})") from None
    if not isinstance(saved, dict) or not {"config", "state_dict"} <= saved.keys():
        raise XnorkitError(f"distill.teacher: {checkpoint} is not a checkpoint of `xnorkit train` (no config and "
                           f"state_dict)")
    teacher_cfg = config.validate(saved["config"])
    teacher = train.build_model(teacher_cfg, data)
    missing, _ = teacher.load_state_dict(saved["state_dict"], strict=False)  # pruning masks are extra buffers
    if missing:
        raise XnorkitError(f"distill.teacher: {checkpoint} does not fit its own config (missing {missing[0]})")
    compression.apply_masks(teacher)
    return teacher


def _middle(model: nn.Module, kinds: tuple[type, ...]) -> nn.Module:
    layers = [m for m in model.modules() if isinstance(m, kinds)]
    if not layers:
        raise XnorkitError("distill.hints (FitNets) needs MLP student and teacher (hidden layers to align)")
    return layers[len(layers) // 2]


def _regularizer(cfg: config.Config):
    groups = cfg.sparsity.groups
    if groups == "neurons":
        if cfg.model.kind not in ("mlp", *zoo.MLPS) or cfg.model.weights not in ("binary", "ternary"):
            raise XnorkitError("sparsity.groups neurons needs an MLP with binary or ternary weights")
        return sparsity.neuron_group_lasso
    if groups == "inputs":
        if cfg.model.kind not in ("mlp", *zoo.MLPS) or cfg.model.weights in ("binary", "xnor"):
            raise XnorkitError("sparsity.groups inputs needs an MLP whose weights can be zero (not binary)")
        return sparsity.input_group_lasso
    if groups == "blocks":
        if cfg.model.kind != "resnet" or cfg.model.a_bits < 2:
            raise XnorkitError("sparsity.groups blocks needs model.kind resnet with a_bits >= 2")
        return sparsity.block_group_lasso
    if cfg.model.kind in ("mlp", *zoo.MLPS):
        raise XnorkitError(f"sparsity.groups {groups} needs a convolutional model (MLPs: groups neurons)")
    return lambda m: sparsity.conv_group_lasso(m, groups)


def _check(cfg: config.Config) -> None:
    """Refuse impossible combinations before any training starts."""
    if cfg.sparsity:
        _regularizer(cfg)
    # pruned binary weights are +-1 or 0 (models.PrunedBinaryWeight); XNOR-Net's alpha scaling has no zero
    if cfg.prune and cfg.model.weights == "xnor":
        raise XnorkitError("prune: XNOR-Net weights are +-alpha and cannot be zero; use binary (pruned binary "
                           "weights are +-1 or 0), ternary, int<k> or dorefa<k> weights")
    if cfg.share and cfg.model.weights in ("binary", "xnor"):
        raise XnorkitError("share: binary weights are already one bit; weight sharing needs ternary, int<k> or "
                           "dorefa<k> weights")


def run(cfg: config.Config, data: Dataset, progress: Progress = None) -> tuple[nn.Module, dict]:
    """Train by the recipe of `cfg`; returns the model and its metrics (test accuracy after every stage)."""
    _check(cfg)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    train.seed_everything(cfg.train.seed)  # the initial weights too: a recipe's result never depends on what ran before
    stages: dict[str, float] = {}
    extra: dict = {}
    teacher, kw = None, {}
    if cfg.distill:
        teacher = load_teacher(cfg, data, progress)
        stages["teacher"] = _accuracy(cfg, data, teacher)
        d = cfg.distill
        kw = {"teacher": teacher, "temperature": d.temperature, "alpha": d.alpha, "distill_kind": d.kind,
              "noise": d.noise}
    model = train.build_model(cfg, data)
    if cfg.distill and cfg.distill.hints:
        x = torch.from_numpy(data.x_train.reshape(-1, *train.input_shape(cfg, data)))
        extra["hint_loss"] = distill.fitnets_hints(model, teacher, _middle(model, (zoo._Block,)),
                                                   _middle(teacher, (nn.ReLU, zoo._Block)), x,
                                                   cfg.distill.hint_epochs, 1e-3, cfg.train.seed)
    regularizer = _regularizer(cfg) if cfg.sparsity else None
    model, metrics = train.train(cfg, data, _stage_progress(progress, "train"), model=model, regularizer=regularizer,
                                 reg_weight=cfg.sparsity.weight if cfg.sparsity else 0.0, **kw)
    stages["trained"] = metrics["test_accuracy"]

    for stage, key, run_stage in (("sparse", cfg.sparsity, _sparsity_stage), ("pruned", cfg.prune, _prune_stage),
                                  ("shared", cfg.share, _share_stage)):
        if key:
            model = run_stage(cfg, data, model, progress, kw, extra)
            stages[stage] = _accuracy(cfg, data, model)

    metrics["test_accuracy"] = _accuracy(cfg, data, model)
    metrics["stages"] = stages
    metrics.update(extra)
    return model, metrics


def _sparsity_stage(cfg: config.Config, data: Dataset, model: nn.Module, progress: Progress, kw: dict,
                    extra: dict) -> nn.Module:
    """Structured sparsity: the groups the regularizer drove to zero removed, then fine-tuned."""
    s = cfg.sparsity
    after = None
    if s.groups == "neurons":
        model, removed = sparsity.prune_by_gamma(model, s.threshold)
        extra["neurons_removed"] = round(removed, 4)
    elif s.groups == "blocks":
        extra["blocks_kept"] = sparsity.remove_blocks(model, s.threshold)
    elif s.groups == "inputs":
        masks, extra["inputs_removed"] = sparsity.zero_inputs(model, s.threshold)
        compression.set_masks(model, masks)
        after = compression.apply_masks
    else:
        compression.set_masks(model, sparsity.zero_conv_groups(model, s.groups, s.threshold))
        after = compression.apply_masks
    model, _ = train.train(_with_train(cfg, epochs=s.epochs), data, _stage_progress(progress, "sparsity"),
                           model=model, after_step=after, **kw)
    return model


def _prune_stage(cfg: config.Config, data: Dataset, model: nn.Module, progress: Progress, kw: dict,
                 extra: dict) -> nn.Module:
    """Iterative pruning to the target densities (magnitude or correlation), fine-tuned at each step."""
    p = cfg.prune
    layers = list(compression.prunable(model))
    target = p.density if isinstance(p.density, dict) else dict.fromkeys(layers, p.density)
    if p.block is not None and p.method != "magnitude":
        raise XnorkitError("prune.block: block pruning ranks blocks by magnitude; set prune.method: magnitude")
    unknown = sorted(set(target) - set(layers))
    if unknown:
        raise XnorkitError(f"prune.density: no weight layer named {unknown[0]}; the layers are {', '.join(layers)}")
    x = torch.from_numpy(data.x_train[:1000].reshape(-1, *train.input_shape(cfg, data)))
    for step in range(1, p.steps + 1):
        keep = {name: d ** (step / p.steps) for name, d in target.items()}
        if p.method == "magnitude":
            masks = compression.magnitude_masks(model, keep, tuple(p.block) if p.block else None)
        else:  # correlation: among the connections still alive
            masks = compression.correlation_masks(model, x, keep)
            for name in masks:
                old = getattr(compression.prunable(model)[name], compression.MASK, None)
                if old is not None:
                    masks[name] &= old.bool()
        compression.set_masks(model, masks)
        model, _ = train.train(_with_train(cfg, epochs=p.epochs, lr=p.lr), data,
                               _stage_progress(progress, f"prune {step}/{p.steps}"), model=model,
                               after_step=compression.apply_masks, **kw)
    extra["density"] = {k: round(v, 4) for k, v in compression.density(model).items()}
    return model


def _share_stage(cfg: config.Config, data: Dataset, model: nn.Module, progress: Progress, kw: dict,
                 extra: dict) -> nn.Module:
    """Weight sharing (each layer's weights clustered into 2^bits shared values), fine-tuned and baked; the
    compressed size in `extra`."""
    sh = cfg.share
    bits = sh.bits if isinstance(sh.bits, dict) else dict.fromkeys(compression.prunable(model), sh.bits)
    compression.share_weights(model, bits)
    model, _ = train.train(_with_train(cfg, epochs=sh.epochs, lr=sh.lr), data, _stage_progress(progress, "share"),
                           model=model, **kw)
    compression.bake(model)
    report = compression.size_report(model)
    dense = sum(r.dense_bits for r in report)
    stored = sum(r.total_bits for r in report)
    extra["compressed_bytes"] = -(-stored // 8)
    extra["dense_float_bytes"] = dense // 8
    extra["compression_ratio"] = round(dense / stored, 2)
    return model
