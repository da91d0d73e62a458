"""Pruning and early exits that pay off in hardware (issue 8), each measured in one run:

1. Bit-exactness on every MNIST test image (RTL under Verilator, host C) and on the first QEMU_IMAGES (Cortex-M4
   under QEMU) of: a W1A1 LeNet-300-100 pruned to 10% density, an SFC W1A1 pruned to 25% (pruned binary layers:
   +-1 or 0, the RTL's masked XNOR-popcount datapath), a group-lasso-pruned MLP on digits (neurons removed), and
   B-LeNet with its early exit (host C and QEMU; the RTL generator builds single-output networks).
2. Yosys (synth_xilinx, Arty A7) of a pruned binary layer (25% density) against the dense one at the same fully
   parallel folding, both with constant weights: LUTs of the layer. A layer of SFC's size (784 x 256 and
   256 x 256 fully parallel) is beyond what the WebAssembly Yosys finishes here; this is a 128 x 64 layer.
3. Memory bits of the pruned SFC's weights in the smallest sparse format (packing.sparse_weight_bits) against
   dense (as stored, 2 bits per pruned binary weight, and against the 1-bit dense binary SFC).
4. B-LeNet on MNIST: the integer exit margin calibrated on held-out training images; on the test set the
   exit rate, the accuracy against always running the full network, and the Cortex-M4 instructions per image
   with and without the exit (QEMU, first QEMU_IMAGES test images).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware import runner as fw  # noqa: E402
from hw import synth  # noqa: E402
from hw.folding import Fold  # noqa: E402
from quant_train import compression, config, data, sparsity, train  # noqa: E402
from sim import runner  # noqa: E402
from tests.conftest import random_graph  # noqa: E402
from xnorkit import build, golden, ir, numerics, packing, passes  # noqa: E402

QEMU_IMAGES = 200
EPOCHS = 3


def pruned_binary(kind: str, density: float, mnist, work: Path) -> tuple[Path, float]:
    """Train a W1A1 zoo MLP, prune every layer to `density` (magnitude, one step) and retrain; compile."""
    cfg = config.Config(dataset="mnist", model=config.ModelConfig(kind=kind, input_bits=8),
                        train=config.TrainConfig(epochs=EPOCHS, batch_size=256, lr=0.01))
    model, _ = train.train(cfg, mnist)
    names = list(compression.prunable(model))
    compression.set_masks(model, compression.magnitude_masks(model, {n: density for n in names}))
    model, metrics = train.train(cfg, mnist, model=model, after_step=compression.apply_masks)
    train.export_qonnx(model, (784,), work / f"{kind}.onnx")
    build.compile_model(work / f"{kind}.onnx", work / kind)
    return work / kind, metrics["test_accuracy"]


def bit_exact(b: Path, x: np.ndarray, rtl: bool = True) -> dict:
    """RTL (solver's folding at 256 cycles), host C on every input, QEMU on the first QEMU_IMAGES."""
    graph = build.load(b)
    expected = golden.predict_int(graph, x)
    result = {}
    if rtl:
        build.generate_hw(b, target_cycles=256)
        x_int = golden.quantize_input(graph, x)
        sim = runner.simulate_bulk(b / "rtl", x_int, golden.run_from_int(graph, x_int))
        result["rtl"] = sim.mismatch is None
        result["rtl_cycles"] = sim.steady_state_cycles
    build.generate_firmware(b)
    result["c"] = bool(np.array_equal(fw.run_host(b / "firmware", x, expected.shape[1]), expected))
    result["cortex_m4"] = bool(np.array_equal(fw.run_cortex_m4(b / "firmware", x[:QEMU_IMAGES], expected.shape[1]),
                                              expected[:QEMU_IMAGES]))
    return result


def layer_luts() -> dict:
    """A binary 128 -> 64 layer, fully parallel with constant weights, dense and pruned to 25%."""
    dense = random_graph([32, 128, 64, 10], seed=1)
    fc1, sign1 = dense.node("fc1"), dense.node("sign1")
    keep = np.random.default_rng(2).random(fc1.weights.shape) < 0.25
    weights = (fc1.weights * keep).astype(np.int8)
    pruned_fc1 = replace(fc1, weights=weights, w_dtype=ir.IntType(2, True),
                         acc_dtype=numerics.accumulator_type(weights, fc1.in_dtype))
    ranges = np.array([numerics.accumulator_range(r, fc1.in_dtype) for r in weights])
    thresholds = np.clip(sign1.thresholds // 4, ranges[:, :1], ranges[:, 1:] + 1)
    pruned = replace(dense, nodes=tuple(pruned_fc1 if n.name == "fc1" else
                                        replace(sign1, thresholds=thresholds) if n.name == "sign1" else n
                                        for n in dense.nodes),
                     tensor_types={**dense.tensor_types, "acc1": pruned_fc1.acc_dtype})
    inputs = passes.remove_constant_neurons(dense)[0].node("fc1").in_features
    folding = {"fc0": Fold(1, 8, "logic"), "fc1": Fold(64, inputs, "logic"), "fc2": Fold(1, 2, "logic")}
    luts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, graph in (("dense", dense), ("pruned", pruned)):
            b = Path(tmp) / name
            ir.save(graph, b)
            build.generate_hw(b, folding)
            luts[name] = synth.synthesize(b, "arty-a7-35", place_route=False).layers["u_l1"].lut
    return luts


def main() -> int:
    t0 = time.perf_counter()
    mnist = data.load_mnist()
    results: dict = {"bench": "sparse_exit"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for kind, density in (("lenet300", 0.10), ("sfc", 0.25)):
            b, accuracy = pruned_binary(kind, density, mnist, work)
            exact = bit_exact(b, mnist.x_test)
            results[f"{kind}_pruned"] = {"density": density, "accuracy": round(accuracy, 4), **exact}
            print(f"{kind} W1A1 pruned to {density:.0%}: accuracy {accuracy:.2%}; bit-exact RTL {exact['rtl']} "
                  f"({exact['rtl_cycles']:.0f} cycles), host C {exact['c']} (10,000 images), Cortex-M4 "
                  f"{exact['cortex_m4']} ({QEMU_IMAGES} images)  [{time.perf_counter() - t0:.0f} s]", flush=True)
            if kind == "sfc":
                graph = build.load(b)
                stored = sum(n.weights.size * n.w_dtype.bits for n in graph.matmuls())
                sparse = sum(min(packing.sparse_weight_bits(n.weights, n.w_dtype.bits).values())
                             for n in graph.matmuls())
                binary = sum(n.weights.size for n in graph.matmuls())
                results["sfc_memory_bits"] = {"dense_stored": stored, "dense_binary": binary, "sparse": sparse,
                                              "sparse_vs_stored": round(sparse / stored, 3),
                                              "sparse_vs_binary": round(sparse / binary, 3)}
                print(f"SFC weights: dense as stored {stored:,} bits (2-bit pruned binary), dense binary "
                      f"{binary:,}, smallest sparse format {sparse:,} ({sparse / stored:.0%} of stored, "
                      f"{sparse / binary:.0%} of dense binary)", flush=True)

        digits = data.load_digits()  # the digits default (2 x 256, W1A1), group lasso as bench/group_lasso_digits
        cfg = config.Config()
        sparse, _ = train.train(cfg, digits, regularizer=sparsity.neuron_group_lasso, reg_weight=2e-4)
        small, _ = sparsity.prune_by_gamma(sparse, 0.15)
        small, _ = train.train(cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 10})}),
                               digits, model=small)
        train.export_qonnx(small, (64,), work / "gl.onnx")
        graph = build.compile_model(work / "gl.onnx", work / "gl")
        exact = bit_exact(work / "gl", digits.x_test)
        sizes = [n.out_features for n in graph.matmuls()]
        results["group_lasso_mlp"] = {"layers": sizes, **exact}
        print(f"group-lasso MLP on digits: layers {sizes} (from 256, 256, 10); bit-exact RTL {exact['rtl']}, host C "
              f"{exact['c']}, Cortex-M4 {exact['cortex_m4']}  [{time.perf_counter() - t0:.0f} s]", flush=True)

        fit = data.Dataset("mnist", mnist.x_train[:55000], mnist.y_train[:55000], mnist.x_train[55000:],
                           mnist.y_train[55000:], 10, mnist.image_shape)
        cfg = config.Config(dataset="mnist", model=config.ModelConfig(kind="blenet", weights="int4", a_bits=4,
                                                                     input_bits=8, exit_weights=[1.0]),
                            train=config.TrainConfig(epochs=EPOCHS, batch_size=128, lr=0.005))
        model, _ = train.train(cfg, fit)
        train.export_qonnx(model, (1, 28, 28), work / "blenet.onnx")
        b = work / "blenet"
        build.compile_model(work / "blenet.onnx", b)
        x_val, x_test = fit.x_test.reshape(-1, 1, 28, 28), mnist.x_test.reshape(-1, 1, 28, 28)
        margin = build.calibrate_exit(b, x_val, fit.y_test, 0.002)
        graph = build.set_exits(b, [margin])
        values = golden.run(graph, x_test)
        out = golden.predict_int(graph, x_test)
        taken = out[:, -1]
        float_out = [values[t].reshape(len(x_test), -1) for t in graph.float_outputs]
        cascade = np.where(taken == 0, float_out[0].argmax(1), float_out[1].argmax(1))
        cascade_acc = float((cascade == mnist.y_test).mean())
        full_acc = float((float_out[1].argmax(1) == mnist.y_test).mean())
        exact = bit_exact(b, x_test, rtl=False)
        _, with_exit = fw.profile_cortex_m4(b / "firmware", x_test[:QEMU_IMAGES], out.shape[1])
        build.set_exits(b, None)
        build.generate_firmware(b)
        _, without = fw.profile_cortex_m4(b / "firmware", x_test[:QEMU_IMAGES], out.shape[1] - 1)
        ratio = float(without.sum(axis=1).mean() / with_exit.sum(axis=1).mean())
        results["blenet_exit"] = {"margin": margin, "exit_rate": round(float((taken == 0).mean()), 4),
                                  "cascade_accuracy": round(cascade_acc, 4), "full_accuracy": round(full_acc, 4),
                                  "instructions_with_exit": round(float(with_exit.sum(axis=1).mean())),
                                  "instructions_without": round(float(without.sum(axis=1).mean())),
                                  "instruction_ratio": round(ratio, 2), **exact, "rtl": None}
        print(f"B-LeNet W4A4: exit margin >= {margin} (calibrated on 5,000 held-out training images); test: "
              f"{(taken == 0).mean():.1%} leave early, accuracy {cascade_acc:.2%} against {full_acc:.2%} for the "
              f"full network; Cortex-M4 {without.sum(axis=1).mean():,.0f} -> {with_exit.sum(axis=1).mean():,.0f} "
              f"instructions per image ({ratio:.2f}x); bit-exact host C {exact['c']}, Cortex-M4 "
              f"{exact['cortex_m4']}; RTL: not generated (multi-output networks)  "
              f"[{time.perf_counter() - t0:.0f} s]", flush=True)

    luts = layer_luts()
    results["layer_luts"] = {**luts, "ratio": round(luts["pruned"] / luts["dense"], 3)}
    print(f"binary 128 -> 64 layer, fully parallel, constant weights, Yosys synth_xilinx: dense {luts['dense']:,} "
          f"LUTs, pruned to 25% {luts['pruned']:,} ({luts['pruned'] / luts['dense']:.0%})", flush=True)

    exact_all = all(results[k][t] for k in ("lenet300_pruned", "sfc_pruned", "group_lasso_mlp")
                    for t in ("rtl", "c", "cortex_m4")) and results["blenet_exit"]["c"] \
        and results["blenet_exit"]["cortex_m4"]
    results.update({"bit_exact": exact_all, "seconds": round(time.perf_counter() - t0, 1)})
    # the goals: LUTs <= 50%, sparse memory <= 45% of dense, >= 3x fewer cycles and instructions with
    # the exit at the golden accuracy; the RTL exit is not built yet, so the bench cannot pass as a whole
    results["ok"] = bool(exact_all and results["layer_luts"]["ratio"] <= 0.5
                         and results["sfc_memory_bits"]["sparse_vs_stored"] <= 0.45
                         and results["blenet_exit"]["instruction_ratio"] >= 3 and results["blenet_exit"]["rtl"])
    print(json.dumps(results))
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
