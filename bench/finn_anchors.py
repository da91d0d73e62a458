"""Throughput per LUT against FINN's published designs (Umuroglu et al., "FINN: A Framework for Fast, Scalable
Binarized Neural Network Inference", FPGA 2017, Table: the -max designs on a ZC706 at 200 MHz):

    SFC-max  12,300,000 frames/s  91,131 LUTs     LFC-max  1,560,000 frames/s  82,988 LUTs
    CNV-max      21,906 frames/s  46,253 LUTs

xnorkit builds the same topologies W1A1 (SFC / LFC: 784 -> 3 x 256 / 3 x 1024 -> 10 on binarized pixels, as
BNN-PYNQ feeds them; CNV: zoo.finn_cnv), untrained (batch-norm statistics from random inputs: the weights do
not change the LUT count of a design whose weights sit in memories), at FINN's rate or faster:

- SFC at 16 cycles per frame (12.5 M frames/s at 200 MHz), LFC at 128 (1.56 M), CNV at the solver's fastest
  folding whose first layer streams one pixel's channels per beat (8,100 cycles: 24,691 frames/s);
- weights in block RAM where the part has room for them, else in logic; SFC also with every weight in logic
  (no block RAM at all: at 16 cycles per frame its weight memories are 16 words deep, where a block RAM holds
  mostly nothing), and the comparison counts its lower ratio; checked on seeded inputs against golden in the
  HLS C++ (g++) and the RTL (Verilator);
- Yosys synth_xilinx for the ZC706's Zynq-7000 XC7Z045, per instance (each stage, FIFO and width converter alone,
  summed: the WebAssembly Yosys does not hold LFC in one run), the XNOR-popcounts as LUT6_2 / CARRY4 compressor
  trees (hw/popcount_x7.py).

Frames/s are at FINN's 200 MHz; Yosys makes no timing report for Xilinx parts and Vivado is not installed here,
so timing closure at 200 MHz is not checked. Goal: at least 2x FINN's frames/s per LUT on each of the three.
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

from xnorkit import boards, build, golden  # noqa: E402
from xnorkit.hw import emit_hls, emit_sv, fit, synth  # noqa: E402
from xnorkit.hw import folding as fold_mod  # noqa: E402
from xnorkit.outputs import write_tree  # noqa: E402
from xnorkit.quant_train import train, zoo  # noqa: E402
from xnorkit.sim import hls, runner  # noqa: E402

BOARD = "zc706"
FINN = {"SFC": (12_300_000, 91_131), "LFC": (1_560_000, 82_988), "CNV": (21_906, 46_253)}
TARGETS = {"SFC": 16, "LFC": 128, "CNV": 8192}  # cycles per frame the solver aims for
RTL_INPUTS = {"SFC": 20, "LFC": 10, "CNV": 20}
GOAL = 2.0


def model_of(name: str, path: Path) -> tuple[int, ...]:
    if name == "CNV":
        train.export_qonnx(zoo.finn_cnv(1, 1), (3, 32, 32), path)
        return (3, 32, 32)
    train.export_qonnx(zoo.finn_mlp(name.lower()), (784,), path)
    return (784,)


def placed(graph, folding: fold_mod.Folding, board: boards.FpgaBoard, weights: str) -> fold_mod.Folding:
    """Every unit's weights in `weights` ("logic"), or in block RAM when they fit the part together, else the
    fitter's choice per layer."""
    if weights == "logic":
        return {n: replace(f, weights="logic") for n, f in folding.items()}
    block = {n: replace(f, weights="block") for n, f in folding.items()}
    return block if fit.fits(fit.estimate(graph, block, board), board) else fit.place_weights(graph, folding, board)


