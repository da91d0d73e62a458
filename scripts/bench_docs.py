"""The tables of measured figures in README.md and docs/*.md, made from bench/results.json (bench/all.py).

A generated table sits between two markers, and everything between them is rewritten:

    <!-- bench-table: NAME -->
    ...
    <!-- /bench-table -->

NAME is one of TABLES below. `python scripts/bench_docs.py` rewrites every block; `--check` writes nothing and
exits 1 naming each block that differs from what bench/results.json gives (tests/test_bench_docs.py runs it).
No measured figure is typed by hand: a block whose bench has no result says so and names the command to run.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from all import bench_names  # noqa: E402  (bench/all.py: which benches there are)

from xnorkit import boards  # noqa: E402  (the boards' capacities and clocks)

RESULTS = ROOT / "bench" / "results.json"
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
BLOCK = re.compile(r"(<!-- bench-table: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /bench-table -->)", re.S)


class UnknownTable(Exception):
    """A marker names a table this script does not know."""


class NoResult(Exception):
    """A table needs a bench that bench/results.json has no result for: the block says so instead."""


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def num(x: float) -> str:
    return f"{x:,}"


def table(header: list[str], rows: list[list[object]]) -> list[str]:
    """A Markdown table: as many delimiter cells as header cells, every row as wide."""
    for row in rows:
        assert len(row) == len(header), f"row {row} has {len(row)} cells for {len(header)} columns"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


class Results:
    """bench/results.json, read by the tables; records which benches each table used."""

    def __init__(self, entries: dict[str, dict]):
        self.entries = entries
        self.used: list[str] = []

    def __getitem__(self, bench: str) -> dict:
        entry = self.entries.get(bench)
        if entry is None or entry.get("result") is None:
            raise NoResult(bench)
        if bench not in self.used:
            self.used.append(bench)
        return entry["result"]

    def provenance(self) -> str:
        parts = []
        for bench in self.used:
            e = self.entries[bench]
            dirty = ", uncommitted changes" if e.get("dirty") else ""
            verdict = "ok" if e["ok"] else "goal NOT met"
            parts.append(f"`{bench}` at {e['commit'][:10]}{dirty} on {e['date'][:10]} ({verdict})")
        return "Generated from bench/results.json (`make docs`): " + "; ".join(parts) + "."


# --- the tables -------------------------------------------------------------------------------------------

def headline(bench: str, r: dict) -> str:
    """One line of a bench's main figures, for the README's summary."""
    lines: dict[str, Callable[[], str]] = {
        "act_resnet": lambda: (f"ACT {r['act']['block_saving']:.0%} fewer blocks at {r['act']['loss_points']:.2f} pt; "
                               f"SACT {r['sact']['block_saving']:.0%} fewer per position at "
                               f"{r['sact']['loss_points']:.2f} pt"),
        "branchy_lenet": lambda: f"{r['mac_reduction']}x fewer MACs at {r['loss_points']:.2f} pt",
        "d2nn_digits": lambda: f"{r['mac_reduction']}x fewer MACs at {r['loss_points']:.2f} pt",
        "deep_compression_lenet300": lambda: f"{r['compression_ratio']}x at {r['drop_points']:.2f} pt",
        "distill_tfc": lambda: (f"{r['gain_points']:+.2f} pt: {pct(r['distilled_mean'])} against "
                                f"{pct(r['alone_mean'])}, {r['seeds_improved']} of {len(r['seeds'])} seeds ahead"),
        "explore": lambda: (f"2 workers {r['speedup']}x the trials/hour of 1; Ray {r['ray_overhead_share']:.1%} a "
                            f"trial; sharded RTL predict {r['predict_speedup']}x"),
        "cnv": lambda: (f"{sum(d['rtl_equal'] == d['hls_equal'] == d['inputs'] for d in r['designs'])} of "
                        f"{len(r['designs'])} CNV designs bit-exact in RTL and HLS, "
                        f"{sum(d['fits'] for d in r['designs'])} fit"),
        "finn_anchors": lambda: ", ".join(f"{k.split('_')[0].upper()} {v}x" for k, v in r.items()
                                          if k.endswith("_vs_finn")) + " FINN's frames/s per LUT",
        "firmware_kernels": lambda: (f"Cortex-M4 LFC {num(r['m4_instructions_per_inference'])} instructions; "
                                     f"host {r['host_percent_of_popcnt_peak']}% of the measured POPCNT peak"),
        "firmware_mnist": lambda: (f"{sum(n['host_bit_exact'] and n['m4_bit_exact'] for n in r['networks'])} of "
                                   f"{len(r['networks'])} networks bit-exact on host and Cortex-M4"),
        "golden_lfc": lambda: (f"compile + golden {r['compile_s'] + r['golden_s']:.1f} s on {num(r['images'])} images "
                               f"(qonnx's executor {r['qonnx_s']:.1f} s); {r['agreement']:,} outputs agree"),
        "group_lasso_digits": lambda: (f"{r['neurons_removed']:.1%} of neurons removed at "
                                       f"{r['accuracy_loss_points']:.2f} pt"),
        "hls_cpp": lambda: f"{sum(x['agree'] for x in r['runs']):,} of {sum(x['inputs'] for x in r['runs']):,} equal",
        "mcu_vs_cmsis_nn": lambda: (f"against CMSIS-NN s8: LFC W1A1 {r['cortex_m4']['LFC W1A1']['speedup']}x fewer "
                                    f"Cortex-M4 instructions, LeNet-5 {r['cortex_m4']['LeNet-5 W1A1']['speedup']}x, "
                                    f"SFC on the Cortex-M0 {r['cores']['SFC W1A1 cortex-m0']['speedup']}x"),
        "popcount_luts": lambda: (f"popcount at {max(p['ratio'] for p in r['popcount']):.0%} of naive LUTs or less; "
                                  f"estimate within {max(abs(s['error']) for s in r['mvtu_sweep']):.0%}"),
        "rtl_mnist": lambda: (f"{sum(d['bit_exact'] for d in r['designs'])} of {len(r['designs'])} designs "
                              f"bit-exact, cycles = model; LFC's 10,000 images simulated in {r['lfc_sim_seconds']} s"),
        "sparse_exit": lambda: (f"B-LeNet {r['blenet_exit']['rtl_cycle_ratio']}x fewer RTL cycles, "
                                f"{r['blenet_exit']['instruction_ratio']}x fewer Cortex-M4 instructions with the exit; "
                                f"block-pruned SFC {r['sfc_luts']['ratio']:.0%} of dense LUTs"),
        "synth_boards": lambda: f"{sum(d['measured']['fits'] for d in r['designs'])} of {len(r['designs'])} fit",
        "train_lfc_w1a1": lambda: pct(r["accuracy"]),
        "train_sfc_w1a1": lambda: pct(r["accuracy"]),
        "train_tfc_w2a2": lambda: pct(r["accuracy"]),
    }
    return lines[bench]() if bench in lines else ""


def summary(res: Results) -> list[str]:
    """README: every bench's main figures, whether it met its goal, and the commit it ran on."""
    rows = []
    for bench in bench_names():
        entry = res.entries.get(bench)
        if entry is None:
            rows.append([f"`{bench}`", f"not measured: `make bench BENCH={bench}`", "", "", "", ""])
            continue
        r = entry.get("result")
        rows.append([f"`{bench}`", headline(bench, r) if r else "no result", "yes" if entry["ok"] else "**no**",
                     f"{entry['commit'][:10]}{' (dirty)' if entry.get('dirty') else ''}", entry["date"][:10],
                     f"{entry['wall_seconds']:,.0f}"])
    return table(["bench", "measured", "goal met", "commit", "date", "seconds"], rows)


