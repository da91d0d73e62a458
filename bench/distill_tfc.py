"""Knowledge distillation on MNIST: a W1A1 TFC student (784 -> 3 x 64 -> 10) distilled from a float LFC
teacher (784 -> 3 x 1024 -> 10) against the same student trained alone, same seeds and epochs. The
candidates: Hinton soft targets, logit regression (mimicking), a noisy teacher and FitNets hints.
Goal: the distilled student beats the student trained alone.

The method, temperature and soft-target weight are chosen on a validation split of the training set (the last
5,000 images), never on the test set; every model trains on the other 55,000.
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
CANDIDATES = (("hinton", 2.0, 0.5, 0.0), ("hinton", 4.0, 0.7, 0.0), ("mimic", 1.0, 0.5, 0.0),
              ("noisy", 4.0, 0.7, 0.2), ("fitnets", 2.0, 0.5, 0.0))
HINT_EPOCHS = 2


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
    teacher, _ = train.train(teacher_cfg, fit, model=zoo.FloatMLP(784, [1024, 1024, 1024], 10))
    teacher_acc = accuracy(teacher, mnist.x_test, mnist.y_test)
    print(f"float LFC teacher           test {teacher_acc:.2%}")

    student_cfg = base.model_copy(update={"train": config.TrainConfig(epochs=STUDENT_EPOCHS, batch_size=256,
                                                                        lr=0.01)})
    alone, _ = train.train(student_cfg, fit)
    alone_acc = accuracy(alone, mnist.x_test, mnist.y_test)
    print(f"W1A1 TFC alone              test {alone_acc:.2%}   validation {accuracy(alone, x_val, y_val):.2%}")
    tried = []
    for kind, temperature, alpha, noise in CANDIDATES:
        start = None
        if kind == "fitnets":  # stage 1: the student's middle block learns the teacher's middle ReLU
            start = train.build_model(student_cfg, fit)
            guided = [m for m in start.modules() if isinstance(m, zoo._Block)][1]
            hint = [m for m in teacher.modules() if isinstance(m, torch.nn.ReLU)][1]
            distill.fitnets_hints(start, teacher, guided, hint, torch.from_numpy(fit.x_train), HINT_EPOCHS, 1e-3,
                                  student_cfg.train.seed)
        student, _ = train.train(student_cfg, fit, model=start, teacher=teacher, temperature=temperature,
                                 alpha=alpha, distill_kind="hinton" if kind == "fitnets" else kind, noise=noise)
        val = accuracy(student, x_val, y_val)
        print(f"  distilled, {kind} T={temperature:g} alpha={alpha:g} noise={noise:g}   validation {val:.2%}")
        tried.append((val, kind, temperature, alpha, noise, student))
    _, kind, temperature, alpha, noise, distilled = max(tried, key=lambda t: t[0])
    distilled_acc = accuracy(distilled, mnist.x_test, mnist.y_test)
    print(f"W1A1 TFC distilled          test {distilled_acc:.2%}   ({kind}, T={temperature:g}, alpha={alpha:g}, "
          f"noise={noise:g}, chosen on validation)")

    with tempfile.TemporaryDirectory() as tmp:
        train.export_qonnx(distilled, (784,), Path(tmp) / "m.onnx")
        graph = build.compile_model(Path(tmp) / "m.onnx", Path(tmp) / "b")
        golden_acc = float((golden.predict_float(graph, mnist.x_test).argmax(1) == mnist.y_test).mean())
    print(f"distilled student, golden   test {golden_acc:.2%}")
    result = {"bench": "distill_tfc", "teacher_accuracy": round(teacher_acc, 4), "alone_accuracy": round(alone_acc, 4),
              "distilled_accuracy": round(distilled_acc, 4), "golden_accuracy": round(golden_acc, 4),
              "kind": kind, "temperature": temperature, "alpha": alpha, "noise": noise,
              "gain_points": round(100 * (distilled_acc - alone_acc), 2),
              "epochs": STUDENT_EPOCHS, "seconds": round(time.perf_counter() - t0, 1),
              "ok": bool(distilled_acc > alone_acc)}
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
