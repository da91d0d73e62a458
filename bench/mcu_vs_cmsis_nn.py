"""xnorkit's firmware against CMSIS-NN, the int8 kernels TensorFlow Lite Micro runs on Cortex-M, in one run.

For LFC W1A1, SFC W1A1, TFC W2A2 and LeNet-5 W1A1 (zoo networks trained briefly on MNIST: this bench is about
instructions, not accuracy), on the Cortex-M4 emulated by QEMU (mps2-an386, -icount shift=0, instructions read
through the board timer as in firmware/cortex_m4/xk_profile.c):
- xnorkit: the generated library for the board (emit_c.fit: the kernels its RAM allows), checked equal to the
  golden model on 100 MNIST test images through the integer API (NAME_infer_int on the uint8 pixels), and
  profiled per kernel call;
- CMSIS-NN, built in the same run from ../shared/peers/cmsis-nn (Source/ as it is, the DSP paths of the core):
  the same layer shapes with int8 weights, arm_fully_connected_s8, arm_convolve_s8 and arm_max_pool_s8, fused
  requantization and clamp, as TFLite Micro calls them;
- per layer (a weight layer with the activation and pooling after it) and per inference: instructions, the
  ratio, and flash (weights and the whole program).
Goals (issue 27): LFC W1A1 at least 3x fewer instructions than CMSIS-NN s8, its first layer at least as fast,
LeNet-5 W1A1 at least 2x fewer.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jinja2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xnorkit import boards, build, golden, outputs, tools  # noqa: E402
from xnorkit.firmware import emit_c, runner  # noqa: E402
from xnorkit.ir import Conv, MatMul, MaxPool  # noqa: E402
from xnorkit.quant_train import config, data, recipe, train  # noqa: E402

PEERS = Path(os.environ.get("XNORKIT_PEERS", ROOT.parent / "shared" / "peers"))
CMSIS_SOURCES = ("FullyConnectedFunctions", "ConvolutionFunctions", "PoolingFunctions", "NNSupportFunctions")
BOARD = "mps2-an386"
CHECKED = 100  # MNIST test images compared with golden on the Cortex-M4
# (label, zoo model, weights, activation bits, training images)
NETWORKS = (("LFC W1A1", "lfc", "binary", 1, 10000), ("SFC W1A1", "sfc", "binary", 1, 10000),
            ("TFC W2A2", "tfc", "int2", 2, 10000), ("LeNet-5 W1A1", "lenet5", "binary", 1, 10000))
GOALS = {"LFC W1A1": 3.0, "LeNet-5 W1A1": 2.0}
FIRST_LAYER_GOAL = ("LFC W1A1", 1.0)


def trained_graph(kind: str, weights: str, a_bits: int, n_train: int, mnist, work: Path):
    cfg = config.Config(dataset="mnist", model=config.ModelConfig(kind=kind, weights=weights, a_bits=a_bits,
                                                                  input_bits=8),
                        train=config.TrainConfig(epochs=1, batch_size=256, lr=0.01))
    subset = data.Dataset("mnist", mnist.x_train[:n_train], mnist.y_train[:n_train], mnist.x_test, mnist.y_test, 10,
                          mnist.image_shape)
    model, _ = recipe.run(cfg, subset)
    train.export_qonnx(model, train.input_shape(cfg, mnist), work / "model.onnx")
    return build.compile_model(work / "model.onnx", work / "build")


def peer_layers(graph) -> list[dict]:
    """The CMSIS-NN layers of the graph's shapes: fully connected, convolution, max-pooling (HWC, int8)."""
    layers, first = [], True
    for node in graph.nodes:
        if isinstance(node, MatMul):
            layers.append({"op": "fc", "n_in": node.in_features, "n_out": node.out_features,
                           "weights": node.in_features * node.out_features})
        elif isinstance(node, Conv):
            c, h, w = graph.shape(node.input)
            out_c, ho, wo = graph.shape(node.output)
            k = node.weights.shape[2]
            layers.append({"op": "conv", "c": c, "h": h, "w": w, "out_c": out_c, "ho": ho, "wo": wo, "k": k,
                           "pad": node.pads[0], "stride": node.stride[0], "weights": out_c * k * k * c})
        elif isinstance(node, MaxPool):
            c, h, w = graph.shape(node.input)
            _, ho, wo = graph.shape(node.output)
            layers.append({"op": "pool", "c": c, "h": h, "w": w, "ho": ho, "wo": wo, "k": node.kernel[0],
                           "weights": 0})
        else:
            continue
        if layers[-1]["op"] != "pool":
            # MNIST's uint8 pixels as TFLite's int8 (zero point -128); later layers symmetric
            layers[-1]["input_offset"] = 128 if first else 0
            first = False
    weight_index = 0
    for i, layer in enumerate(layers):
        layer["index"] = i
        if layer["weights"]:
            layer["weight_index"] = weight_index
            weight_index += 1
    return layers