TRAINING_ROWS: list[tuple[str, str, str, Callable[[dict], str]]] = [  # bench, paper's result, goal, figures
    ("train_sfc_w1a1", "Brevitas 97.81%", ">= 97.5%", lambda r: f"{pct(r['accuracy'])}, {r['epochs']} epochs"),
    ("train_lfc_w1a1", "FINN 98.4%, Brevitas 98.88%", ">= 98.4%",
     lambda r: f"{pct(r['accuracy'])}, {r['epochs']} epochs, 1-pixel shifts"),
    ("train_tfc_w2a2", "Brevitas 96.60%", ">= 96.0%", lambda r: f"{pct(r['accuracy'])}, {r['epochs']} epochs"),
    ("deep_compression_lenet300", "40x, 1.64% -> 1.58% error", ">= 35x, <= 0.3 pt",
     lambda r: f"{r['compression_ratio']}x, {r['drop_points']:.2f} pt"),
    ("distill_tfc", "", "distilled beats alone",
     lambda r: (f"{r['gain_points']:+.2f} pt: {pct(r['distilled_mean'])} against {pct(r['alone_mean'])}, mean of "
                f"{len(r['seeds'])} seeds, {r['seeds_improved']} of {len(r['seeds'])} ahead (see below)")),
    ("branchy_lenet", "~5x on CPU", ">= 3x fewer MACs, <= 0.5 pt",
     lambda r: f"{r['mac_reduction']}x, {r['loss_points']:.2f} pt"),
    ("group_lasso_digits", "", ">= 40% neurons, <= 1 pt",
     lambda r: (f"{r['neurons_removed']:.1%}, {r['accuracy_loss_points']:.2f} pt "
                f"({'-'.join(map(str, r['baseline_hidden']))} -> {'-'.join(map(str, r['hidden']))})")),
    ("act_resnet", "SACT", ">= 30% fewer blocks, <= 0.5 pt",
     lambda r: (f"ACT {r['act']['block_saving']:.0%} fewer at {r['act']['loss_points']:.2f} pt; SACT "
                f"{r['sact']['block_saving']:.0%} fewer per position at {r['sact']['loss_points']:.2f} pt")),
    ("d2nn_digits", "", ">= 2x fewer MACs, <= 1 pt",
     lambda r: (f"{r['mac_reduction']}x at {r['loss_points']:.2f} pt (large branch on "
                f"{r['large_branch_fraction']:.1%} of images, cost weight {r['cost_weight']:g} chosen on validation)")),
]


