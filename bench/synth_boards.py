"""Synthesis of the digits default on the FPGA boards, with open tools only (yowasp Yosys and nextpnr):

- iCEBreaker (iCE40 UP5K): the fastest folding `--board` finds, Yosys, nextpnr placement and routing (Fmax,
  utilization), icepack bitstream, then the gate-level netlist simulated on every test image against golden;
- Arty A7-35T and PYNQ-Z2: Yosys synth_xilinx LUT / FF / block RAM counts at the folding `--board` picks;
- SFC W1A1 (784 -> 3 x 256 -> 10) on the PYNQ-Z2 at 4,096 cycles per inference (weights in block RAM)
  and its Yosys counts. (The folding `--board pynq-z2` picks for SFC, 256 cycles with a 784-input first
  layer, kept Yosys' WebAssembly build busy for over 20 minutes here; it is not part of this bench.)

Each line prints the estimate hw/fit.py planned with beside what Yosys measured. The networks train briefly:
this bench is about the hardware. Goal: every design fits its board (measured) and the gate-level
simulation is bit-exact.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xnorkit import (  # noqa: E402
    boards,  # noqa: E402
    build,
    golden,
)
from xnorkit.hw import fit, synth  # noqa: E402
from xnorkit.hw import folding as fold_mod  # noqa: E402
from xnorkit.quant_train import config, data, train  # noqa: E402
from xnorkit.sim import runner  # noqa: E402


def trained_build(cfg: config.Config, dataset: data.Dataset, folder: Path, shape: tuple[int, ...]) -> Path:
    model, _ = train.train(cfg, dataset)
    folder.mkdir(parents=True, exist_ok=True)
    train.export_qonnx(model, shape, folder / "model.onnx")
    build.compile_model(folder / "model.onnx", folder / "build")
    return folder / "build"


def synthesize(build_dir: Path, board_name: str, label: str, target_cycles: int | None = None) -> dict:
    board = boards.load(board_name)
    if target_cycles is None:  # the fastest folding the board fits
        info = build.generate_hw(build_dir, board=board_name)
    else:
        graph = build.backend_graph(build_dir)
        info = build.generate_hw(build_dir, fit.place_weights(graph, fold_mod.solve(graph, target_cycles), board))
    planned = fit.estimate(build.backend_graph(build_dir), fold_mod.from_json(info["folding"]), board)
    result = synth.synthesize(build_dir, board_name)
    t = result.total
    cells = " logic cells" if board.family == "ice40" else ""
    line = (f"{label:>14} on {board_name:<10} {info['initiation_interval']:>6,} cycles/inference: "
            f"LUT {t.lut:>6,} / {board.lut:,} (estimated {fit.logic_cells(planned, board):,}{cells}), "
            f"FF {t.ff:>6,}, BRAM {t.bram:>3} / {board.bram} (estimated {planned.bram}), DSP {t.dsp}")
    if result.routed:
        line += f"; Fmax {result.fmax_mhz:.1f} MHz (clock {board.clock_mhz:g})"
    print(line, flush=True)
    return {"network": label, "board": board_name, "cycles": info["initiation_interval"],
            "folding": info["folding"], "measured": {**result.as_dict()["total"], "fits": result.fits()},
            "estimated": planned.as_dict(), "fmax_mhz": result.fmax_mhz,
            "seconds": {k: round(v, 1) for k, v in result.seconds.items()}}


def main() -> int:
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        digits = data.load_digits()
        default = trained_build(config.DEFAULT, digits, Path(tmp) / "digits", (64,))
        graph = build.load(default)
        rows.append(synthesize(default, "icebreaker", "digits default"))
        x_int = golden.quantize_input(graph, digits.x_test)
        t = time.perf_counter()
        sim = runner.simulate_bulk(default / "rtl", x_int, golden.predict_from_int(graph, x_int),
                                   gate_level=default / "synth" / "icebreaker")
        gate_seconds = time.perf_counter() - t
        cycles = float((sim.completed_at[1:] - sim.completed_at[:-1]).mean())
        exact = sim.mismatch is None
        print(f"gate-level iCE40 netlist: {len(x_int)} test images {'bit-exact' if exact else sim.mismatch}, "
              f"{cycles:.1f} cycles/inference, {gate_seconds:.0f} s with the Verilator build")
        rows.append(synthesize(default, "arty-a7-35", "digits default"))
        rows.append(synthesize(default, "pynq-z2", "digits default"))

        mnist = data.load_mnist()
        sfc_cfg = config.Config(dataset="mnist", model=config.ModelConfig(kind="sfc", input_bits=8),
                                train=config.TrainConfig(epochs=1, batch_size=256))
        small = data.Dataset("mnist", mnist.x_train[:10000], mnist.y_train[:10000], mnist.x_test[:1000],
                             mnist.y_test[:1000], 10, mnist.image_shape)
        sfc = trained_build(sfc_cfg, small, Path(tmp) / "sfc", (784,))
        rows.append(synthesize(sfc, "pynq-z2", "SFC W1A1", target_cycles=4096))
    ok = exact and all(r["measured"]["fits"] for r in rows)
    result = {"bench": "synth_boards", "designs": rows, "gate_level_images": len(x_int), "gate_level_exact": exact,
              "gate_level_cycles": cycles, "seconds": round(time.perf_counter() - t0, 1), "ok": ok}
    print(json.dumps(result))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