def cmsis_library(cpu: str, work: Path) -> Path:
    """CMSIS-NN's kernels for `cpu` as a static library (built once per run)."""
    lib = work / f"libcmsisnn_{cpu}.a"
    if lib.exists():
        return lib
    gcc, ar = tools.require("arm-none-eabi-gcc"), tools.require("arm-none-eabi-ar")
    objects = work / f"obj_{cpu}"
    objects.mkdir(parents=True, exist_ok=True)
    sources = [s for folder in CMSIS_SOURCES for s in sorted((PEERS / "cmsis-nn" / "Source" / folder).glob("*.c"))
               if not re.search(r"_f(16|32)", s.stem)]  # the float kernels (FP16 targets); no layer here uses them
    for source in sources:
        subprocess.run([gcc, f"-mcpu={cpu}", "-mthumb", "-mfloat-abi=soft", "-O2", "-std=c99", "-ffunction-sections",
                        "-fdata-sections", *_peer_includes(), "-c", str(source), "-o",
                        str(objects / f"{source.stem}.o")], check=True, capture_output=True)
    subprocess.run([ar, "rcs", str(lib), *map(str, sorted(objects.glob("*.o")))], check=True)
    return lib


def _peer_includes() -> list[str]:
    return [f"-I{PEERS / 'cmsis-nn' / 'Include'}", f"-I{PEERS / 'cmsis-core' / 'CMSIS' / 'Core' / 'Include'}"]


def run_peer(label: str, layers: list[dict], input_size: int, cpu: str, lib: Path, work: Path) -> dict:
    """Build and run the CMSIS-NN harness: instructions per layer, flash of the program and of its weights."""
    folder = work / re.sub(r"\W+", "_", label)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for layer in layers:
        if layer["weights"]:
            rng.integers(-127, 128, layer["weights"], dtype=np.int8).tofile(folder / f"w{layer['index']}.bin")
    sizes = [input_size] + [l_.get("n_out", l_.get("out_c", l_.get("c", 0)) * l_.get("ho", 1) * l_.get("wo", 1))
                            for l_ in layers]
    scratch = max([4 * l_["c"] * l_["k"] * l_["k"] + 64 for l_ in layers if l_["op"] == "conv"], default=64)
    template = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=False).from_string(
        (ROOT / "bench" / "cmsis_nn" / "harness.c.j2").read_text())
    (folder / "peer.c").write_text(template.render(
        label=label, layers=layers, arena=max(sizes), input_size=input_size, scratch=scratch,
        max_out=max(l_.get("n_out", l_.get("out_c", 1)) for l_ in layers)))
    fw = ROOT / "firmware" / "cortex_m4"
    elf = folder / "peer.elf"
    subprocess.run([tools.require("arm-none-eabi-gcc"), f"-mcpu={cpu}", "-mthumb", "-mfloat-abi=soft", "-O2",
                    "-std=c99", "-ffunction-sections", "-fdata-sections", *_peer_includes(), "--specs=rdimon.specs",
                    "-T", str(fw / "link.ld"), "-Wl,--gc-sections", str(fw / "startup.c"), "peer.c",
                    str(lib), "-lc", "-lrdimon", "-lgcc", "-o", elf.name], cwd=folder,
                   check=True, capture_output=True, text=True)
    qemu = [tools.require("qemu-system-arm"), "-M", boards.load_kind(BOARD, "mcu")["qemu_machine"], "-nographic",
            "-monitor", "none", "-serial", "none", "-semihosting-config", "enable=on,target=native", "-icount",
            "shift=0", "-kernel", elf.name]
    proc = subprocess.run(qemu, cwd=folder, capture_output=True, text=True, timeout=600, check=True)
    per_tick = 1000 / boards.load_kind(BOARD, "mcu").clock_mhz
    ticks = [int(m.group(1)) for m in re.finditer(r"layer \d+ (\d+)", proc.stdout)]
    if len(ticks) != len(layers):
        raise RuntimeError(f"CMSIS-NN harness of {label} printed {len(ticks)} layers: {proc.stdout[-300:]}")
    weight_bytes = sum(l_["weights"] + 4 * l_.get("n_out", l_.get("out_c", 0)) for l_ in layers)
    return {"layers": [round(t * per_tick) for t in ticks], "flash": runner.size(elf)["text"],
            "weight_bytes": weight_bytes}


