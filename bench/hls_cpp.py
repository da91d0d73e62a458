"""The HLS backend's C++ under plain g++ against the golden model, on every test input: the digits default
(450 test images) and SFC W1A1 (784 -> 3 x 256 -> 10, all 10,000 MNIST test images), each at the folding
`--board pynq-z2` picks and at a slow one. Prints agreement and the g++ run time beside golden's numpy
time. The networks train briefly: this bench is about the backend's exactness. Goal: every output equal.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xnorkit import build, golden  # noqa: E402
from xnorkit.hw import fit  # noqa: E402
from xnorkit.hw import folding as fold_mod  # noqa: E402
from xnorkit.quant_train import config, data, train  # noqa: E402
from xnorkit.sim import hls  # noqa: E402


def check(label: str, build_dir: Path, x_test: np.ndarray) -> list[dict]:
    from xnorkit import boards

    graph = build.backend_graph(build_dir)  # what the HLS C++ is built from (the same outputs as compiled)
    x_int = golden.quantize_input(graph, x_test)
    t = time.perf_counter()
    expected = golden.predict_from_int(graph, x_int)
    golden_s = time.perf_counter() - t
    rows = []
    for name, fold in (("pynq-z2", fit.solve(graph, boards.load("pynq-z2"))[0]), ("slow", fold_mod.solve(graph, 4096))):
        build.generate_hls(build_dir, fold, "pynq-z2")
        t = time.perf_counter()
        out = hls.run(build_dir / "hls", x_int, expected.shape[1])
        seconds = time.perf_counter() - t
        agree = int((out == expected).all(axis=1).sum())
        print(f"{label:>15}, folding {name:<8} {fold_mod.initiation_interval(graph, fold):>5} cycles: g++ {agree}/"
              f"{len(x_int)} outputs equal to golden, {seconds:.2f} s (golden numpy {golden_s:.2f} s)")
        rows.append({"network": label, "folding": name, "inputs": len(x_int), "agree": agree,
                     "seconds": round(seconds, 2)})
    return rows


def main() -> int:
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        digits = data.load_digits()
        model, _ = train.train(config.DEFAULT, digits)
        train.export_qonnx(model, (64,), Path(tmp) / "digits.onnx")
        build.compile_model(Path(tmp) / "digits.onnx", Path(tmp) / "digits")
        rows += check("digits default", Path(tmp) / "digits", digits.x_test)
        mnist = data.load_mnist()
        cfg = config.Config(dataset="mnist", model=config.ModelConfig(kind="sfc", input_bits=8),
                            train=config.TrainConfig(epochs=1, batch_size=256))
        subset = data.Dataset("mnist", mnist.x_train[:20000], mnist.y_train[:20000], mnist.x_test, mnist.y_test, 10,
                              mnist.image_shape)
        model, _ = train.train(cfg, subset)
        train.export_qonnx(model, (784,), Path(tmp) / "sfc.onnx")
        build.compile_model(Path(tmp) / "sfc.onnx", Path(tmp) / "sfc")
        rows += check("SFC W1A1", Path(tmp) / "sfc", mnist.x_test)
    ok = all(r["agree"] == r["inputs"] for r in rows)
    print(json.dumps({"bench": "hls_cpp", "runs": rows, "seconds": round(time.perf_counter() - t0, 1), "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
