"""Knowledge distillation on MNIST: a W1A1 TFC student (784 -> 3 x 64 -> 10) distilled from a float LFC
teacher (784 -> 3 x 1024 -> 10) against the same student trained alone, same seeds and epochs.
Goal: the distilled student beats the student trained alone."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quant_train import config, data, train, zoo  # noqa: E402
from xnorkit import build, golden  # noqa: E402

TEACHER_EPOCHS = 5
STUDENT_EPOCHS = 10
TEMPERATURE, ALPHA = 4.0, 0.9


def accuracy(model, x, y) -> float:
    return float((train.evaluate(model, x).argmax(1) == y).mean())


def main() -> int:
    t0 = time.perf_counter()
    mnist = data.load_mnist()
    base = config.Config(dataset="mnist", model=config.ModelConfig(kind="tfc", input_bits=8))

    teacher_cfg = base.model_copy(update={"train": config.TrainConfig(epochs=TEACHER_EPOCHS, batch_size=256,
                                                                        lr=0.001)})
    teacher, _ = train.train(teacher_cfg, mnist, model=zoo.FloatMLP(784, [1024, 1024, 1024], 10))
    teacher_acc = accuracy(teacher, mnist.x_test, mnist.y_test)
    print(f"float LFC teacher          {teacher_acc:.2%}")

    student_cfg = base.model_copy(update={"train": config.TrainConfig(epochs=STUDENT_EPOCHS, batch_size=256,
                                                                        lr=0.01)})
    alone, _ = train.train(student_cfg, mnist)
    alone_acc = accuracy(alone, mnist.x_test, mnist.y_test)
    print(f"W1A1 TFC alone             {alone_acc:.2%}")
    distilled, _ = train.train(student_cfg, mnist, teacher=teacher, temperature=TEMPERATURE, alpha=ALPHA)
    distilled_acc = accuracy(distilled, mnist.x_test, mnist.y_test)
    print(f"W1A1 TFC distilled         {distilled_acc:.2%}   (T={TEMPERATURE}, alpha={ALPHA})")

    with tempfile.TemporaryDirectory() as tmp:
        train.export_qonnx(distilled, (784,), Path(tmp) / "m.onnx")
        graph = build.compile_model(Path(tmp) / "m.onnx", Path(tmp) / "b")
        golden_acc = float((golden.predict_float(graph, mnist.x_test).argmax(1) == mnist.y_test).mean())
    print(f"distilled student, golden  {golden_acc:.2%}")
    result = {"bench": "distill_tfc", "teacher_accuracy": round(teacher_acc, 4), "alone_accuracy": round(alone_acc, 4),
              "distilled_accuracy": round(distilled_acc, 4), "golden_accuracy": round(golden_acc, 4),
              "gain_points": round(100 * (distilled_acc - alone_acc), 2), "epochs": STUDENT_EPOCHS,
              "seconds": round(time.perf_counter() - t0, 1), "ok": bool(distilled_acc > alone_acc)}
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
