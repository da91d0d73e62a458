"""Shared by bench/train_*.py: train one zoo MLP on the full MNIST training set (60,000 images), report
its test accuracy (last epoch, no selection on the test set) beside the published figure, then compile the
QONNX export and check that the golden model's accuracy on all 10,000 test images is the same."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xnorkit import build, golden  # noqa: E402
from xnorkit.quant_train import config, data, train  # noqa: E402


def run(bench: str, kind: str, weights: str, a_bits: int, epochs: int, lr: float, dropout: float, goal: float,
        published: dict[str, float], shift: int = 0) -> int:
    t0 = time.perf_counter()
    mnist = data.load_mnist()
    cfg = config.Config(dataset="mnist",
                        model=config.ModelConfig(kind=kind, weights=weights, a_bits=a_bits, input_bits=8,
                                                 dropout=dropout),
                        train=config.TrainConfig(epochs=epochs, batch_size=256, lr=lr, shift=shift))
    print(f"{bench}: {kind.upper()} weights={weights} a_bits={a_bits}, {epochs} epochs, Adam lr {lr} cosine, "
          f"dropout {dropout}, random shifts of up to {shift} pixels, 8-bit integer pixels")

    def progress(epoch: int, total: int, loss: float) -> None:
        print(f"  epoch {epoch:3d}/{total}  loss {loss:.4f}  {time.perf_counter() - t0:6.0f} s", flush=True)

    model, metrics = train.train(cfg, mnist, progress=progress)
    train_seconds = time.perf_counter() - t0
    accuracy = metrics["test_accuracy"]
    with tempfile.TemporaryDirectory() as tmp:
        train.export_qonnx(model, (784,), Path(tmp) / "model.onnx")
        graph = build.compile_model(Path(tmp) / "model.onnx", Path(tmp) / "build")
        golden_pred = golden.predict_float(graph, mnist.x_test).argmax(1)
    brevitas_pred = train.evaluate(model, mnist.x_test).argmax(1)
    golden_accuracy = float((golden_pred == mnist.y_test).mean())
    agree = int((golden_pred == brevitas_pred).sum())
    print(f"test accuracy (10,000 images): Brevitas {accuracy:.2%}, golden {golden_accuracy:.2%} "
          f"(argmax agreement {agree}/{len(golden_pred)})")
    for source, figure in published.items():
        print(f"  published, {source}: {figure:.2%}")
    print(f"goal >= {goal:.2%}")
    result = {"bench": bench, "accuracy": round(accuracy, 4), "golden_accuracy": round(golden_accuracy, 4),
              "golden_agreement": agree, "n_test": int(len(mnist.y_test)), "goal": goal,
              "published": published, "epochs": epochs, "train_seconds": round(train_seconds, 1),
              "ok": bool(accuracy >= goal and agree == len(golden_pred) and golden_accuracy == accuracy)}
    print(json.dumps(result))
    return 0 if result["ok"] else 1
