"""Knowledge distillation on MNIST: a W1A1 TFC student (784 -> 3 x 64 -> 10) distilled from a float LFC
teacher (784 -> 3 x 1024 -> 10) against the same student trained alone, same seeds and epochs.
Goal: the distilled student beats the student trained alone.

The recipe: a teacher regularized with dropout (Hinton et al. do so, so that its soft targets on its own
training images still rank the wrong classes), and Sau & Balasubramanian's noisy teacher: Hinton soft targets
at T = 1 with alpha = 1 (the student learns the teacher's whole distribution and no hard labels) from teacher
logits perturbed by multiplicative Gaussian noise (0.2) drawn anew each step, a regularizer. The student
trains 60 epochs (Adam, cosine). The validation split (the last 5,000 training images, which no model trains
on) is reported beside the test accuracy.

How the recipe was chosen, so that the figure is not a selected one: of the recipes measured on one to four
of seeds 0-3 (docs/training.md lists them), the noisy teacher was ahead of the student alone on test over all
four, by 0.13 point, within the run-to-run spread, and level with it on validation. This bench therefore measures it
on eight fresh seeds, 4 to 11, that took no part in the choice. A single run's gain is of the order of the
run-to-run spread (0.1 to 0.2 point), so the students are compared by their mean test accuracy, and seed by
seed as well. Plain Hinton soft targets and FitNets hints are measured with the first seed, for reference. Two
trainings run at a time (one process each, one thread each); the teacher labels the training set once.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xnorkit import build, golden  # noqa: E402
from xnorkit.quant_train import config, data, distill, train, zoo  # noqa: E402

TEACHER_EPOCHS = 5
TEACHER_DROPOUT = 0.3
TEACHER_HIDDEN = [1024, 1024, 1024]
STUDENT_EPOCHS = 60
SEEDS = tuple(range(4, 12))  # fresh: seeds 0-3 took part in choosing the recipe
# (kind, temperature, soft-target weight alpha, teacher noise)
RECIPE = ("noisy", 1.0, 1.0, 0.2)
# measured with the first seed only: Hinton soft targets without noise, FitNets (hints for the middle layer,
# then Hinton soft targets)
OTHERS = (("hinton", 1.0, 1.0, 0.0), ("fitnets", 1.0, 1.0, 0.0))
HINT_EPOCHS = 2
WORKERS = 2


def split(mnist: data.Dataset) -> data.Dataset:
    """Training on the first 55,000 images; the last 5,000 are the validation split (in the test fields)."""
    return data.Dataset("mnist", mnist.x_train[:55000], mnist.y_train[:55000], mnist.x_train[55000:],
                        mnist.y_train[55000:], 10, mnist.image_shape)


def student_config(seed: int) -> config.Config:
    return config.Config(dataset="mnist", model=config.ModelConfig(kind="tfc", input_bits=8),
                         train=config.TrainConfig(epochs=STUDENT_EPOCHS, batch_size=256, lr=0.01, seed=seed))


def accuracy(model, x, y) -> float:
    return float((train.evaluate(model, x).argmax(1) == y).mean())


def run_student(seed: int, method: tuple | None, teacher_state: dict | None, check_golden: bool) -> dict:
    """One student: alone (method None) or distilled. Runs in a worker process, on one thread."""
    torch.set_num_threads(1)
    mnist = data.load_mnist()
    fit = split(mnist)
    cfg = student_config(seed)
    t0 = time.perf_counter()
    if method is None:
        student, _ = train.train(cfg, fit)
    else:
        kind, temperature, alpha, noise = method
        teacher = zoo.FloatMLP(784, TEACHER_HIDDEN, 10, dropout=TEACHER_DROPOUT)
        teacher.load_state_dict(teacher_state)
        start = None
        if kind == "fitnets":  # stage 1: the student's middle block learns the teacher's middle ReLU
            start = train.build_model(cfg, fit)
            guided = [m for m in start.modules() if isinstance(m, zoo._Block)][1]
            hint = [m for m in teacher.modules() if isinstance(m, torch.nn.ReLU)][1]
            distill.fitnets_hints(start, teacher, guided, hint, torch.from_numpy(fit.x_train), HINT_EPOCHS, 1e-3,
                                  seed)
        student, _ = train.train(cfg, fit, model=start, teacher=teacher, temperature=temperature, alpha=alpha,
                                 distill_kind="hinton" if kind == "fitnets" else kind, noise=noise)
    result = {"seed": seed, "method": method, "test": accuracy(student, mnist.x_test, mnist.y_test),
              "validation": accuracy(student, fit.x_test, fit.y_test), "seconds": time.perf_counter() - t0}
    if check_golden:  # the compiled student's golden model against Brevitas, on every test image
        with tempfile.TemporaryDirectory() as tmp:
            train.export_qonnx(student, (784,), Path(tmp) / "m.onnx")
            graph = build.compile_model(Path(tmp) / "m.onnx", Path(tmp) / "b")
            predicted = golden.predict_float(graph, mnist.x_test).argmax(1)
        result["golden_test"] = float((predicted == mnist.y_test).mean())
        result["golden_equals_brevitas"] = bool((predicted == train.evaluate(student, mnist.x_test).argmax(1)).all())
    return result


def describe(method: tuple) -> str:
    kind, temperature, alpha, noise = method
    return f"{kind} T={temperature:g} alpha={alpha:g}" + (f" noise={noise:g}" if noise else "")


def main() -> int:
    t0 = time.perf_counter()
    mnist = data.load_mnist()
    fit = split(mnist)
    teacher_cfg = config.Config(dataset="mnist", model=config.ModelConfig(kind="tfc", input_bits=8),
                                train=config.TrainConfig(epochs=TEACHER_EPOCHS, batch_size=256, lr=0.001))
    train.seed_everything(teacher_cfg.train.seed)  # the teacher's initial weights too: the same teacher every run
    teacher, _ = train.train(teacher_cfg, fit, model=zoo.FloatMLP(784, TEACHER_HIDDEN, 10, dropout=TEACHER_DROPOUT))
    teacher_acc = accuracy(teacher, mnist.x_test, mnist.y_test)
    print(f"float LFC teacher (dropout {TEACHER_DROPOUT:g}, {TEACHER_EPOCHS} epochs)   test {teacher_acc:.2%}")
    state = teacher.state_dict()

    jobs = [(seed, None, None, False) for seed in SEEDS] + [(seed, RECIPE, state, seed == SEEDS[0]) for seed in SEEDS]
    jobs += [(SEEDS[0], method, state, False) for method in OTHERS]
    with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(run_student, *zip(*jobs, strict=True)))
    alone = [r for r in results if r["method"] is None]
    distilled = [r for r in results if r["method"] == RECIPE]
    others = [r for r in results if r["method"] in OTHERS]

    print(f"W1A1 TFC student, {STUDENT_EPOCHS} epochs; distilled: {describe(RECIPE)}")
    for a, d in zip(alone, distilled, strict=True):
        print(f"  seed {a['seed']}: alone test {a['test']:.2%} (validation {a['validation']:.2%}), distilled test "
              f"{d['test']:.2%} (validation {d['validation']:.2%}): {100 * (d['test'] - a['test']):+.2f} pt")
    mean = {name: {split_name: sum(r[split_name] for r in runs) / len(runs) for split_name in ("test", "validation")}
            for name, runs in (("alone", alone), ("distilled", distilled))}
    gain = 100 * (mean["distilled"]["test"] - mean["alone"]["test"])
    print(f"mean of {len(SEEDS)} seeds: alone test {mean['alone']['test']:.2%} "
          f"(validation {mean['alone']['validation']:.2%}), distilled test {mean['distilled']['test']:.2%} "
          f"(validation {mean['distilled']['validation']:.2%}): {gain:+.2f} pt")
    for r in others:
        print(f"  for reference, seed {r['seed']}, {describe(r['method'])}: test {r['test']:.2%} "
              f"(validation {r['validation']:.2%})")
    checked = distilled[0]
    print(f"distilled student (seed {checked['seed']}) compiled: golden test {checked['golden_test']:.2%}, "
          f"golden argmax = Brevitas argmax on all {len(mnist.y_test)} test images: "
          f"{checked['golden_equals_brevitas']}")

    result = {"bench": "distill_tfc", "teacher_accuracy": round(teacher_acc, 4), "recipe": describe(RECIPE),
              "epochs": STUDENT_EPOCHS, "seeds": list(SEEDS),
              "alone_accuracy": [round(r["test"], 4) for r in alone],
              "distilled_accuracy": [round(r["test"], 4) for r in distilled],
              "alone_mean": round(mean["alone"]["test"], 4), "distilled_mean": round(mean["distilled"]["test"], 4),
              "alone_validation_mean": round(mean["alone"]["validation"], 4),
              "distilled_validation_mean": round(mean["distilled"]["validation"], 4),
              "gain_points": round(gain, 2),
              "seeds_improved": sum(d["test"] > a["test"] for a, d in zip(alone, distilled, strict=True)),
              "others": {describe(r["method"]): round(r["test"], 4) for r in others},
              "golden_accuracy": round(checked["golden_test"], 4),
              "golden_equals_brevitas": checked["golden_equals_brevitas"],
              "seconds": round(time.perf_counter() - t0, 1),
              "ok": bool(gain > 0 and checked["golden_equals_brevitas"]
                         and checked["golden_test"] == checked["test"])}
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
