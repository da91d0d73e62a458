"""The HLS backend: C++ for Vitis HLS from the same lowered stages and folding as the RTL (hw/emit_sv.py's
`lower`), built on the templates of hw/hls/xk_hls.h. Fully connected networks (MatMul + Threshold chains:
the MLPs of the zoo); a convolution, pooling or join is refused with one line (the RTL backend has them).

Output in BUILD/hls/: xk_model.cpp (the top function `xnorkit_hls`, DATAFLOW over one call per layer),
xk_weights.h (weights per fold, thresholds), xk_hls.h, xk_hls_tb.cpp (reads inputs, writes outputs: the
g++ bit-exactness check and Vitis HLS C simulation use the same file) and run_hls.tcl (Vitis HLS: C
simulation, synthesis at the board's part and clock, IP export)."""

from __future__ import annotations

import numpy as np

from hw.emit_sv import Lowered, Stage, lower
from hw.folding import Folding
from hw.stages import InKind
from xnorkit import packing, tools
from xnorkit.errors import XnorkitError
from xnorkit.ir import Graph

TOP = "xnorkit_hls"


def _c_type(bits: int) -> str:
    """The narrowest signed C type of at least `bits` bits."""
    for width in (8, 16, 32):
        if bits <= width:
            return f"int{width}_t"
    raise XnorkitError(f"an element of {bits} bits does not fit the HLS backend's 32-bit types")


