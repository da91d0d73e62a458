"""The firmware's kernels against their limits and against an int8 baseline, in one run:

(a) host x86-64: the binary dense kernel (xk_dense_bin_bin, 64-bit POPCNT path) on a 1024 x 1024 layer, in
    binary MACs per TSC cycle and per ns (the fastest of nine trials, here and for numpy), against this core's
    POPCNT peak, measured in the same program (64-bit POPCNTs of words in L1 in eight independent chains, per TSC
    cycle: a core may retire more than one a cycle, or run above the TSC's rate, so "one a cycle" is printed
    beside it but is no ceiling) and against a float32 numpy (BLAS) matrix-vector product of the same shape.
    Goal: at least 50% of the measured POPCNT peak.
(b) Cortex-M4 under QEMU: instructions per inference of an LFC W1A1 network (784 -> 3 x 1024 -> 10, seeded
    random weights: a binary kernel's instruction count does not depend on the values), per layer, counted
    by QEMU (-icount shift=0) through the board timer (firmware/cortex_m4/xk_profile.c), and binary MACs
    per instruction. Goal: at least 2 for the LFC's binary layers.
(c) the same network as the int8 baseline (bipolar values as -1/+1 integers, int8 weights, a plain C
    multiply-accumulate loop; emit_c.emit(binary_kernels=False)) in the same harness, and the ratio.
(d) arm-none-eabi-size of the LFC library for the Cortex-M4: flash within 10% of its packed weight bits / 8
    plus code, RAM (.bss) equal to the planned activation arena.
(e) the float input step (NAME_infer's quantizer) on the M4F's FPU against software floating point, and the
    integer API's load in its place.
Every firmware output equals the golden model's.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import random_graph, random_inputs  # noqa: E402
from xnorkit import golden, tools  # noqa: E402
from xnorkit.firmware import emit_c, runner  # noqa: E402
from xnorkit.outputs import write_tree  # noqa: E402

POPCNT_PEAK = 64  # binary MACs per cycle per core at one 64-bit POPCNT a cycle (the goal uses the measured peak)
LFC = [784, 1024, 1024, 1024, 10]
IMAGES = 4  # per QEMU run; instruction counts are the same for every image


def _best_ns(call, reps: int, trials: int = 9) -> float:
    """Nanoseconds per call, the fastest of several trials (as for the C kernel)."""
    best = float("inf")
    for _ in range(trials):
        t0 = time.perf_counter()
        for _ in range(reps):
            call()
        best = min(best, (time.perf_counter() - t0) / reps * 1e9)
    return best


def host_kernel(work: Path) -> dict:
    lib = ROOT / "firmware" / "lib"
    exe = work / "kernel_timing"
    subprocess.run([tools.require("gcc"), "-O3", "-mpopcnt", "-std=c99", "-Wall", "-Wextra", "-Werror",
                    "-D_POSIX_C_SOURCE=199309L", f"-I{lib}", str(ROOT / "bench" / "firmware_kernel_timing.c"),
                    str(lib / "xk_kernels.c"), "-lm", "-o", str(exe)], check=True)
    ns, tsc, path, popcnt_per_cycle, _ = subprocess.run([str(exe), "1000"], capture_output=True, text=True,
                                                        check=True).stdout.split()
    peak = 64 * float(popcnt_per_cycle)  # binary MACs per TSC cycle at this core's measured POPCNT rate
    macs = 1024 * 1024
    rng = np.random.default_rng(0)
    w = rng.standard_normal((1024, 1024), dtype=np.float32)
    x = rng.standard_normal(1024, dtype=np.float32)
    for _ in range(50):
        w @ x
    float_ns = _best_ns(lambda: w @ x, 300)
    xb = rng.standard_normal((1024, 64), dtype=np.float32)
    float_batch_ns = _best_ns(lambda: w @ xb, 30) / 64
    per_cycle = macs / float(tsc)
    print(f"(a) host {platform.processor() or platform.machine()}, kernel path {path}: 1024x1024 binary layer "
          f"{float(ns) / 1000:.2f} us per call = {macs / float(ns):.1f} bMAC/ns, {per_cycle:.1f} bMAC per TSC cycle "
          f"= {100 * per_cycle / peak:.0f}% of this core's measured POPCNT peak ({float(popcnt_per_cycle):.2f} POPCNTs "
          f"per TSC cycle: {peak:.0f} bMAC; {100 * per_cycle / POPCNT_PEAK:.0f}% of one POPCNT a cycle)")
    print(f"    float32 numpy (BLAS) matrix-vector product, same shape: {float_ns / 1000:.2f} us = "
          f"{macs / float_ns:.2f} MAC/ns ({float_ns / float(ns):.1f}x slower); batched 64 vectors: "
          f"{macs / float_batch_ns:.2f} MAC/ns ({float_batch_ns / float(ns):.1f}x slower per vector)")
    return {"host_kernel_path": path, "host_bmac_per_ns": round(macs / float(ns), 1),
            "host_bmac_per_cycle": round(per_cycle, 1), "host_popcnt_per_tsc_cycle": round(float(popcnt_per_cycle), 3),
            "host_percent_of_popcnt_peak": round(100 * per_cycle / peak, 1),
            "host_percent_of_one_popcnt_a_cycle": round(100 * per_cycle / POPCNT_PEAK, 1),
            "float32_matvec_mac_per_ns": round(macs / float_ns, 2),
            "float32_batched_mac_per_ns": round(macs / float_batch_ns, 2)}


def layer_counts(graph, instructions: np.ndarray, prog) -> list[tuple[str, int, float]]:
    """(call, MACs, instructions) per kernel call of the profile (the same for every image)."""
    assert (instructions == instructions[0]).all() or np.ptp(instructions, axis=0).max() <= 80
    macs = {m.name: m.in_features * m.out_features for m in graph.matmuls()}
    rows = []
    for (text, _, comment), count in zip(prog.calls, instructions.mean(axis=0), strict=True):
        rows.append((f"{text.split('(')[0]} ({comment})", macs.get(comment, 0), float(count)))
    return rows


def main() -> int:
    t0 = time.perf_counter()
    result: dict = {"bench": "firmware_kernels"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result |= host_kernel(work)

        graph = random_graph(LFC, seed=1, input_bits=8)
        x = random_inputs(graph, IMAGES)
        expected = golden.predict_int(graph, x)
        runs = {}
        for name, binary in (("binary", True), ("int8", False)):
            write_tree(work / name, emit_c.emit(graph, binary_kernels=binary))
            outputs, instructions = runner.profile_cortex_m4(work / name, x, 10)
            assert np.array_equal(outputs, expected), f"{name} firmware differs from golden"
            runs[name] = layer_counts(graph, instructions, emit_c.lower(graph, binary))
        print(f"(b, c) Cortex-M4 (QEMU mps2-an386, -icount), LFC W1A1 {LFC}, instructions per inference "
              f"(outputs = golden on {IMAGES} images):")
        print(f"    {'call':44s} {'MACs':>9s} {'xnorkit':>12s} {'MAC/instr':>9s} {'int8':>12s} {'MAC/instr':>9s}")
        binary_layers = []
        for (call, macs, ours), (_, _, base) in zip(runs["binary"], _align(runs), strict=True):
            print(f"    {call:44s} {macs:9,d} {ours:12,.0f} {macs / ours if macs else 0:9.2f} "
                  f"{base:12,.0f} {macs / base if macs and base else 0:9.2f}")
            if call.startswith("xk_dense_bin_bin"):
                binary_layers.append((macs, ours))
        total, total_int8 = sum(r[2] for r in runs["binary"]), sum(r[2] for r in runs["int8"])
        bmac_per_instr = sum(m for m, _ in binary_layers) / sum(i for _, i in binary_layers)
        print(f"    total: {total:,.0f} instructions per inference; int8 baseline {total_int8:,.0f}: "
              f"{total_int8 / total:.1f}x more; binary layers {bmac_per_instr:.2f} bMAC per instruction")
        result |= {"m4_instructions_per_inference": int(total), "m4_int8_instructions_per_inference": int(total_int8),
                   "m4_speedup_over_int8": round(total_int8 / total, 2),
                   "m4_binary_layers_bmac_per_instruction": round(bmac_per_instr, 2)}
        result |= float_input_step(work / "binary", graph, x, expected)

        size = library_size(work / "binary", graph)
        result |= size
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["ok"] = bool(result["host_percent_of_popcnt_peak"] >= 50 and result["m4_binary_layers_bmac_per_instruction"]
                        >= 2 and result["flash_within_percent"] <= 10 and result["ram_equals_plan"])
    print(json.dumps(result))
    return 0 if result["ok"] else 1


def float_input_step(fw: Path, graph, x: np.ndarray, expected: np.ndarray) -> dict:
    """(e) NAME_infer's float input step (xk_quantize, step 0) on the M4F's FPU (the board's hard-float build) and
    with software floating point, and NAME_infer_int's integer load in its place."""
    steps = {}
    for name, kwargs in (("fpu", {}), ("soft", {"hard_float": False}), ("int", {"integer": True})):
        inputs = golden.quantize_input(graph, x).reshape(len(x), -1) if name == "int" else x
        outputs, instructions = runner.profile_cortex_m(fw, inputs, 10, "mps2-an386", **kwargs)
        assert np.array_equal(outputs, expected), f"{name} build differs from golden"
        steps[name] = float(instructions[:, 0].mean())
    print(f"(e) the input step per inference, {graph.input_shape[0]} pixels: float on the FPU (hard-float ABI) "
          f"{steps['fpu']:,.0f} instructions, with software floating point {steps['soft']:,.0f} "
          f"({steps['soft'] / steps['fpu']:.1f}x), NAME_infer_int's uint8 load {steps['int']:,.0f}")
    return {"m4_float_step_fpu": round(steps["fpu"]), "m4_float_step_soft": round(steps["soft"]),
            "m4_int_load_step": round(steps["int"])}


def _align(runs: dict) -> list[tuple[str, int, float]]:
    """The int8 run's counts in the binary run's rows: per fully connected layer (by its comment), the
    sign activations and other calls summed into the row of the same IR node."""
    by_node: dict[str, float] = {}
    for call, _, count in runs["int8"]:
        node = call.split("(", 1)[1].rstrip(")")
        by_node[node] = by_node.get(node, 0.0) + count
    return [(call, macs, by_node.get(call.split("(", 1)[1].rstrip(")"), 0.0)) for call, macs, _ in runs["binary"]]


def library_size(fw: Path, graph) -> dict:
    gcc, size_tool = tools.require("arm-none-eabi-gcc"), tools.require("arm-none-eabi-size")
    # the model's translation unit holds the kernels it calls (NAME.c includes xk_kernels.c as static)
    source = f"{emit_c.library_name(fw)}.c"
    subprocess.run([gcc, *runner.M4_FLAGS, *runner.WARNINGS, "-c", source, "-o", "library.o"], cwd=fw, check=True)
    line = subprocess.run([size_tool, "library.o"], cwd=fw, capture_output=True, text=True,
                          check=True).stdout.splitlines()[1].split()
    text, bss = int(line[0]) + int(line[1]), int(line[2])  # .text (code, const) + .data; .bss
    weight_bits = sum(m.in_features * m.out_features for m in graph.matmuls())
    prog = emit_c.lower(graph)
    budget = weight_bits / 8 + (text - prog.weight_bytes)  # the weights as bits, and everything else
    within = 100 * (text - budget) / budget
    print(f"(d) arm-none-eabi-size, LFC library for the Cortex-M4: flash {text:,} bytes = packed weight bits / 8 "
          f"{weight_bits // 8:,} + code {budget - weight_bits / 8:,.0f} + {text - budget:,.0f} "
          f"({within:.1f}%: row padding, thresholds, class scores); RAM .bss {bss:,} bytes, "
          f"planned arena {prog.bytes:,} (+ stack {emit_c.STACK_BYTES:,})")
    return {"flash_bytes": text, "weight_bits_bytes": weight_bits // 8, "flash_within_percent": round(within, 1),
            "ram_bss_bytes": bss, "planned_arena_bytes": prog.bytes, "ram_equals_plan": bss == prog.bytes}


if __name__ == "__main__":
    sys.exit(main())
