"""Pruning and early exits that pay off in hardware (issue 8), each measured in one run:

1. Bit-exactness on every MNIST test image (RTL under Verilator, host C, Cortex-M4 under QEMU: QEMU_IMAGES) of:
   a W1A1 LeNet-300-100 pruned to 10% density (pruned binary layers: +-1 or 0, the RTL's masked XNOR-popcount
   datapath), an SFC W1A1 block-pruned to 25%, a group-lasso-pruned MLP on digits (neurons removed), and
   B-LeNet with its early exit.
2. The SFC is block-pruned at its folding's PE x SIMD tiles (SFC_TILE), so that its units skip the zero tiles
   (packing.tile_schedule). Against the dense SFC at the same folding: cycles per inference in RTL simulation,
   weight memory bits (the sparse design's computing tiles plus its step memory, against the 1-bit dense
   binary weights), and Yosys (synth_xilinx, Arty A7) LUTs of the whole design with constant weights.
3. B-LeNet (W4A4) on MNIST: the integer exit margin calibrated on held-out training images; on the test set the
   exit rate and the accuracy against always running the full network; in RTL simulation, the average cycles per
   image over the 10,000 test images back to back with the exit, against the same design with the exit never
   taken (the always-run layers folded for BLENET_CYCLES, the rest for the BLENET_FOLD_RATE share of inputs
   that stay: `xnorkit hw --exit-rate`); the Cortex-M4 instructions per image with and without the exit (QEMU,
   the same QEMU_IMAGES).
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
from xnorkit.firmware import runner as fw  # noqa: E402
from xnorkit.hw import emit_sv, synth  # noqa: E402
from xnorkit.hw import folding as fold_mod  # noqa: E402
from xnorkit.hw.folding import Fold  # noqa: E402
from xnorkit.quant_train import compression, config, data, sparsity, train  # noqa: E402
from xnorkit.sim import runner  # noqa: E402

QEMU_IMAGES = 10_000  # every MNIST test image (the digits MLP: its whole test split)
EPOCHS = 3
BLENET_EPOCHS = 8
ALLOWANCE = 0.002  # of validation accuracy the exit may cost: the held-out training images are easier than the test set
BLENET_CYCLES = 4000  # the always-run layers' interval (50,000 images per second at 200 MHz)
BLENET_FOLD_RATE = 0.9  # the rest is folded for 10% of the inputs (below the calibrated exit rate: bursts stay short)
SFC_TILE = (4, 16)  # PE x SIMD of the SFC's hidden layers, and the blocks its pruning removes
SFC_OUTPUT_FOLD = (10, 16)


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


def block_pruned_sfc(mnist, work: Path) -> tuple[Path, Path, float, float]:
    """A W1A1 SFC trained, exported dense, then block-pruned (SFC_TILE blocks, by magnitude, in three prune and
    retrain steps) to 25% density over all its weights: the hidden layers' blocks go, the small output layer
    stays whole. Returns both builds and test accuracies."""
    cfg = config.Config(dataset="mnist", model=config.ModelConfig(kind="sfc", input_bits=8),
                        train=config.TrainConfig(epochs=EPOCHS, batch_size=256, lr=0.01))
    model, metrics = train.train(cfg, mnist)
    dense_accuracy = metrics["test_accuracy"]
    train.export_qonnx(model, (784,), work / "sfc_dense.onnx")
    build.compile_model(work / "sfc_dense.onnx", work / "sfc_dense")
    layers = compression.prunable(model)
    hidden = list(layers)[:-1]
    total = sum(layer.weight.numel() for layer in layers.values())
    out_weights = list(layers.values())[-1].weight.numel()
    density = (0.25 * total - out_weights) / (total - out_weights)  # 25% of all weights kept
    for step in range(1, 4):
        keep = {name: density ** (step / 3) for name in hidden}
        compression.set_masks(model, compression.magnitude_masks(model, keep, SFC_TILE))
        model, metrics = train.train(cfg, mnist, model=model, after_step=compression.apply_masks)
    train.export_qonnx(model, (784,), work / "sfc_blocks.onnx")
    build.compile_model(work / "sfc_blocks.onnx", work / "sfc_blocks")
    return work / "sfc_dense", work / "sfc_blocks", dense_accuracy, metrics["test_accuracy"]


def sfc_folding(b: Path, weights: str) -> dict[str, Fold]:
    """SFC_TILE per hidden layer of the backend graph (the largest PE and SIMD up to it that divide a layer
    the passes made smaller), SFC_OUTPUT_FOLD for the output layer."""
    graph = build.backend_graph(b)
    layers = fold_mod.mac_layers(graph)
    folding, incoming = {}, None
    for k, m in enumerate(layers):
        mw, mh, _ = fold_mod.matrix_shape(graph, m)
        pe, simd = SFC_OUTPUT_FOLD if k == len(layers) - 1 else SFC_TILE
        # a SIMD that the stream before it can feed: one of the two divides the other (the width converter's
        # rule), which a layer the passes made narrower (256 -> 252 constant neurons removed) can break
        simd = max(d for d in fold_mod.divisors(mw)
                   if d <= simd and (incoming is None or d % incoming == 0 or incoming % d == 0))
        folding[m.name] = Fold(max(d for d in fold_mod.divisors(mh) if d <= pe), simd, weights)
        incoming = folding[m.name].pe
    return folding


def bit_exact(b: Path, x: np.ndarray, rtl: bool = True, folding: dict | None = None) -> dict:
    """RTL (the given folding, else the solver's at 256 cycles), host C on every input, QEMU on the first
    QEMU_IMAGES."""
    graph = build.load(b)
    expected = golden.predict_int(graph, x)
    result = {}
    if rtl:
        build.generate_hw(b, folding) if folding else build.generate_hw(b, target_cycles=256)
        x_int = golden.quantize_input(graph, x)
        sim = runner.simulate_bulk(b / "rtl", x_int, golden.predict_from_int(graph, x_int))
        result["rtl"] = sim.mismatch is None
        result["rtl_cycles"] = sim.steady_state_cycles
    build.generate_firmware(b)
    result["c"] = bool(np.array_equal(fw.run_host(b / "firmware", x, expected.shape[1]), expected))
    result["cortex_m4"] = bool(np.array_equal(fw.run_cortex_m4(b / "firmware", x[:QEMU_IMAGES], expected.shape[1]),
                                              expected[:QEMU_IMAGES]))
    return result


def main() -> int:
    t0 = time.perf_counter()
    mnist = data.load_mnist()
    results: dict = {"bench": "sparse_exit"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        b, accuracy = pruned_binary("lenet300", 0.10, mnist, work)
        exact = bit_exact(b, mnist.x_test)
        results["lenet300_pruned"] = {"density": 0.10, "accuracy": round(accuracy, 4), **exact}
        print(f"LeNet-300-100 W1A1 pruned to 10%: accuracy {accuracy:.2%}; bit-exact RTL {exact['rtl']} "
              f"({exact['rtl_cycles']:.0f} cycles), host C {exact['c']} (10,000 images), Cortex-M4 "
              f"{exact['cortex_m4']} ({min(QEMU_IMAGES, len(mnist.x_test)):,} images)  "
              f"[{time.perf_counter() - t0:.0f} s]", flush=True)

        dense_b, sparse_b, dense_acc, sparse_acc = block_pruned_sfc(mnist, work)
        graph = build.load(sparse_b)
        density = sum(int(np.count_nonzero(n.weights)) for n in graph.matmuls()) / sum(
            n.weights.size for n in graph.matmuls())
        exact = bit_exact(sparse_b, mnist.x_test, folding=sfc_folding(sparse_b, "block"))
        sparse_design = json.loads((sparse_b / "rtl" / "design.json").read_text())
        dense_design = build.generate_hw(dense_b, sfc_folding(dense_b, "block"))
        dense_graph = build.load(dense_b)
        x_int = golden.quantize_input(dense_graph, mnist.x_test[:1000])
        dense_sim = runner.simulate_bulk(dense_b / "rtl", x_int, golden.predict_from_int(dense_graph, x_int))
        bits = {name: sum(layer.get("weight_bits", 0) for layer in design["layers"])
                for name, design in (("dense", dense_design), ("sparse", sparse_design))}
        results["sfc_pruned"] = {"density": round(density, 4), "block": list(SFC_TILE),
                                 "accuracy": round(sparse_acc, 4), "dense_accuracy": round(dense_acc, 4), **exact,
                                 "dense_rtl_cycles": dense_sim.steady_state_cycles, "dense_rtl_exact":
                                 dense_sim.mismatch is None,
                                 "cycle_ratio": round(dense_sim.steady_state_cycles / exact["rtl_cycles"], 2)}
        results["sfc_memory_bits"] = {"dense": bits["dense"], "sparse": bits["sparse"],
                                      "sparse_vs_dense": round(bits["sparse"] / bits["dense"], 3)}
        print(f"SFC W1A1 block-pruned ({SFC_TILE[0]} x {SFC_TILE[1]}) to {density:.1%}: accuracy {sparse_acc:.2%} "
              f"(dense {dense_acc:.2%}); bit-exact RTL {exact['rtl']}, host C {exact['c']}, Cortex-M4 "
              f"{exact['cortex_m4']}; folding PE x SIMD {SFC_TILE[0]} x {SFC_TILE[1]}: "
              f"{dense_sim.steady_state_cycles:.0f} cycles dense, {exact['rtl_cycles']:.0f} skipping zero tiles "
              f"({results['sfc_pruned']['cycle_ratio']:.2f}x); weight memory {bits['dense']:,} bits dense binary, "
              f"{bits['sparse']:,} sparse with its step memory ({bits['sparse'] / bits['dense']:.0%})  "
              f"[{time.perf_counter() - t0:.0f} s]", flush=True)
        luts = {}
        for name, b in (("dense", dense_b), ("sparse", sparse_b)):
            build.generate_hw(b, sfc_folding(b, "logic"))
            luts[name] = synth.synthesize(b, "arty-a7-35", place_route=False).total.lut
        results["sfc_luts"] = {**luts, "ratio": round(luts["sparse"] / luts["dense"], 3)}
        print(f"SFC, same folding, constant weights (in logic), Yosys synth_xilinx (Arty A7): dense {luts['dense']:,} "
              f"LUTs, block-pruned {luts['sparse']:,} ({luts['sparse'] / luts['dense']:.0%})  "
              f"[{time.perf_counter() - t0:.0f} s]", flush=True)

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
                            train=config.TrainConfig(epochs=BLENET_EPOCHS, batch_size=128, lr=0.005))
        model, _ = train.train(cfg, fit)
        train.export_qonnx(model, (1, 28, 28), work / "blenet.onnx")
        b = work / "blenet"
        build.compile_model(work / "blenet.onnx", b)
        x_val, x_test = fit.x_test.reshape(-1, 1, 28, 28), mnist.x_test.reshape(-1, 1, 28, 28)
        margin = build.calibrate_exit(b, x_val, fit.y_test, ALLOWANCE)
        graph = build.set_exits(b, [margin])
        values = golden.run(graph, x_test)
        out = golden.predict_int(graph, x_test)
        taken = out[:, -1]
        float_out = [values[t].reshape(len(x_test), -1) for t in graph.float_outputs]
        cascade = np.where(taken == 0, float_out[0].argmax(1), float_out[1].argmax(1))
        cascade_acc = float((cascade == mnist.y_test).mean())
        full_acc = float((float_out[1].argmax(1) == mnist.y_test).mean())
        print(f"B-LeNet W4A4 ({BLENET_EPOCHS} epochs): exit margin >= {margin} (calibrated on 5,000 held-out training "
              f"images, allowance {ALLOWANCE:.1%}); test: {(taken == 0).mean():.1%} leave early, accuracy "
              f"{cascade_acc:.2%} against {full_acc:.2%} for the full network  [{time.perf_counter() - t0:.0f} s]",
              flush=True)

        # RTL: the always-run layers folded for BLENET_CYCLES, the rest for the BLENET_FOLD_RATE share that stays
        info = build.generate_hw(b, target_cycles=BLENET_CYCLES, exit_rate=BLENET_FOLD_RATE)
        x_int = golden.quantize_input(graph, x_test)
        with_exit = runner.simulate_bulk(b / "rtl", x_int, out)
        rtl_cycles = float((with_exit.completed_at[-1] - with_exit.accepted_at[0]) / len(x_test))
        rtl_float = build.dequantize(graph, with_exit.outputs[:, :-1])  # as the host reads the RTL's integers
        rtl_classes = np.where(with_exit.outputs[:, -1] == 0, rtl_float[:, :10].argmax(1), rtl_float[:, 10:].argmax(1))
        # the same hardware with the exit never taken: every input runs the whole network
        never = build.set_exits(b, [np.iinfo(np.int64).max // 4])
        build.generate_hw(b, fold_mod.from_json(info["folding"]))
        without_exit = runner.simulate_bulk(b / "rtl", x_int, golden.predict_int(never, x_test))
        rtl_cycles_without = float((without_exit.completed_at[-1] - without_exit.accepted_at[0]) / len(x_test))
        build.set_exits(b, [margin])
        balanced = emit_sv.design_info(build.backend_graph(b), fold_mod.solve(build.backend_graph(b), BLENET_CYCLES))
        exact = bit_exact(b, x_test, rtl=False)
        _, instructions_with = fw.profile_cortex_m4(b / "firmware", x_test[:QEMU_IMAGES], out.shape[1])
        build.set_exits(b, None)
        build.generate_firmware(b)
        _, instructions_without = fw.profile_cortex_m4(b / "firmware", x_test[:QEMU_IMAGES], out.shape[1] - 1)
        ratio = float(instructions_without.sum(axis=1).mean() / instructions_with.sum(axis=1).mean())
        results["blenet_exit"] = {
            "margin": margin, "exit_rate": round(float((taken == 0).mean()), 4),
            "cascade_accuracy": round(cascade_acc, 4), "full_accuracy": round(full_acc, 4),
            "loss_points": round(100 * (full_acc - cascade_acc), 2),
            "rtl": with_exit.mismatch is None and without_exit.mismatch is None,
            "rtl_accuracy": round(float((rtl_classes == mnist.y_test).mean()), 4),
            "rtl_cycles_with_exit": round(rtl_cycles, 1), "rtl_cycles_without": round(rtl_cycles_without, 1),
            "rtl_cycle_ratio": round(rtl_cycles_without / rtl_cycles, 2),
            "rtl_luts_estimate": info["resources"]["lut"], "balanced_luts_estimate": balanced["resources"]["lut"],
            "instructions_with_exit": round(float(instructions_with.sum(axis=1).mean())),
            "instructions_without": round(float(instructions_without.sum(axis=1).mean())),
            "instruction_ratio": round(ratio, 2), **exact}
        r = results["blenet_exit"]
        print(f"  RTL (always-run layers folded for {BLENET_CYCLES} cycles, the rest for {1 - BLENET_FOLD_RATE:.0%} of "
              f"the inputs: {info['layers'][0]['name']}..., estimated {r['rtl_luts_estimate']:,} LUTs): "
              f"{rtl_cycles:,.0f} cycles per image on the 10,000 test images with the exit, {rtl_cycles_without:,.0f} "
              f"with it never taken ({r['rtl_cycle_ratio']:.2f}x); bit-exact {r['rtl']}, accuracy "
              f"{r['rtl_accuracy']:.2%} (golden {cascade_acc:.2%}). Without exits at {BLENET_CYCLES} cycles the "
              f"solver's folding needs an estimated {r['balanced_luts_estimate']:,} LUTs", flush=True)
        print(f"  Cortex-M4: {r['instructions_without']:,} -> {r['instructions_with_exit']:,} instructions per image "
              f"({min(QEMU_IMAGES, len(x_test)):,} test images, {ratio:.2f}x); bit-exact host C {exact['c']}, "
              f"Cortex-M4 {exact['cortex_m4']}  [{time.perf_counter() - t0:.0f} s]", flush=True)

    exact_all = all(results[k][t] for k in ("lenet300_pruned", "sfc_pruned", "group_lasso_mlp")
                    for t in ("rtl", "c", "cortex_m4")) and results["blenet_exit"]["c"] \
        and results["blenet_exit"]["cortex_m4"] and results["blenet_exit"]["rtl"]
    results.update({"bit_exact": exact_all, "seconds": round(time.perf_counter() - t0, 1)})
    # the goals: LUTs <= 50%, sparse memory <= 45% of dense, >= 3x fewer cycles and instructions with
    # the exit at the accuracy golden predicts
    exit_goal = results["blenet_exit"]
    results["ok"] = bool(exact_all and results["sfc_luts"]["ratio"] <= 0.5
                         and results["sfc_memory_bits"]["sparse_vs_dense"] <= 0.45
                         and exit_goal["rtl"] and exit_goal["rtl_accuracy"] == exit_goal["cascade_accuracy"]
                         and exit_goal["rtl_cycle_ratio"] >= 3 and exit_goal["instruction_ratio"] >= 3)
    print(json.dumps(results))
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