def training(res: Results) -> list[str]:
    """docs/training.md: the training benches against the papers' results and their goals."""
    rows = []
    for bench, paper, goal, figures in TRAINING_ROWS:
        try:
            measured = figures(res[bench])
        except NoResult:
            measured = f"not measured: `make bench BENCH={bench}`"
        rows.append([f"`{bench}.py`", paper, goal, measured])
    return table(["bench", "paper result", "goal", "measured here (2-core CPU)"], rows)


def distill_seeds(res: Results) -> list[str]:
    """docs/training.md: the distillation bench seed by seed, and what the spread says of the gain."""
    r = res["distill_tfc"]
    seeds, alone, dist = r["seeds"], r["alone_accuracy"], r["distilled_accuracy"]
    gains = [100 * (d - a) for a, d in zip(alone, dist, strict=True)]
    spread = statistics.stdev(gains) if len(gains) > 1 else float("nan")
    others = ", ".join(f"{name} {pct(acc)}" for name, acc in r["others"].items())
    return table(["seed", *map(str, seeds), "mean"], [
        ["alone, test", *(f"{100 * a:.2f}" for a in alone), f"{100 * r['alone_mean']:.2f}"],
        ["distilled, test", *(f"{100 * d:.2f}" for d in dist), f"{100 * r['distilled_mean']:.2f}"],
        ["gain, points", *(f"{g:+.2f}" for g in gains), f"{r['gain_points']:+.2f}"],
    ]) + [
        "",
        f"- Teacher: {pct(r['teacher_accuracy'])} on test. Students: {r['epochs']} epochs.",
        f"- {r['seeds_improved']} of {len(seeds)} seeds ahead; the gains' standard deviation is {spread:.2f} point, "
        f"so the mean gain is {r['gain_points'] / (spread / math.sqrt(len(gains))):.1f} standard errors from zero.",
        f"- Validation split (the last 5,000 training images), mean: alone {pct(r['alone_validation_mean'])}, "
        f"distilled {pct(r['distilled_validation_mean'])}.",
        f"- The distilled student of seed {seeds[0]} compiles with golden = Brevitas on every test image: "
        f"{'yes' if r['golden_equals_brevitas'] else '**no**'} (golden {pct(r['golden_accuracy'])}).",
        f"- For reference, on seed {seeds[0]}: {others}.",
    ]