def peer_per_layer(layers: list[dict], counts: list[int]) -> list[int]:
    """Each weight layer with the pooling after it (as xnorkit's layers are grouped)."""
    grouped: list[int] = []
    for layer, count in zip(layers, counts, strict=True):
        if layer["op"] == "pool":
            grouped[-1] += count
        else:
            grouped.append(count)
    return grouped


def run_xnorkit(graph, x_int: np.ndarray, expected: np.ndarray, work: Path) -> dict:
    """The library for the board, equal to golden on the checked images, its instructions per layer."""
    lut_bits, need = emit_c.fit(graph, boards.load_kind(BOARD, "mcu"))
    fw = work / "firmware"
    outputs.write_tree(fw, emit_c.emit(graph, lut_bits=lut_bits), "firmware")
    width = expected.shape[1]
    m4 = runner.run_cortex_m4(fw, x_int, width, integer=True)
    _, instructions = runner.profile_cortex_m4(fw, x_int[:2], width, integer=True)
    calls = emit_c.lower(graph, lut_bits=lut_bits).calls
    per_call = instructions.mean(axis=0)
    groups: list[dict] = [{"name": "input (NAME_infer_int)", "kernels": [], "instructions": 0.0}]
    for (text, _, comment), count in zip(calls, per_call, strict=True):
        kernel = re.search(r"xk_\w+", text).group(0)
        if kernel.startswith(("xk_dense", "xk_conv")):
            groups.append({"name": comment, "kernels": [], "instructions": 0.0})
        groups[-1]["kernels"].append(kernel)
        groups[-1]["instructions"] += float(count)
    elf = fw / "build" / "xk_cortex_m4_profile_int.elf"
    return {"bit_exact": bool(np.array_equal(m4, expected)), "checked": len(x_int), "lut_bits": lut_bits,
            "input": round(groups[0]["instructions"]), "layers": [round(g["instructions"]) for g in groups[1:]],
            "kernels": [g["kernels"] for g in groups[1:]], "total": round(float(per_call.sum())),
            "weight_bytes": need["weights"], "flash": runner.size(elf)["text"], "ram": need["ram"]}