def check(name: str, folder: Path, graph, folding, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(inputs, HLS outputs equal to golden, RTL outputs equal) on seeded inputs."""
    x = np.random.default_rng(3).uniform(-1, 1, (50, *shape)).astype(np.float32)
    x_int = golden.quantize_input(graph, x)
    expected = golden.predict_from_int(graph, x_int)
    write_tree(folder / "hls", emit_hls.emit(graph, folding))
    hls_equal = int((hls.run(folder / "hls", x_int, expected.shape[1]) == expected).all(axis=1).sum())
    rtl_equal = 0
    if RTL_INPUTS[name]:
        n = RTL_INPUTS[name]
        result = runner.simulate_bulk(folder / "rtl", x_int[:n], expected[:n])
        rtl_equal = int((result.outputs == expected[:n]).all(axis=1).sum()) if result.mismatch is None else 0
    return len(x_int), hls_equal, rtl_equal


def anchor(name: str, tmp: Path, board: boards.FpgaBoard, weights: str) -> dict:
    folder = tmp / f"{name.lower()}_{weights}"
    shape = model_of(name, tmp / f"{name.lower()}.onnx")
    graph = build.compile_model(tmp / f"{name.lower()}.onnx", folder)
    folding = placed(graph, fold_mod.solve(graph, TARGETS[name]), board, weights)
    write_tree(folder / "rtl", emit_sv.emit(graph, folding))
    inputs, hls_equal, rtl_equal = check(name, folder, graph, folding, shape)
    t = time.perf_counter()
    result = synth.synthesize(folder, board, per_instance=True)
    interval = emit_sv.load_design(folder / "rtl")["initiation_interval"]
    fps = board.clock_mhz * 1e6 / interval
    finn_fps, finn_lut = FINN[name]
    ours, theirs = fps / result.total.lut * 1000, finn_fps / finn_lut * 1000
    return {"network": f"{name} W1A1", "cycles": interval, "fps": round(fps), "lut": result.total.lut,
            "ff": result.total.ff, "bram18": result.total.bram, "fps_per_klut": round(ours, 1),
            "finn_fps": finn_fps, "finn_lut": finn_lut, "finn_fps_per_klut": round(theirs, 1),
            "vs_finn": round(ours / theirs, 2), "weights": sorted({f.weights for f in folding.values()}),
            "inputs": inputs, "hls_equal": hls_equal, "rtl_inputs": RTL_INPUTS[name], "rtl_equal": rtl_equal,
            "synth_seconds": round(time.perf_counter() - t, 1)}


def main(names: list[str]) -> int:
    t0 = time.perf_counter()
    board = boards.load(BOARD)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, weights in [(n, w) for n in names for w in (("block", "logic") if n == "SFC" else ("block",))]:
            row = anchor(name, Path(tmp), board, weights)
            rows.append(row)
            print(f"{row['network']}: {row['cycles']:,} cycles per frame -> {row['fps']:,} frames/s at "
                  f"{board.clock_mhz:g} MHz; Yosys ({board.part}, per instance) {row['lut']:,} LUT, {row['ff']:,} FF, "
                  f"{row['bram18']} BRAM18, weights {'/'.join(row['weights'])}: {row['fps_per_klut']:,} frames/s per "
                  f"kLUT | FINN {row['finn_fps']:,} frames/s, {row['finn_lut']:,} LUT: {row['finn_fps_per_klut']:,} "
                  f"| {row['vs_finn']}x FINN (goal {GOAL}x); HLS {row['hls_equal']}/{row['inputs']}, RTL "
                  f"{row['rtl_equal']}/{row['rtl_inputs']} equal to golden", flush=True)
    exact = all(r["hls_equal"] == r["inputs"] and r["rtl_equal"] == r["rtl_inputs"] for r in rows)
    ok = exact and all(r["vs_finn"] >= GOAL for r in rows)
    summary: dict[str, float] = {}
    for r in rows:  # per network its lowest ratio
        key = f"{r['network'].split()[0].lower()}_vs_finn"
        summary[key] = min(summary.get(key, r["vs_finn"]), r["vs_finn"])
    print(json.dumps({"bench": "finn_anchors", **summary, "designs": rows, "board": BOARD,
                      "seconds": round(time.perf_counter() - t0, 1), "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(FINN)))