def folds(fold: dict) -> str:
    return ", ".join(f"{v['pe']}x{v['simd']}" for v in fold.values())


def rtl_mnist(res: Results) -> list[str]:
    """docs/hardware.md: the MNIST networks' RTL, bit-exact, cycles measured against the model."""
    rows = [[d["net"], folds(d["fold"]), num(d["images"]), "yes" if d["bit_exact"] else "**no**",
             f"{d['cycles_measured']:,.0f} ({d['cycles_analytical']:,})",
             f"{d['latency_cycles']:,} ({d['latency_estimate']:,})", num(d["fps_at_200mhz"]),
             f"{d['sim_seconds']:.0f} s ({d['build_seconds']:.0f} s build)"] for d in res["rtl_mnist"]["designs"]]
    return table(["network", "folding (PE x SIMD per layer)", "images", "bit-exact", "cycles / inference (model)",
                  "latency (upper estimate)", "FPS at 200 MHz", "simulation"], rows)


def sparse_exit(res: Results) -> list[str]:
    """docs/hardware.md: pruned binary networks and B-LeNet's early exit in RTL and on the Cortex-M4."""
    r = res["sparse_exit"]
    ln, sfc, mem, luts, gl, ex = (r["lenet300_pruned"], r["sfc_pruned"], r["sfc_memory_bits"], r["sfc_luts"],
                                  r["group_lasso_mlp"], r["blenet_exit"])

    def exact(e: dict) -> str:
        return "/".join("yes" if e[k] else "**no**" for k in ("rtl", "c", "cortex_m4"))

    rows = [
        ["LeNet-300-100 W1A1 pruned to 10%", f"accuracy {pct(ln['accuracy'])}", exact(ln)],
        [f"SFC W1A1 block-pruned {sfc['block'][0]} x {sfc['block'][1]} to {sfc['density']:.1%}",
         f"accuracy {pct(sfc['accuracy'])} (dense {pct(sfc['dense_accuracy'])}); {sfc['rtl_cycles']:,.0f} cycles "
         f"against {sfc['dense_rtl_cycles']:,.0f} dense ({sfc['cycle_ratio']}x)", exact(sfc)],
        ["its weight memory (tiles and step memory)",
         f"{mem['sparse']:,} bits against {mem['dense']:,} dense binary ({mem['sparse_vs_dense']:.0%})", ""],
        ["its LUTs, weights in logic (Yosys, Arty A7)",
         f"{luts['sparse']:,} against {luts['dense']:,} dense ({luts['ratio']:.0%})", ""],
        ["group-lasso MLP on digits", f"layers {'-'.join(map(str, gl['layers']))} (from 256-256-10)", exact(gl)],
        [f"B-LeNet W4A4, exit margin {ex['margin']}",
         f"{ex['exit_rate']:.1%} of test images leave early; accuracy {pct(ex['cascade_accuracy'])} against "
         f"{pct(ex['full_accuracy'])} full", exact(ex)],
        ["B-LeNet RTL, cycles per image back to back",
         f"{ex['rtl_cycles_with_exit']:,.0f} with the exit, {ex['rtl_cycles_without']:,.0f} never taken "
         f"({ex['rtl_cycle_ratio']}x); estimated {ex['rtl_luts_estimate']:,} LUTs against "
         f"{ex['balanced_luts_estimate']:,} folded without exits", ""],
        ["B-LeNet Cortex-M4, instructions per image",
         f"{ex['instructions_with_exit']:,} with the exit, {ex['instructions_without']:,} without "
         f"({ex['instruction_ratio']}x)", ""],
    ]
    return table(["network", "measured", "bit-exact RTL/C/Cortex-M4"], rows)


