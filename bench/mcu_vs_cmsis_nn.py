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
Then LFC W1A1 on the Cortex-M3 (CMSIS-NN's plain C path), M7, M33 and M55 (CMSIS-NN's Helium kernels; xnorkit's
kernels are scalar C there), and SFC W1A1 on the Cortex-M0 of the micro:bit (CMSIS-NN's M0 build counted on the
MPS2-AN385: its 337 KB of weights exceed the micro:bit's flash), CMSIS-NN built for each core.
Goals (issue 27): LFC W1A1 at least 3x fewer instructions than CMSIS-NN s8 on the M4, its first layer at least as
fast, LeNet-5 W1A1 at least 2x fewer, SFC W1A1 on the M0 at least 2x fewer.
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
# Cortex-M3, M7, M33 and M55 (CMSIS-NN's Helium kernels there): LFC W1A1 on each
OTHER_CORES = ("mps2-an385", "mps2-an500", "mps2-an505", "mps3-an547")
M0_GOAL = 2.0  # SFC W1A1 on the Cortex-M0 (no popcount, no DSP) against CMSIS-NN's plain C path


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


def cmsis_library(board, work: Path) -> Path:
    """CMSIS-NN's kernels for a board's core (its DSP paths where the core has the extension, the same float ABI
    as xnorkit's build there) as a static library, built once per run."""
    lib = work / f"libcmsisnn_{board.name}.a"
    if lib.exists():
        return lib
    gcc, ar = tools.require("arm-none-eabi-gcc"), tools.require("arm-none-eabi-ar")
    objects = work / f"obj_{board.name}"
    objects.mkdir(parents=True, exist_ok=True)
    sources = [s for folder in CMSIS_SOURCES for s in sorted((PEERS / "cmsis-nn" / "Source" / folder).glob("*.c"))
               if not re.search(r"_f(16|32)", s.stem)]  # the float kernels (FP16 targets); no layer here uses them
    for source in sources:
        subprocess.run([gcc, *runner.arm_flags(board), "-std=c99", *_peer_includes(), "-c", str(source), "-o",
                        str(objects / f"{source.stem}.o")], check=True, capture_output=True)
    subprocess.run([ar, "rcs", str(lib), *map(str, sorted(objects.glob("*.o")))], check=True)
    return lib


def _peer_includes() -> list[str]:
    return [f"-I{PEERS / 'cmsis-nn' / 'Include'}", f"-I{PEERS / 'cmsis-core' / 'CMSIS' / 'Core' / 'Include'}"]


def run_peer(label: str, layers: list[dict], input_size: int, board, run_on, work: Path) -> dict:
    """Build CMSIS-NN for `board`'s core and run the harness on the emulated board `run_on` (the same, or one
    with room for the weights): instructions per layer, flash of the program and of its weights."""
    folder = work / re.sub(r"\W+", "_", f"{label} {board.name}")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for layer in layers:
        if layer["weights"]:
            rng.integers(-127, 128, layer["weights"], dtype=np.int8).tofile(folder / f"w{layer['index']}.bin")
    sizes = [input_size] + [l_.get("n_out", l_.get("out_c", l_.get("c", 0)) * l_.get("ho", 1) * l_.get("wo", 1))
                            for l_ in layers]
    scratch = max([8 * l_["c"] * l_["k"] * l_["k"] + 1024 for l_ in layers if l_["op"] == "conv"], default=64)
    # weights in flash (.rodata), unless they exceed the board's code memory (the AN547's 512 KB ITCM): then in
    # its RAM, loaded there by QEMU; the instructions are the same
    in_flash = sum(l_["weights"] for l_ in layers) + (256 << 10) <= run_on.flash_bytes  # and room for the code
    weight_section = ".section .rodata" if in_flash else '.section .data.peer_weights,\\"aw\\"'

    template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(
        (ROOT / "bench" / "cmsis_nn" / "harness.c.j2").read_text())
    (folder / "peer.c").write_text(template.render(
        label=label, layers=layers, arena=max(sizes), input_size=input_size, scratch=scratch,
        weight_section=weight_section,
        max_out=max(l_.get("n_out", l_.get("out_c", 1)) for l_ in layers)))
    (folder / "link.ld").write_text(emit_c.link_script(run_on))
    elf = folder / "peer.elf"
    subprocess.run([tools.require("arm-none-eabi-gcc"), *runner.arm_flags(board), "-std=c99", *_peer_includes(),
                    *runner.SPECS, "-T", "link.ld", "-Wl,--gc-sections",
                    str(ROOT / "firmware" / "cortex_m4" / "startup.c"), "peer.c",
                    str(cmsis_library(board, work.parent)), "-lc", "-lrdimon", "-lgcc", "-o", elf.name], cwd=folder,
                   check=True, capture_output=True, text=True)
    qemu = [tools.require("qemu-system-arm"), "-M", run_on.qemu_machine, "-nographic", "-monitor", "none", "-serial",
            "none", "-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel", elf.name]
    proc = subprocess.run(qemu, cwd=folder, capture_output=True, text=True, timeout=600, check=True)
    ticks = [int(m.group(1)) for m in re.finditer(r"layer \d+ (\d+)", proc.stdout)]
    if len(ticks) != len(layers):
        raise RuntimeError(f"CMSIS-NN harness of {label} printed {len(ticks)} layers: {proc.stdout[-300:]}")
    weight_bytes = sum(l_["weights"] + 4 * l_.get("n_out", l_.get("out_c", 0)) for l_ in layers)
    return {"layers": [round(t * 1000 / run_on.clock_mhz) for t in ticks], "program": _program_bytes(elf),
            "weights_in_flash": in_flash, "weight_bytes": weight_bytes}


def _program_bytes(elf: Path) -> int:
    """The program's image: code, constants and initialized data (weights where they are)."""
    size = runner.size(elf)
    return size["text"] + size["data"]


def peer_per_layer(layers: list[dict], counts: list[int]) -> list[int]:
    """Each weight layer with the pooling after it (as xnorkit's layers are grouped)."""
    grouped: list[int] = []
    for layer, count in zip(layers, counts, strict=True):
        if layer["op"] == "pool":
            grouped[-1] += count
        else:
            grouped.append(count)
    return grouped


def run_xnorkit(graph, x_int: np.ndarray, expected: np.ndarray, board, work: Path) -> dict:
    """The library for the board (the table size its RAM allows beside the semihosted runner), equal to golden on
    the checked images under QEMU, and its instructions per layer."""
    lut_bits, need = emit_c.fit(graph, board, runner.HARNESS_RAM_BYTES)
    fw = work / f"firmware_{board.name}"
    outputs.write_tree(fw, emit_c.emit(graph, lut_bits=lut_bits), "firmware")
    width = expected.shape[1]
    m4 = runner.run_cortex_m(fw, x_int, width, board.name, integer=True)
    _, instructions = runner.profile_cortex_m(fw, x_int[:2], width, board.name, integer=True)
    calls = emit_c.lower(graph, lut_bits=lut_bits).calls
    per_call = instructions.mean(axis=0)
    groups: list[dict] = [{"name": "input (NAME_infer_int)", "kernels": [], "instructions": 0.0}]
    for (text, _, comment), count in zip(calls, per_call, strict=True):
        kernel = re.search(r"xk_\w+", text).group(0)
        if kernel.startswith(("xk_dense", "xk_conv")):
            groups.append({"name": comment, "kernels": [], "instructions": 0.0})
        groups[-1]["kernels"].append(kernel)
        groups[-1]["instructions"] += float(count)
    elf = next((fw / "build").glob("xk_*_profile_int.elf"))
    return {"bit_exact": bool(np.array_equal(m4, expected)), "checked": len(x_int), "lut_bits": lut_bits,
            "input": round(groups[0]["instructions"]), "layers": [round(g["instructions"]) for g in groups[1:]],
            "kernels": [g["kernels"] for g in groups[1:]], "total": round(float(per_call.sum())),
            "weight_bytes": need["weights"], "program": _program_bytes(elf), "ram": need["ram"]}


def compare(label: str, net: dict, board_name: str, work: Path, peer_on: str | None = None) -> dict:
    """xnorkit and CMSIS-NN s8 for one network on one core, per layer; `peer_on`: the emulated board that runs
    the peer's build for the same core when its weights do not fit this one."""
    board = boards.load_kind(board_name, "mcu")
    run_on = boards.load_kind(peer_on or board_name, "mcu")
    graph = net["graph"]
    ours = run_xnorkit(graph, net["x_int"], net["expected"], board, work)
    layers = peer_layers(graph)
    peer = run_peer(label, layers, int(np.prod(graph.input_shape)), board, run_on, work)
    grouped = peer_per_layer(layers, peer["layers"])
    peer_total = sum(peer["layers"])
    row = {"net": label, "board": board.name, "core": board.cpu, "peer_run_on": run_on.name, "xnorkit": ours,
           "cmsis_nn_s8": {**peer, "per_layer": grouped, "total": peer_total},
           "speedup": round(peer_total / ours["total"], 2),
           "first_layer_speedup": round(grouped[0] / ours["layers"][0], 2)}
    where = f" (CMSIS-NN's {board.cpu} build counted on QEMU {run_on.name}: its weights do not fit)" if peer_on else ""
    print(f"\n{label} on the {board.cpu} (QEMU {board.name}){where}; xnorkit "
          f"{'bit-exact' if ours['bit_exact'] else 'MISMATCH'} against golden on {ours['checked']} MNIST test images "
          f"(integer API, uint8 pixels); integer-input tables over {ours['lut_bits'] or 'no'} inputs")
    print(f"    {'layer':12s} {'xnorkit kernels':58s} {'xnorkit':>11s} {'CMSIS-NN s8':>12s} {'ratio':>7s}")
    print(f"    {'input':12s} {'xk_load_ints':58s} {ours['input']:11,d} {0:12,d}")
    for i, (name, kernels) in enumerate(zip(_layer_names(graph), ours["kernels"], strict=True)):
        print(f"    {name:12s} {' + '.join(kernels):58s} {ours['layers'][i]:11,d} {grouped[i]:12,d} "
              f"{grouped[i] / ours['layers'][i]:6.2f}x")
    print(f"    {'inference':12s} {'':58s} {ours['total']:11,d} {peer_total:12,d} {row['speedup']:6.2f}x")
    held = "" if peer["weights_in_flash"] else f" (in {run_on.name}'s RAM: they exceed its code memory)"
    print(f"    weights {ours['weight_bytes']:,} bytes (whole program with its runner {ours['program']:,}) against "
          f"{peer['weight_bytes']:,}{held} ({peer['program']:,}): {peer['weight_bytes'] / ours['weight_bytes']:.1f}x "
          f"less; xnorkit RAM {ours['ram']:,} bytes", flush=True)
    return row


def _layer_names(graph) -> list[str]:
    return [n.name for n in graph.nodes if isinstance(n, (MatMul, Conv))]


def trained(mnist, work: Path) -> dict:
    """Each network trained briefly, with its checked images' integer inputs and golden's outputs."""
    nets = {}
    for label, kind, weights, a_bits, n_train in NETWORKS:
        folder = work / kind / weights
        folder.mkdir(parents=True)
        graph = trained_graph(kind, weights, a_bits, n_train, mnist, folder)
        x = mnist.x_test.reshape(-1, *graph.input_shape)[:CHECKED]
        x_int = golden.quantize_input(graph, x)
        nets[label] = {"graph": graph, "x_int": x_int.reshape(len(x), -1),
                       "expected": golden.predict_from_int(graph, x_int).reshape(len(x), -1)}
    return nets


def main() -> int:
    t0 = time.perf_counter()
    if not (PEERS / "cmsis-nn" / "Include" / "arm_nnfunctions.h").exists():
        print(f"CMSIS-NN is not in {PEERS} (set XNORKIT_PEERS to the peers folder)")
        return 2
    mnist = data.load_mnist()
    with tempfile.TemporaryDirectory() as tmp:
        nets = trained(mnist, Path(tmp))
        rows = [compare(label, nets[label], BOARD, Path(tmp) / "m4") for label in nets]
        cores = [compare("LFC W1A1", nets["LFC W1A1"], board, Path(tmp) / board) for board in OTHER_CORES]
        # CMSIS-NN's SFC weights (337 KB) exceed the micro:bit's 256 KB of flash: its Cortex-M0 build (ARMv6-M
        # code, the instructions an M0 runs) is counted on the MPS2-AN385, which has room
        cores.append(compare("SFC W1A1", nets["SFC W1A1"], "microbit", Path(tmp) / "microbit", peer_on="mps2-an385"))
    return summarize(rows, cores, time.perf_counter() - t0)


def summarize(rows: list[dict], cores: list[dict], seconds: float) -> int:
    by_net = {r["net"]: r for r in rows}
    m0 = cores[-1]
    ok = all(r["xnorkit"]["bit_exact"] for r in rows + cores)
    ok &= all(by_net[net]["speedup"] >= goal for net, goal in GOALS.items())
    ok &= by_net[FIRST_LAYER_GOAL[0]]["first_layer_speedup"] >= FIRST_LAYER_GOAL[1] and m0["speedup"] >= M0_GOAL
    lfc = [by_net["LFC W1A1"], *cores[:-1]]
    print("\nLFC W1A1 per core: " + ", ".join(f"{r['core']} {r['speedup']}x" for r in lfc)
          + f"; SFC W1A1 on the cortex-m0 {m0['speedup']}x")
    print(f"goals: LFC W1A1 on the M4 >= 3x (got {by_net['LFC W1A1']['speedup']}x), its first layer >= 1x "
          f"(got {by_net['LFC W1A1']['first_layer_speedup']}x), LeNet-5 W1A1 >= 2x (got "
          f"{by_net['LeNet-5 W1A1']['speedup']}x), SFC W1A1 on the M0 >= {M0_GOAL}x (got {m0['speedup']}x)")

    def brief(r: dict) -> dict:
        return {"xnorkit": r["xnorkit"]["total"], "cmsis_nn_s8": r["cmsis_nn_s8"]["total"], "speedup": r["speedup"],
                "first_layer_speedup": r["first_layer_speedup"], "bit_exact": r["xnorkit"]["bit_exact"],
                "weight_bytes": [r["xnorkit"]["weight_bytes"], r["cmsis_nn_s8"]["weight_bytes"]]}

    print(json.dumps({"bench": "mcu_vs_cmsis_nn", "cortex_m4": {r["net"]: brief(r) for r in rows},
                      "cores": {f"{r['net']} {r['core']}": brief(r) for r in cores}, "seconds": round(seconds, 1),
                      "ok": bool(ok)}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