def compare(label: str, kind: str, weights: str, a_bits: int, n_train: int, mnist, work: Path, lib: Path) -> dict:
    graph = trained_graph(kind, weights, a_bits, n_train, mnist, work)
    x = mnist.x_test.reshape(-1, *graph.input_shape)[:CHECKED]
    x_int = golden.quantize_input(graph, x).reshape(len(x), -1)
    expected = golden.predict_from_int(graph, golden.quantize_input(graph, x)).reshape(len(x), -1)
    ours = run_xnorkit(graph, x_int, expected, work)
    layers = peer_layers(graph)
    peer = run_peer(label, layers, int(np.prod(graph.input_shape)), "cortex-m4", lib, work)
    peer_layers_grouped = peer_per_layer(layers, peer["layers"])
    peer_total = sum(peer["layers"])
    row = {"net": label, "core": "cortex-m4", "xnorkit": ours, "cmsis_nn_s8": {**peer, "per_layer": peer_layers_grouped,
                                                                             "total": peer_total},
           "speedup": round(peer_total / ours["total"], 2),
           "first_layer_speedup": round(peer_layers_grouped[0] / ours["layers"][0], 2)}
    print(f"\n{label} on the Cortex-M4 (QEMU {BOARD}); xnorkit {'bit-exact' if ours['bit_exact'] else 'MISMATCH'} "
          f"against golden on {ours['checked']} MNIST test images (integer API, uint8 pixels); "
          f"integer-input tables over {ours['lut_bits'] or 'no'} inputs")
    print(f"    {'layer':34s} {'xnorkit kernels':44s} {'xnorkit':>11s} {'CMSIS-NN s8':>12s} {'ratio':>7s}")
    print(f"    {'input':34s} {'xk_load_ints':44s} {ours['input']:11,d} {0:12,d}")
    for i, (name, kernels) in enumerate(zip([c for c in _layer_names(graph)], ours["kernels"], strict=True)):
        print(f"    {name:34s} {' + '.join(kernels):44s} {ours['layers'][i]:11,d} {peer_layers_grouped[i]:12,d} "
              f"{peer_layers_grouped[i] / ours['layers'][i]:6.2f}x")
    print(f"    {'per inference':34s} {'':44s} {ours['total']:11,d} {peer_total:12,d} {row['speedup']:6.2f}x")
    print(f"    flash: weights {ours['weight_bytes']:,} bytes (whole program {ours['flash']:,}) against "
          f"{peer['weight_bytes']:,} ({peer['flash']:,}): {peer['weight_bytes'] / ours['weight_bytes']:.1f}x less; "
          f"xnorkit RAM {ours['ram']:,} bytes", flush=True)
    return row


def _layer_names(graph) -> list[str]:
    return [n.name for n in graph.nodes if isinstance(n, (MatMul, Conv))]


def main() -> int:
    t0 = time.perf_counter()
    mnist = data.load_mnist()
    if not (PEERS / "cmsis-nn" / "Include" / "arm_nnfunctions.h").exists():
        print(f"CMSIS-NN is not in {PEERS} (set XNORKIT_PEERS to the peers folder)")
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        lib = cmsis_library("cortex-m4", Path(tmp))
        for label, kind, weights, a_bits, n_train in NETWORKS:
            work = Path(tmp) / kind / weights
            work.mkdir(parents=True)
            rows.append(compare(label, kind, weights, a_bits, n_train, mnist, work, lib))
    by_net = {r["net"]: r for r in rows}
    ok = all(r["xnorkit"]["bit_exact"] for r in rows)
    ok &= all(by_net[net]["speedup"] >= goal for net, goal in GOALS.items())
    ok &= by_net[FIRST_LAYER_GOAL[0]]["first_layer_speedup"] >= FIRST_LAYER_GOAL[1]
    print(f"\ngoals on the Cortex-M4: LFC W1A1 >= 3x (got {by_net['LFC W1A1']['speedup']}x), its first layer >= 1x "
          f"(got {by_net['LFC W1A1']['first_layer_speedup']}x), LeNet-5 W1A1 >= 2x "
          f"(got {by_net['LeNet-5 W1A1']['speedup']}x)")
    summary = {r["net"]: {"xnorkit": r["xnorkit"]["total"], "cmsis_nn_s8": r["cmsis_nn_s8"]["total"],
                          "speedup": r["speedup"], "first_layer_speedup": r["first_layer_speedup"],
                          "bit_exact": r["xnorkit"]["bit_exact"],
                          "weight_bytes": [r["xnorkit"]["weight_bytes"], r["cmsis_nn_s8"]["weight_bytes"]]}
               for r in rows}
    print(json.dumps({"bench": "mcu_vs_cmsis_nn", "cortex_m4": summary, "seconds": round(time.perf_counter() - t0, 1),
                      "ok": bool(ok)}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