def firmware_kernels(res: Results) -> list[str]:
    """docs/firmware.md: the binary kernels on the host and the emulated Cortex-M4."""
    r = res["firmware_kernels"]
    m4 = r["m4_instructions_per_inference"]
    input_step = (f"float on the FPU {r['m4_float_step_fpu']:,}, with software floating point "
                  f"{r['m4_float_step_soft']:,}; `NAME_infer_int`'s uint8 load {r['m4_int_load_step']:,}"
                  if "m4_float_step_fpu" in r else "not measured")
    rows = [
        [f"host binary dense kernel, 1024 x 1024 ({r['host_kernel_path']})",
         f"{r['host_bmac_per_ns']} bMAC/ns, {r['host_bmac_per_cycle']} bMAC per TSC cycle = "
         f"{r['host_percent_of_popcnt_peak']}% of this core's measured POPCNT peak "
         f"({r['host_popcnt_per_tsc_cycle']} POPCNTs per TSC cycle); float32 numpy matrix-vector product of the "
         f"same shape {r['float32_matvec_mac_per_ns']} MAC/ns"],
        ["Cortex-M4, LFC W1A1 (784 -> 3 x 1024 -> 10), instructions per inference",
         f"{m4:,}; binary layers {r['m4_binary_layers_bmac_per_instruction']} bMAC per instruction"],
        ["the same network with the plain int8 C loop (not CMSIS-NN), same harness",
         f"{r['m4_int8_instructions_per_inference']:,} ({r['m4_speedup_over_int8']}x more)"],
        ["Cortex-M4, LFC's input step per inference (instructions)", input_step],
        ["`arm-none-eabi-size`, LFC library",
         f"flash {r['flash_bytes']:,} bytes = packed weight bits / 8 ({r['weight_bits_bytes']:,}) + "
         f"{r['flash_within_percent']}%; RAM `.bss` {r['ram_bss_bytes']:,} bytes (planned arena "
         f"{r['planned_arena_bytes']:,})"],
    ]
    return table(["figure", "measured"], rows)


def firmware_mnist(res: Results) -> list[str]:
    """docs/firmware.md: every network's firmware on MNIST, host and emulated Cortex-M4."""
    def exact(ok: bool, n: int) -> str:
        return f"bit-exact on {n:,}" if ok else f"**differs** ({n:,})"

    def integer(n: dict) -> str:  # NAME_infer_int, host and Cortex-M4 (not in results measured before it existed)
        if "int_host_bit_exact" not in n:
            return "not measured"
        both = n["int_host_bit_exact"] and n["int_m4_bit_exact"]
        return f"{n['input_type']}: " + ("bit-exact, host and Cortex-M4" if both else "**differs**")

    rows = [[n["net"], pct(n["golden_accuracy"]), exact(n["host_bit_exact"], n["host_images"]),
             f"{exact(n['m4_bit_exact'], n['m4_images'])} ({pct(n['m4_accuracy'])})", integer(n),
             f"{n['arena_bytes']:,} B", f"{n['weight_table_bytes']:,} B"] for n in res["firmware_mnist"]["networks"]]
    return table(["network", "golden accuracy (10,000)", "host C", "Cortex-M4 QEMU", "integer API", "arena",
                  "tables"], rows)


def mcu_vs_cmsis_nn(res: Results) -> list[str]:
    """docs/firmware.md: the firmware against CMSIS-NN's int8 kernels, per network and core."""
    r = res["mcu_vs_cmsis_nn"]
    runs = [(net, "cortex-m4", v) for net, v in r["cortex_m4"].items()]
    runs += [(key.rsplit(" ", 1)[0], key.rsplit(" ", 1)[1], v) for key, v in r["cores"].items()]
    rows = [[net, core, f"{v['xnorkit']:,}", f"{v['cmsis_nn_s8']:,}", f"**{v['speedup']}x**",
             f"{v['first_layer_speedup']}x", f"{v['weight_bytes'][0]:,} / {v['weight_bytes'][1]:,}",
             "yes" if v["bit_exact"] else "**no**"] for net, core, v in runs]
    return table(["network", "core", "xnorkit instructions", "CMSIS-NN s8", "s8 / xnorkit", "first layer",
                  "weight bytes (xnorkit / s8)", "bit-exact (100 images)"], rows)


def popcount_luts(res: Results) -> list[str]:
    """docs/synthesis.md: the 7-series XNOR-popcount trees against Yosys' $countones."""
    rows = [[p["simd"], f"{p['generated_luts']} ({p['generated_per_mac']:.2f})", p["generated_carry4"],
             f"{p['naive_luts']} ({p['naive_per_mac']:.2f})", f"{p['ratio']:.0%}"]
            for p in res["popcount_luts"]["popcount"]]
    return table(["SIMD", "generated LUTs (per MAC)", "CARRY4", "naive `$countones` LUTs (per MAC)",
                  "generated / naive"], rows)


