"""BranchyNet (Teerapittayanon et al. 2016) on MNIST: B-LeNet, a quantized LeNet-5 (W4A4) with one early
exit after the first convolution block, trained with the joint weighted loss of both exits. The exit's
softmax-entropy threshold is calibrated on a validation split of the training set (the last 5,000
images; the network trains on the other 55,000): the largest threshold whose validation accuracy stays
within 0.2 points of always running the full network. On the test set the script reports the exit
distribution, the average MACs per image against the full network (LeNet-5 without the branch) and the
accuracy of both. Goal: >= 3x fewer MACs at an accuracy loss of at most 0.5 points (BranchyNet reports
about 5x on CPU).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xnorkit import build, golden  # noqa: E402
from xnorkit.quant_train import conditional, config, data, train  # noqa: E402

EPOCHS = 8
ALLOWANCE = 0.002  # on validation: the last 5,000 training images are easier than the test set


def main() -> int:
    t0 = time.perf_counter()
    mnist = data.load_mnist()
    fit = data.Dataset("mnist", mnist.x_train[:55000], mnist.y_train[:55000], mnist.x_train[55000:],
                       mnist.y_train[55000:], 10, mnist.image_shape)
    cfg = config.Config(dataset="mnist",
                        model=config.ModelConfig(kind="blenet", weights="int4", a_bits=4, input_bits=8,
                                                 exit_weights=[1.0]),
                        train=config.TrainConfig(epochs=EPOCHS, batch_size=128, lr=0.005))
    model, _ = train.train(cfg, fit, progress=lambda e, n, loss: print(
        f"  epoch {e}/{n} loss {loss:.4f} {time.perf_counter() - t0:5.0f} s", flush=True))

    def exits(x: np.ndarray) -> list[np.ndarray]:
        both = train.evaluate(model, x.reshape(-1, 1, 28, 28), every_exit=True)
        return [both[:, :10], both[:, 10:]]

    val_exit, val_final = exits(fit.x_test)
    threshold = conditional.calibrate_single_exit(val_exit, val_final, fit.y_test, ALLOWANCE)
    test_exit, test_final = exits(mnist.x_test)
    predictions, taken = conditional.cascade([test_exit, test_final], [threshold])

    one = torch.zeros(1, 1, 28, 28)
    total = conditional.count_macs(model, one)  # both exits computed
    to_exit = conditional.count_macs(torch.nn.Sequential(model.inp, model.stem, model.exit), one)
    branch = to_exit - conditional.count_macs(torch.nn.Sequential(model.inp, model.stem), one)
    full_network = total - branch  # LeNet-5 without the early exit
    average = conditional.average_cost(taken, [to_exit, total])
    full_acc = float((test_final.argmax(1) == mnist.y_test).mean())
    cascade_acc = float((predictions == mnist.y_test).mean())
    exit_acc = float((test_exit.argmax(1) == mnist.y_test).mean())
    early = float((taken == 0).mean())
    loss = 100 * (full_acc - cascade_acc)

    with tempfile.TemporaryDirectory() as tmp:
        train.export_qonnx(model, (1, 28, 28), Path(tmp) / "m.onnx")
        graph = build.compile_model(Path(tmp) / "m.onnx", Path(tmp) / "b")
        gold = golden.predict_float(graph, mnist.x_test[:1000].reshape(-1, 1, 28, 28))
    agree = int(((gold[:, :10].argmax(1) == test_exit[:1000].argmax(1))
                 & (gold[:, 10:].argmax(1) == test_final[:1000].argmax(1))).sum())

    print(f"entropy threshold {threshold:.4f} (calibrated on 5,000 validation images)")
    print(f"test: {early:.1%} of images leave at the early exit (alone {exit_acc:.2%} accurate)")
    print(f"accuracy: full network {full_acc:.2%}, B-LeNet cascade {cascade_acc:.2%} (loss {loss:.2f} points, "
          f"goal <= 0.5)")
    print(f"MACs per image: full network {full_network}, early exit path {to_exit}, cascade average "
          f"{average:.0f}: {full_network / average:.2f}x fewer (goal >= 3x; BranchyNet ~5x on CPU)")
    print(f"compiled: golden equals Brevitas on both exits for {agree}/1000 test images")
    result = {"bench": "branchy_lenet", "full_accuracy": round(full_acc, 4), "cascade_accuracy": round(cascade_acc, 4),
              "loss_points": round(loss, 2), "early_exit_fraction": round(early, 4),
              "entropy_threshold": round(threshold, 5), "full_macs": full_network, "average_macs": round(average),
              "mac_reduction": round(full_network / average, 2), "golden_agreement": agree,
              "seconds": round(time.perf_counter() - t0, 1),
              "ok": bool(full_network / average >= 3 and loss <= 0.5 and agree == 1000)}
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
