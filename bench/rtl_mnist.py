"""The generated RTL on MNIST's full test set: SFC and LFC W1A1 (3 hidden layers of 256 and 1024), each
at two foldings (a small one, and a fast one whose first layer reads the whole 784-pixel image per cycle),
a TFC W2A2 and a LeNet-5 W1A1 (padded convolutions, max-pooling), simulated by Verilator through the
compiled C++ harness (sim/harness.cpp) on all 10,000 test images (LeNet-5: the first 2,000, its
convolutions take more cycles per image), every output compared exactly with the golden model.

Printed per design: accuracy of the RTL (equal to golden's), simulation wall time and simulated
inferences per second, measured cycles per inference back to back against the analytical model, and the
frames per second the design reaches at 200 MHz. Goal: the 10,000-image LFC run simulates in under 5
minutes on this 2-core machine (FINN users report days of RTL simulation for large designs).

The networks train for a few epochs only: this bench is about the hardware, not about accuracy (the
train_*_w1a1 benches train them to their published accuracy).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xnorkit import build, golden, outputs  # noqa: E402
from xnorkit.hw import emit_sv  # noqa: E402
from xnorkit.hw import folding as fold_mod  # noqa: E402
from xnorkit.quant_train import config, data, train  # noqa: E402
from xnorkit.sim import runner  # noqa: E402

CLOCK_HZ = 200e6
GOAL_SECONDS = 300
# (zoo model, weights, activation bits, epochs, training images, test images, {folding: solver target in cycles})
NETWORKS = (
    ("sfc", "binary", 1, 3, 60000, 10000, {"small": 4096, "fast": 64}),
    ("lfc", "binary", 1, 3, 60000, 10000, {"small": 4096, "fast": 64}),
    ("tfc", "int2", 2, 3, 60000, 10000, {"small": 1024}),  # W2A2
    ("lenet5", "binary", 1, 1, 20000, 2000, {"small": 4096}),  # padded convolutions and max-pooling
)


def main() -> int:
    t0 = time.perf_counter()
    mnist = data.load_mnist()
    rows, ok = [], True
    for kind, weights, a_bits, epochs, n_train, n_test, foldings in NETWORKS:
        cfg = config.Config(dataset="mnist", model=config.ModelConfig(kind=kind, weights=weights, a_bits=a_bits,
                                                                      input_bits=8),
                            train=config.TrainConfig(epochs=epochs, batch_size=256, lr=0.01))
        subset = data.Dataset("mnist", mnist.x_train[:n_train], mnist.y_train[:n_train], mnist.x_test,
                              mnist.y_test, 10, mnist.image_shape)
        model, metrics = train.train(cfg, subset)
        label = f"{kind.upper()} {'W1' if weights == 'binary' else 'W' + weights[3:]}A{a_bits}"
        with tempfile.TemporaryDirectory() as tmp:
            train.export_qonnx(model, train.input_shape(cfg, mnist), Path(tmp) / "model.onnx")
            graph = build.compile_model(Path(tmp) / "model.onnx", Path(tmp) / "build")
            x_int = golden.quantize_input(graph, mnist.x_test[:n_test].reshape(-1, *graph.input_shape))
            y_test = mnist.y_test[:n_test]
            expected = golden.predict_from_int(graph, x_int)
            golden_acc = float((build.dequantize(graph, expected).argmax(1) == y_test).mean())
            print(f"{label}, {epochs} epochs on {n_train} images: Brevitas {metrics['test_accuracy']:.2%} (10,000 test "
                  f"images), golden {golden_acc:.2%} on the {n_test} simulated")
            for name, target in foldings.items():
                folding = fold_mod.solve(graph, target)
                rtl = Path(tmp) / name / "rtl"
                outputs.write_tree(rtl, emit_sv.emit(graph, folding))
                design = json.loads((rtl / "design.json").read_text())
                t_build = time.perf_counter()
                runner.build_bulk(rtl)
                build_s = time.perf_counter() - t_build
                t_sim = time.perf_counter()
                result = runner.simulate_bulk(rtl, x_int, expected)
                sim_s = time.perf_counter() - t_sim
                rtl_acc = float((build.dequantize(graph, result.outputs).argmax(1) == y_test).mean())
                cycles = result.steady_state_cycles
                analytical = design["initiation_interval"]
                row = {"net": label, "folding": name, "fold": design["folding"], "images": len(x_int),
                       "bit_exact": result.mismatch is None, "rtl_accuracy": round(rtl_acc, 4),
                       "golden_accuracy": round(golden_acc, 4), "cycles_measured": cycles,
                       "cycles_analytical": analytical, "latency_cycles": result.latency,
                       "latency_estimate": design["latency_estimate"],
                       "fps_at_200mhz": round(CLOCK_HZ / cycles), "build_seconds": round(build_s, 1),
                       "sim_seconds": round(sim_s, 1), "sim_inferences_per_s": round(len(x_int) / sim_s)}
                rows.append(row)
                folds = ", ".join(f"{k} PE={v['pe']} SIMD={v['simd']}" for k, v in design["folding"].items())
                print(f"  {name:5s} folding ({folds})")
                verdict = "bit-exact" if row["bit_exact"] else f"MISMATCH: {result.mismatch}"
                print(f"        {len(x_int)} images {verdict}, RTL accuracy {rtl_acc:.2%}; {cycles:.1f} cycles per "
                      f"inference measured, {analytical} analytical, latency {result.latency} (estimate "
                      f"{design['latency_estimate']}); "
                      f"{row['fps_at_200mhz']:,} FPS at 200 MHz")
                print(f"        Verilator build {build_s:.0f} s, simulation {sim_s:.1f} s "
                      f"({row['sim_inferences_per_s']:,} inferences/s)")
                ok &= (row["bit_exact"] and rtl_acc == golden_acc and abs(cycles - analytical) <= 0.05 * analytical)
    lfc_seconds = max(r["sim_seconds"] for r in rows if r["net"].startswith("LFC"))
    print(f"slowest 10,000-image LFC simulation: {lfc_seconds:.1f} s (goal < {GOAL_SECONDS} s)")
    result = {"bench": "rtl_mnist", "designs": rows, "lfc_sim_seconds": lfc_seconds,
              "seconds": round(time.perf_counter() - t0, 1), "ok": bool(ok and lfc_seconds < GOAL_SECONDS)}
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