def mvtu_estimate(res: Results) -> list[str]:
    """docs/synthesis.md: the MVTU LUT estimate against Yosys over PE x SIMD."""
    rows = [[s["pe"], s["simd"], s["yosys_luts"], s["estimated_luts"], f"{round(100 * s['error']):+d}%"]
            for s in res["popcount_luts"]["mvtu_sweep"]]
    return table(["PE", "SIMD", "Yosys LUTs", "estimated LUTs", "error"], rows)


def synth_boards(res: Results) -> list[str]:
    """docs/synthesis.md: trained networks synthesized per board at the folding the solver picked."""
    r = res["synth_boards"]
    rows = []
    for d in r["designs"]:
        board, m, est = boards.load(d["board"]), d["measured"], d["estimated"]
        rate = f"{board.clock_mhz * 1e6 / d['cycles']:,.0f} at {board.clock_mhz:g} MHz"
        if d["fmax_mhz"]:
            rate = f"{d['fmax_mhz'] * 1e6 / d['cycles']:,.0f} at Fmax; " + rate
        rows.append([d["network"], d["board"], num(d["cycles"]), f"{m['lut']:,} of {board.lut:,} ({est['lut']:,})",
                     f"{m['ff']:,}", f"{m['bram']} of {board.bram} ({est['bram']})",
                     f"{d['fmax_mhz']:.1f} MHz" if d["fmax_mhz"] else "not routed", rate,
                     "yes" if m["fits"] else "**no**"])
    return table(["network", "board", "cycles / inference", "LUTs (estimate)", "FFs", "block RAMs (estimate)",
                  "Fmax", "inferences/s", "fits"], rows) + [
        "", f"The gate-level simulation of the iCEBreaker netlist: {r['gate_level_images']} test images, bit-exact "
        f"{'yes' if r['gate_level_exact'] else '**no**'}, {r['gate_level_cycles']:,.0f} cycles per inference."]


def hls_cpp(res: Results) -> list[str]:
    """docs/synthesis.md: the HLS C++ under g++ against golden on every test image."""
    rows = [[x["network"], x["folding"], f"{x['agree']:,} of {x['inputs']:,}", f"{x['seconds']} s"]
            for x in res["hls_cpp"]["runs"]]
    return table(["network", "folding", "outputs equal to golden", "g++ run"], rows)


def finn_anchors(res: Results) -> list[str]:
    """docs/synthesis.md: frames/s per LUT of SFC, LFC and CNV W1A1 against FINN's published -max designs."""
    rows = [[d["network"], "/".join(d["weights"]), f"{d['cycles']:,}", num(d["fps"]), f"{d['lut']:,}",
             f"{d['bram18']}",
             num(d["fps_per_klut"]), f"{num(d['finn_fps'])} / {d['finn_lut']:,}", num(d["finn_fps_per_klut"]),
             f"**{d['vs_finn']}x**", f"HLS {d['hls_equal']}/{d['inputs']}, RTL {d['rtl_equal']}/{d['rtl_inputs']}"]
            for d in res["finn_anchors"]["designs"]]
    return table(["network", "weights in", "cycles/frame", "frames/s (200 MHz)", "LUT (Yosys)", "BRAM18",
                  "frames/s per kLUT",
                  "FINN frames/s / LUT", "FINN per kLUT", "vs FINN", "equal to golden"], rows)


def cnv(res: Results) -> list[str]:
    """docs/synthesis.md: FINN's CNV W1A1 and W2A2 on the PYNQ-Z2 and the ZCU104, end to end."""
    rows = [[d["network"], d["board"], f"{d['interval']:,}", num(d["fps"]), f"{d['lut']:,}", f"{d['ff']:,}",
             f"{d['bram18']}", f"{d['estimate_lut']:,} / {d['estimate_bram18']}", "yes" if d["fits"] else "**no**",
             f"{d['rtl_equal']}/{d['inputs']}", f"{d['hls_equal']}/{d['inputs']}"] for d in res["cnv"]["designs"]]
    return table(["network", "board", "cycles/frame", "frames/s", "LUT", "FF", "BRAM18", "estimate LUT / BRAM18",
                  "fits", "RTL = golden", "HLS = golden"], rows)


