"""Knowledge distillation on MNIST: a W1A1 TFC student (784 -> 3 x 64 -> 10) distilled from a float LFC
teacher (784 -> 3 x 1024 -> 10) against the same student trained alone, same seeds and epochs. The
candidates: Hinton soft targets, logit regression (mimicking), a noisy teacher and FitNets hints.
Goal: the distilled student beats the student trained alone.

The method, temperature and soft-target weight are chosen on a validation split of the training set (the last
5,000 images), never on the test set; every model trains on the other 55,000. A single run's gain is of the
order of the run-to-run spread (about 0.1 point), so the chosen method and the student alone are then trained
with three seeds each and compared by their mean test accuracy.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quant_train import config, data, distill, train, zoo  # noqa: E402
from xnorkit import build, golden  # noqa: E402

TEACHER_EPOCHS = 5
STUDENT_EPOCHS = 20
# (kind, temperature, soft-target weight alpha, teacher noise): Hinton soft targets, Ba & Caruana's logit
# regression, Sau & Balasubramanian's noisy teacher, FitNets (hints for the middle layer, then Hinton)
CANDIDATES = (("hinton", 2.0, 0.5, 0.0), ("hinton", 2.0, 0.9, 0.0), ("hinton", 4.0, 0.7, 0.0),
              ("mimic", 1.0, 0.5, 0.0), ("noisy", 4.0, 0.7, 0.2), ("fitnets", 2.0, 0.5, 0.0))
HINT_EPOCHS = 2
SEEDS = (0, 1, 2)


def accuracy(model, x, y) -> float:
    return float((train.evaluate(model, x).argmax(1) == y).mean())


def main() -> int:
    t0 = time.perf_counter()
    mnist = data.load_mnist()
    fit = data.Dataset("mnist", mnist.x_train[:55000], mnist.y_train[:55000], mnist.x_train[55000:],
                       mnist.y_train[55000:], 10, mnist.image_shape)
    x_val, y_val = fit.x_test, fit.y_test
    base = config.Config(dataset="mnist", model=config.ModelConfig(kind="tfc", input_bits=8))

    teacher_cfg = base.model_copy(update={"train": config.TrainConfig(epochs=TEACHER_EPOCHS, batch_size=256,
                                                                        lr=0.001)})
    train.seed_everything(teacher_cfg.train.seed)  # the teacher's initial weights too: the same teacher every run
    teacher, _ = train.train(teacher_cfg, fit, model=zoo.FloatMLP(784, [1024, 1024, 1024], 10))
    teacher_acc = accuracy(teacher, mnist.x_test, mnist.y_test)
    print(f"float LFC teacher           test {teacher_acc:.2%}")

    student_cfg = base.model_copy(update={"train": config.TrainConfig(epochs=STUDENT_EPOCHS, batch_size=256,
                                                                        lr=0.01)})
    alone, _ = train.train(student_cfg, fit)
    alone_acc = accuracy(alone, mnist.x_test, mnist.y_test)
    print(f"W1A1 TFC alone              test {alone_acc:.2%}   validation {accuracy(alone, x_val, y_val):.2%}")

    def distilled_student(cfg, kind, temperature, alpha, noise):
        start = None
        if kind == "fitnets":  # stage 1: the student's middle block learns the teacher's middle ReLU
            start = train.build_model(cfg, fit)
            guided = [m for m in start.modules() if isinstance(m, zoo._Block)][1]
            hint = [m for m in teacher.modules() if isinstance(m, torch.nn.ReLU)][1]
            distill.fitnets_hints(start, teacher, guided, hint, torch.from_numpy(fit.x_train), HINT_EPOCHS, 1e-3,
                                  cfg.train.seed)
        student, _ = train.train(cfg, fit, model=start, teacher=teacher, temperature=temperature, alpha=alpha,
                                 distill_kind="hinton" if kind == "fitnets" else kind, noise=noise)
        return student

    tried = []
    for kind, temperature, alpha, noise in CANDIDATES:
        student = distilled_student(student_cfg, kind, temperature, alpha, noise)
        val = accuracy(student, x_val, y_val)
        print(f"  distilled, {kind} T={temperature:g} alpha={alpha:g} noise={noise:g}   validation {val:.2%}")
        tried.append((val, kind, temperature, alpha, noise, student))
    _, kind, temperature, alpha, noise, distilled = max(tried, key=lambda t: t[0])
    print(f"chosen on validation: {kind}, T={temperature:g}, alpha={alpha:g}, noise={noise:g}")
    alone_runs, distilled_runs = [alone_acc], [accuracy(distilled, mnist.x_test, mnist.y_test)]
    for seed in SEEDS[1:]:
        cfg = student_cfg.model_copy(update={"train": student_cfg.train.model_copy(update={"seed": seed})})
        alone_runs.append(accuracy(train.train(cfg, fit)[0], mnist.x_test, mnist.y_test))
        distilled_runs.append(accuracy(distilled_student(cfg, kind, temperature, alpha, noise), mnist.x_test,
                                       mnist.y_test))
    for seed, a, d in zip(SEEDS, alone_runs, distilled_runs, strict=True):
        print(f"seed {seed}: W1A1 TFC alone test {a:.2%}, distilled test {d:.2%} ({100 * (d - a):+.2f} pt)")
    alone_mean, distilled_mean = sum(alone_runs) / len(SEEDS), sum(distilled_runs) / len(SEEDS)
    distilled_acc = distilled_runs[0]
    print(f"mean of {len(SEEDS)} seeds: alone {alone_mean:.2%}, distilled {distilled_mean:.2%} "
          f"({100 * (distilled_mean - alone_mean):+.2f} pt)")

    with tempfile.TemporaryDirectory() as tmp:
        train.export_qonnx(distilled, (784,), Path(tmp) / "m.onnx")
        graph = build.compile_model(Path(tmp) / "m.onnx", Path(tmp) / "b")
        golden_acc = float((golden.predict_float(graph, mnist.x_test).argmax(1) == mnist.y_test).mean())
    print(f"distilled student (seed {SEEDS[0]}), golden test {golden_acc:.2%}")
    result = {"bench": "distill_tfc", "teacher_accuracy": round(teacher_acc, 4),
              "alone_accuracy": [round(a, 4) for a in alone_runs],
              "distilled_accuracy": [round(d, 4) for d in distilled_runs], "golden_accuracy": round(golden_acc, 4),
              "alone_mean": round(alone_mean, 4), "distilled_mean": round(distilled_mean, 4),
              "kind": kind, "temperature": temperature, "alpha": alpha, "noise": noise,
              "gain_points": round(100 * (distilled_mean - alone_mean), 2),
              "epochs": STUDENT_EPOCHS, "seconds": round(time.perf_counter() - t0, 1),
              "ok": bool(distilled_mean > alone_mean and golden_acc == distilled_acc)}
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
