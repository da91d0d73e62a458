"""FINN's CNV end to end (quant_train.zoo.finn_cnv: 3 x 32 x 32, unpadded 3x3 convolutions of 64-64-128-128-256-256
channels, two max-pools, 512-512-10), W1A1 and W2A2, exported by Brevitas and compiled from its QONNX, each
folded by the solver for the PYNQ-Z2 (Zynq-7020, 100 MHz) and the ZCU104 (Zynq UltraScale+ XCZU7EV, 200 MHz):

- the RTL under Verilator and the HLS C++ under g++, each on 100 seeded inputs against golden;
- Yosys synth_xilinx per instance (each stage, FIFO and width converter alone, summed: `xnorkit synth
  --per-instance`; the WebAssembly Yosys' 4 GB do not hold the whole design in one run);
- cycles per frame and frames/s at the board's clock; all four builds in one report (out/cnv/report/report.html,
  the builds beside it).

The weights are untrained: CIFAR-10 is not among the datasets here, so batch-norm statistics come from random
images (zoo.with_random_statistics). Goal: both backends bit-exact on every input, every design fits its board.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xnorkit import api, boards, build, golden  # noqa: E402
from xnorkit.hw import fit, synth  # noqa: E402
from xnorkit.hw import folding as fold_mod  # noqa: E402
from xnorkit.quant_train import train, zoo  # noqa: E402
from xnorkit.sim import hls, runner  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = {"W1A1": (1, 1), "W2A2": (2, 2)}
BOARDS = ("pynq-z2", "zcu104")


def one(model: Path, folder: Path, board_name: str, x_int: np.ndarray) -> dict:
    """One network on one board: compiled, folded, both backends checked, synthesized per instance."""
    build.compile_model(model, folder)
    graph = build.backend_graph(folder)
    board = boards.load(board_name)
    folding, estimate = fit.solve(graph, board)
    made = api.generate_hw(folder, folding=fold_mod.to_json(folding), hls=False)
    expected = golden.predict_from_int(graph, x_int)
    rtl = runner.simulate_bulk(folder / "rtl", x_int, expected, 0.1, 0.1, seed=3)
    hls_dir, _ = build.generate_hls(folder, folding, board, check_inputs=8)
    hls_out = hls.run(hls_dir, x_int, expected.shape[1])
    t = time.perf_counter()
    result = synth.synthesize(folder, board, per_instance=True)
    interval = made.design["initiation_interval"]
    return {"board": board_name, "interval": interval, "fps": round(board.clock_mhz * 1e6 / interval),
            "rtl_equal": int((rtl.outputs == expected).all(axis=1).sum()) if rtl.mismatch is None else 0,
            "hls_equal": int((hls_out == expected).all(axis=1).sum()), "inputs": len(x_int),
            "lut": result.total.lut, "ff": result.total.ff, "bram18": result.total.bram, "dsp": result.total.dsp,
            "estimate_lut": estimate.lut, "estimate_bram18": estimate.bram, "fits": result.fits(),
            "synth_seconds": round(time.perf_counter() - t, 1)}


def main() -> int:
    t0 = time.perf_counter()
    rows, builds = [], []
    x = np.random.default_rng(7).random((100, 3, 32, 32)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        for label, (w_bits, a_bits) in NETWORKS.items():
            model = Path(tmp) / f"cnv_{label.lower()}.onnx"
            train.export_qonnx(zoo.finn_cnv(w_bits, a_bits), (3, 32, 32), model)
            for board_name in BOARDS:
                folder = ROOT / "out" / "cnv" / f"cnv_{label.lower()}_{board_name}"
                x_int = golden.quantize_input(build.compile_model(model, folder), x)
                row = {"network": f"CNV {label}", **one(model, folder, board_name, x_int)}
                rows.append(row)
                builds.append(folder)
                print(f"CNV {label} on {board_name}: {row['interval']:,} cycles per frame, {row['fps']:,} frames/s; "
                      f"RTL {row['rtl_equal']}/{row['inputs']} and HLS {row['hls_equal']}/{row['inputs']} equal to "
                      f"golden; Yosys per instance {row['lut']:,} LUT, {row['ff']:,} FF, {row['bram18']} BRAM18 "
                      f"(estimate {row['estimate_lut']:,} LUT, {row['estimate_bram18']} BRAM18); fits: {row['fits']}",
                      flush=True)
    md, page = api.write_report(builds, ROOT / "out" / "cnv" / "report")  # a report folder of its own
    print(f"report: {page}")
    ok = all(r["rtl_equal"] == r["hls_equal"] == r["inputs"] and r["fits"] for r in rows)
    print(json.dumps({"bench": "cnv", "designs": rows, "report": str(page.relative_to(ROOT)),
                      "seconds": round(time.perf_counter() - t0, 1), "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
