"""The generated C firmware on MNIST: every zoo network the C generator builds, bit-exact against the golden
model on the full 10,000-image test set on the host (gcc) and on the first 1,000 images on a Cortex-M4
emulated by QEMU (mps2-an386, semihosting): TFC W1A1 and W2A2, SFC and LFC W1A1, a LeNet-5 W1A1 (padded
convolutions, max-pooling), an SFC with ternary weights pruned to 25% density (Deep Compression stage 1)
and B-LeNet (LeNet-5 with an early exit). Each also through the integer API (NAME_infer_int on the input
quantizer's integers, uint8 pixels for these networks) on the same images, host and Cortex-M4.

Printed per network: accuracy of golden, the host C and the Cortex-M4 runs (each equal to golden on the
images it ran), the activation arena, the weight tables, and the wall time of each run. The networks train
briefly: this bench is about the firmware, not about accuracy (the train_* benches reach the published
figures). B-LeNet's firmware computes its early exit's outputs beside the final ones (every output compared);
stopping at a confident exit is not in the firmware yet.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xnorkit import build, golden, outputs  # noqa: E402
from xnorkit.firmware import emit_c, runner  # noqa: E402
from xnorkit.quant_train import config, data, recipe, train  # noqa: E402

HOST_IMAGES, M4_IMAGES = 10000, 1000
# (label, zoo model, weights, activation bits, epochs, training images, prune density or None)
NETWORKS = (
    ("TFC W1A1", "tfc", "binary", 1, 2, 60000, None),
    ("TFC W2A2", "tfc", "int2", 2, 2, 60000, None),
    ("SFC W1A1", "sfc", "binary", 1, 2, 60000, None),
    ("LFC W1A1", "lfc", "binary", 1, 1, 30000, None),
    ("LeNet-5 W1A1", "lenet5", "binary", 1, 1, 20000, None),
    ("SFC ternary, 25% density", "sfc", "ternary", 1, 2, 60000, 0.25),
    ("B-LeNet W1A1 (early exit)", "blenet", "binary", 1, 1, 20000, None),
)


def accuracy(graph, acc: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the final output (a network with early exits returns each exit's, then the final's)."""
    final = graph.producer(graph.float_outputs[-1])
    return float((golden.dequantize(final, acc[:, -10:]).argmax(1) == labels).mean())


def main() -> int:
    t0 = time.perf_counter()
    mnist = data.load_mnist()
    rows, ok = [], True
    for label, kind, weights, a_bits, epochs, n_train, density in NETWORKS:
        cfg = config.Config(dataset="mnist",
                            model=config.ModelConfig(kind=kind, weights=weights, a_bits=a_bits, input_bits=8),
                            train=config.TrainConfig(epochs=epochs, batch_size=256, lr=0.01),
                            prune=config.PruneConfig(density=density, steps=1, epochs=1) if density else None)
        subset = data.Dataset("mnist", mnist.x_train[:n_train], mnist.y_train[:n_train], mnist.x_test,
                              mnist.y_test, 10, mnist.image_shape)
        model, _ = recipe.run(cfg, subset)
        with tempfile.TemporaryDirectory() as tmp:
            train.export_qonnx(model, train.input_shape(cfg, mnist), Path(tmp) / "model.onnx")
            graph = build.compile_model(Path(tmp) / "model.onnx", Path(tmp) / "build")
            x = mnist.x_test.reshape(-1, *graph.input_shape)[:HOST_IMAGES]
            y = mnist.y_test[:HOST_IMAGES]
            expected = golden.predict_int(graph, x)
            golden_acc = accuracy(graph, expected, y)
            fw = Path(tmp) / "firmware"
            outputs.write_tree(fw, emit_c.emit(graph))
            prog = emit_c.lower(graph)
            t_host = time.perf_counter()
            host = runner.run_host(fw, x, expected.shape[1])
            host_s = time.perf_counter() - t_host
            t_m4 = time.perf_counter()
            m4 = runner.run_cortex_m4(fw, x[:M4_IMAGES], expected.shape[1])
            m4_s = time.perf_counter() - t_m4
            # the integer API (NAME_infer_int) on the input quantizer's integers, as a camera would deliver them
            x_int = golden.quantize_input(graph, x)
            int_host = runner.run_host(fw, x_int, expected.shape[1], integer=True)
            int_m4 = runner.run_cortex_m4(fw, x_int[:M4_IMAGES], expected.shape[1], integer=True)
        density_measured = float(np.mean([(m.weights != 0).mean() for m in graph.matmuls()]))
        row = {"net": label, "host_images": len(x), "host_bit_exact": bool(np.array_equal(host, expected)),
               "m4_images": len(m4), "m4_bit_exact": bool(np.array_equal(m4, expected[:M4_IMAGES])),
               "input_type": emit_c.input_ctype(graph.nodes[0].dtype),
               "int_host_bit_exact": bool(np.array_equal(int_host, expected)),
               "int_m4_bit_exact": bool(np.array_equal(int_m4, expected[:M4_IMAGES])),
               "golden_accuracy": round(golden_acc, 4),
               "host_accuracy": round(accuracy(graph, host, y), 4),
               "m4_accuracy": round(accuracy(graph, m4, y[:M4_IMAGES]), 4),
               "golden_accuracy_first_1000": round(accuracy(graph, expected[:M4_IMAGES], y[:M4_IMAGES]), 4),
               "arena_bytes": prog.bytes, "weight_table_bytes": prog.weight_bytes,
               "fc_weight_density": round(density_measured, 3), "host_seconds": round(host_s, 1),
               "m4_seconds": round(m4_s, 1)}
        rows.append(row)
        print(f"{label}: golden {golden_acc:.2%} on {len(x):,} images; host C {row['host_accuracy']:.2%} "
              f"({'bit-exact' if row['host_bit_exact'] else 'MISMATCH'}, {host_s:.1f} s); Cortex-M4 QEMU "
              f"{row['m4_accuracy']:.2%} on {len(m4):,} (golden {row['golden_accuracy_first_1000']:.2%}; "
              f"{'bit-exact' if row['m4_bit_exact'] else 'MISMATCH'}, {m4_s:.1f} s); arena {prog.bytes:,} bytes, "
              f"tables {prog.weight_bytes:,} bytes, fully connected weight density {density_measured:.2f}",
              flush=True)
        print(f"  integer API (NAME_infer_int, {row['input_type']} inputs): host "
              f"{'bit-exact' if row['int_host_bit_exact'] else 'MISMATCH'} on {len(x):,}, Cortex-M4 "
              f"{'bit-exact' if row['int_m4_bit_exact'] else 'MISMATCH'} on {len(int_m4):,}", flush=True)
        ok &= row["host_bit_exact"] and row["m4_bit_exact"] and row["int_host_bit_exact"] and row["int_m4_bit_exact"]
    result = {"bench": "firmware_mnist", "networks": rows, "seconds": round(time.perf_counter() - t0, 1),
              "ok": bool(ok)}
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