def _weights(name: str, stage: Stage, matrix: np.ndarray) -> str:
    p = stage.params
    pe, simd = p["pe"], p["simd"]
    words_per_lane = -(-simd // 64)
    xnor = p["ir_w_bits"] == 1 and p["in_kind"] == InKind.BIPOLAR
    # bipolar weights as bits (1 = +1); k-bit weights as their signed values
    fields = packing.bipolar_to_bits(matrix) if p["ir_w_bits"] == 1 else np.asarray(matrix, dtype=np.int64)
    folds = []
    for tile in packing.mvtu_weight_tiles(fields, pe, simd):
        if xnor:  # packed bits, 64 a word, bit s = weight s
            rows = [[f"0x{packing.pack_fields(row[w * 64:(w + 1) * 64], 1):016x}ULL" for w in range(words_per_lane)]
                    for row in tile]
        else:  # values: bipolar weights as 1 / 0 (add / subtract), k-bit weights signed
            rows = [[str(int(v)) for v in row] for row in tile]
        folds.append("{" + ", ".join("{" + ", ".join(r) + "}" for r in rows) + "}")
    count = len(folds)
    decl = (f"static const uint64_t {name}_weights[{count}][{pe}][{words_per_lane}]" if xnor
            else f"static const int8_t {name}_weights[{count}][{pe}][{simd}]")
    return decl + " = {\n    " + ",\n    ".join(folds) + "};\n"


def _thresholds(name: str, thresholds: np.ndarray | None) -> str:
    if thresholds is None:
        return f"static const int32_t {name}_thresholds[1][1] = {{{{0}}}};  // the output layer: accumulators\n"
    t = np.asarray(thresholds, dtype=np.int64).reshape(len(thresholds), -1)
    if t.min() < -(2 ** 31) or t.max() >= 2 ** 31:
        raise XnorkitError(f"{name}: thresholds exceed 32 bits")
    rows = ", ".join("{" + ", ".join(str(int(v)) for v in r) + "}" for r in t)
    return f"static const int32_t {name}_thresholds[{t.shape[0]}][{t.shape[1]}] = {{{rows}}};\n"


def _cycles(stage: Stage) -> int:
    """The HLS layer's cycles: every fold, as its pipelined loop does not skip zero tiles."""
    p = stage.params
    return p["positions"] * (p["mw"] // p["simd"]) * (p["mh"] // p["pe"])


def _check(low: Lowered) -> None:
    for s in low.stages:
        if s.kind != "mvtu" or s.params["groups"] != 1 or s.params["positions"] != 1:
            raise XnorkitError(f"the HLS backend builds fully connected networks without early exits; '{s.name}' is "
                               f"a {s.kind} stage (use the RTL backend: xnorkit hw)")
        if s.params["acc_bits"] > 32:
            raise XnorkitError(f"'{s.name}': a {s.params['acc_bits']}-bit accumulator exceeds the HLS backend's 32")


def emit(graph: Graph, folding: Folding, part: str = "xc7z020clg400-1", clock_mhz: float = 100.0) -> dict[str, str]:
    low = lower(graph, folding)
    _check(low)
    weights, calls, buffers, partitions = [], [], [], []
    in_bits = low.stages[0].in_bits
    in_type = _c_type(in_bits + 1)  # unsigned pixels as signed values
    prev, prev_type = "in", in_type
    for i, s in enumerate(low.stages):
        p = s.params
        name = f"l{i}"
        weights.append(f"// {s.name}: {p['mh']} x {p['mw']}, PE {p['pe']}, SIMD {p['simd']}, {_cycles(s)} cycles\n"
                       + _weights(name, s, low.matrices[s.index]) + _thresholds(name, low.thresholds[s.index]))
        last = i == len(low.stages) - 1
        out = "out" if last else f"{name}_out"
        # a hidden activation's values (unsigned up to 8 bits, signed levels) in the narrowest signed type
        out_type = "int32_t" if last else _c_type(s.out_bits + 1)
        if not last:
            if p["n_thresh"] == 0:
                raise XnorkitError(f"'{s.name}': a hidden layer without an activation is not in the HLS backend")
            buffers.append(f"    {out_type} {out}[{p['mh']}];")
        n_thresh, base = p["n_thresh"], p["out_base"]
        if p["in_kind"] == InKind.BIPOLAR and p["ir_w_bits"] == 1:
            calls.append(f"    xk::mvtu_xnor<{p['mw']}, {p['mh']}, {p['pe']}, {p['simd']}, {n_thresh}, {base}, "
                         f"{out_type}>({prev}, {out}, {name}_weights, {name}_thresholds);")
        else:
            src_type = prev_type
            calls.append(f"    xk::mvtu_int<{p['mw']}, {p['mh']}, {p['pe']}, {p['simd']}, "
                         f"{'true' if p['in_kind'] == InKind.BIPOLAR else 'false'}, "
                         f"{'true' if p['ir_w_bits'] == 1 else 'false'}, {n_thresh}, {base}, {src_type}, {out_type}>"
                         f"({prev}, {out}, {name}_weights, {name}_thresholds);")
        # the folding's parallelism: every lane's (and every SIMD input's) weights readable in one cycle
        partitions.append(f"#pragma HLS ARRAY_PARTITION variable = {name}_weights complete dim = 2\n"
                          f"#pragma HLS ARRAY_PARTITION variable = {name}_weights complete dim = 3")
        prev, prev_type = out, out_type
    n_in, n_out = low.stages[0].params["mw"], low.stages[-1].params["mh"]
    interval = max(_cycles(s) for s in low.stages)
    model = f"""// Generated by xnorkit: {len(low.stages)} layers, {interval} cycles per inference (the slowest layer's
// folds), input {n_in} x {in_type}, output {n_out} accumulators (int32_t). The numerics are the golden
// model's (docs/numerics.md); the folding is the RTL's (design.json).
#include "xk_hls.h"
#include "xk_weights.h"

void {TOP}(const {in_type} in[{n_in}], int32_t out[{n_out}]) {{
#pragma HLS INTERFACE axis port = in
#pragma HLS INTERFACE axis port = out
#pragma HLS INTERFACE ap_ctrl_none port = return
#pragma HLS DATAFLOW
{chr(10).join(partitions)}
{chr(10).join(buffers)}
{chr(10).join(calls)}
}}
"""
    header = ("// Generated by xnorkit: weights per fold (word nf * SF + sf, lane p) and thresholds per neuron.\n"
              "#ifndef XK_WEIGHTS_H\n#define XK_WEIGHTS_H\n#include <stdint.h>\n\n"
              + "\n".join(weights) + "\n#endif  // XK_WEIGHTS_H\n")
    tb = f"""// Testbench: reads N inputs of {n_in} x int32 from argv[1], writes N outputs of {n_out} x int32 to
// argv[2]. g++ runs it for the bit-exactness check against the golden model; Vitis HLS runs it as C simulation.
#include <stdint.h>
#include <stdio.h>

void {TOP}(const {in_type} in[{n_in}], int32_t out[{n_out}]);

int main(int argc, char** argv) {{
    if (argc != 3) {{
        fprintf(stderr, "usage: %s INPUTS.bin OUTPUTS.bin\\n", argv[0]);
        return 2;
    }}
    FILE* fin = fopen(argv[1], "rb");
    FILE* fout = fopen(argv[2], "wb");
    if (!fin || !fout) {{
        fprintf(stderr, "cannot open %s or %s\\n", argv[1], argv[2]);
        return 2;
    }}
    int32_t raw[{n_in}];
    {in_type} in[{n_in}];
    int32_t out[{n_out}];
    while (fread(raw, sizeof raw, 1, fin) == 1) {{
        for (int i = 0; i < {n_in}; ++i) in[i] = ({in_type})raw[i];
        {TOP}(in, out);
        fwrite(out, sizeof out, 1, fout);
    }}
    fclose(fin);
    fclose(fout);
    return 0;
}}
"""
    tcl = f"""# Vitis HLS: C simulation against the golden model's outputs, synthesis, IP export.
#   vitis_hls -f run_hls.tcl      (inputs.bin / expected.bin: written by `xnorkit hw BUILD --backend hls`)
open_project -reset xnorkit_hls
set_top {TOP}
add_files xk_model.cpp -cflags "-std=c++14"
add_files -tb xk_hls_tb.cpp
add_files -tb inputs.bin
open_solution -reset solution1 -flow_target vivado
set_part {{{part}}}
create_clock -period {1000.0 / clock_mhz:.3f} -name default
csim_design -argv "inputs.bin outputs.bin"
csynth_design
export_design -format ip_catalog -rtl verilog
exit
"""
    return {"xk_model.cpp": model, "xk_weights.h": header, "xk_hls_tb.cpp": tb, "run_hls.tcl": tcl,
            "xk_hls.h": tools.package_text("hw", "hls", "xk_hls.h")}