def explore(res: Results) -> list[str]:
    """docs/explore.md: the 16-trial study with 1 and 2 Ray workers, Ray's overhead, sharded predict."""
    r = res["explore"]
    rows = [["trials per hour, 1 worker", num(r["trials_per_hour_1"]),
             f"{r['one_worker_s']} s for {r['trials']} trials"],
            ["trials per hour, 2 workers", num(r["trials_per_hour_2"]),
             f"{r['two_workers_s']} s: {r['speedup']}x (goal >= 1.7x)"],
            ["a trial alone / beside another", f"{r['trial_s_1']} s / {r['trial_s_2']} s",
             f"this machine's ceiling for 2 workers {r['two_worker_ceiling']}x, reached to "
             f"{r['share_of_ceiling']:.0%}" if "two_worker_ceiling" in r else "ceiling not measured"],
            ["Ray's overhead per trial", f"{r['ray_overhead_per_trial_s']} s",
             f"{r['ray_overhead_share']:.1%} of a directly called trial (goal < 5%)"],
            ["Ray's start and stop, once a study", f"{r['ray_start_stop_s']} s",
             f"all in, the 1-worker study took {r['ray_overhead_all_in']:.1%} longer than the direct calls"],
            ["`predict --backend rtl`, LFC, 10,000 MNIST images", f"{r['predict_serial_s']} s serial",
             f"{r['predict_workers2_s']} s with `--workers 2`: {r['predict_speedup']}x, outputs "
             f"{'identical' if r['predict_exact'] else '**different**'}"]]
    return table(["measure", "figure", "detail"], rows) + [
        "", f"Pareto front: {r['front']} of {r['trials']} trials; {r['trials_run']} trained"
        + ("" if r["trials_run"] == r["trials"] else ", the others had an earlier trial's parameters and took its "
           "figures") + "."]


TABLES: dict[str, Callable[[Results], list[str]]] = {
    "summary": summary, "training": training, "distill-seeds": distill_seeds, "rtl-mnist": rtl_mnist,
    "sparse-exit": sparse_exit, "firmware-kernels": firmware_kernels, "firmware-mnist": firmware_mnist,
    "mcu-vs-cmsis-nn": mcu_vs_cmsis_nn,
    "popcount-luts": popcount_luts, "mvtu-estimate": mvtu_estimate, "synth-boards": synth_boards,
    "hls-cpp": hls_cpp, "explore": explore, "finn-anchors": finn_anchors, "cnv": cnv,
}


# --- rewriting the documents ----------------------------------------------------------------------------

def render(name: str, entries: dict[str, dict]) -> str:
    if name not in TABLES:
        raise UnknownTable(f"no table named {name!r}; scripts/bench_docs.py knows {', '.join(sorted(TABLES))}")
    res = Results(entries)
    try:
        lines = TABLES[name](res)
    except NoResult as missing:
        return f"Not measured: bench/results.json has no result for `{missing}`; run `make bench BENCH={missing}`.\n"
    if res.used:
        lines += ["", res.provenance()]
    return "\n".join(lines) + "\n"


def rewrite(text: str, entries: dict[str, dict]) -> str:
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("name"), entries) + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a table differs")
    args = parser.parse_args(argv)
    if not RESULTS.exists():
        print("bench_docs: bench/results.json is missing; run `make bench` first", file=sys.stderr)
        return 2
    try:
        entries = json.loads(RESULTS.read_text())
    except json.JSONDecodeError as err:
        print(f"bench_docs: bench/results.json is not valid JSON ({err}); restore it with git or re-run "
              f"`make bench`", file=sys.stderr)
        return 2
    stale = []
    for path in DOCS:
        text = path.read_text()
        try:
            new = rewrite(text, entries)
        except UnknownTable as err:
            print(f"bench_docs: {path.relative_to(ROOT)}: {err}", file=sys.stderr)
            return 2
        if new != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(f"bench_docs: tables differ from bench/results.json in {', '.join(map(str, stale))}; run `make docs`",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
