"""Golden model speed on LFC (784 -> 3 x 1024 -> 10, W1A1, 8-bit integer pixels) over MNIST's 10,000
test images, against qonnx's executor on the same QONNX model, in the same run.

Speed does not depend on training, so the network has random binary weights and batch-norm statistics
calibrated on 4,000 training images (realistic thresholds). Goal: compile + golden under 20 s.
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

from xnorkit import build, compare, golden  # noqa: E402
from xnorkit.quant_train import data, train  # noqa: E402
from xnorkit.quant_train.zoo import MLP  # noqa: E402

GOAL_S = 20.0


def calibrated_lfc(x_train: np.ndarray) -> torch.nn.Module:
    torch.manual_seed(0)
    model = MLP(784, [1024, 1024, 1024], 10, 1, 1, input_bits=8)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for start in range(0, 4000, 500):
            model(torch.from_numpy(x_train[start:start + 500]))
    return model.eval()


def main() -> int:
    mnist = data.load_mnist()
    x = mnist.x_test
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train.export_qonnx(calibrated_lfc(mnist.x_train), (784,), tmp / "model.onnx")

        t0 = time.perf_counter()
        graph = build.compile_model(tmp / "model.onnx", tmp / "build")
        compile_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        golden_float = build.dequantize(graph, golden.predict_int(graph, x))
        golden_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        qonnx_float = build.qonnx_execute(tmp / "build", x)[graph.float_output]
        qonnx_s = time.perf_counter() - t0

    agree = int(compare.float_rows_agree(golden_float, qonnx_float).sum())
    total = compile_s + golden_s
    print(f"LFC W1A1 on {len(x)} MNIST test images")
    print(f"  xnorkit compile          {compile_s:7.2f} s")
    print(f"  xnorkit golden (integer) {golden_s:7.2f} s   ({len(x) / golden_s:,.0f} images/s)")
    print(f"  qonnx executor (float)   {qonnx_s:7.2f} s   ({len(x) / qonnx_s:,.0f} images/s)  [baseline]")
    print(f"  golden / qonnx time      {golden_s / qonnx_s:7.2f}")
    print(f"  compile + golden         {total:7.2f} s   (goal < {GOAL_S:.0f} s)")
    print(f"  outputs agreeing with qonnx: {agree}/{len(x)}")
    result = {"bench": "golden_lfc", "images": len(x), "compile_s": round(compile_s, 3), "golden_s": round(golden_s, 3),
              "qonnx_s": round(qonnx_s, 3), "golden_over_qonnx": round(golden_s / qonnx_s, 3),
              "agreement": agree, "ok": bool(total < GOAL_S and agree == len(x))}
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
