"""The HLS backend: C++ for Vitis HLS from the same lowered stages and folding as the RTL (hw.lowering's
`lower`), built on the templates of hw/hls/xk_hls.h. Fully connected networks (MatMul + Threshold chains:
the MLPs of the zoo); a convolution, pooling or join is refused with one line (the RTL backend has them).

Output in BUILD/hls/: xk_model.cpp (the top function `xnorkit_hls`, DATAFLOW over one call per layer),
xk_weights.h (weights per fold, thresholds), xk_hls.h, xk_hls_tb.cpp (reads inputs, writes outputs: the
g++ bit-exactness check and Vitis HLS C simulation use the same file) and run_hls.tcl (Vitis HLS: C
simulation, synthesis at the board's part and clock, IP export)."""

from __future__ import annotations

import jinja2
import numpy as np

from xnorkit import packing, tools
from xnorkit.errors import XnorkitError
from xnorkit.hw.folding import Folding
from xnorkit.hw.lowering import lower
from xnorkit.hw.stages import InKind, Lowered, Stage
from xnorkit.ir import Graph

TOP = "xnorkit_hls"


def _c_type(bits: int) -> str:
    """The narrowest signed C type of at least `bits` bits."""
    for width in (8, 16, 32):
        if bits <= width:
            return f"int{width}_t"
    raise XnorkitError(f"an element of {bits} bits does not fit the HLS backend's 32-bit types")


def _weight_folds(stage: Stage, matrix: np.ndarray, xnor: bool) -> list[str]:
    """One C initializer per fold: per lane 64 weight bits a word (XNOR units), else the weights' values
    (bipolar as 1 / 0, k-bit signed)."""
    p = stage.params
    fields = packing.bipolar_to_bits(matrix) if p["ir_w_bits"] == 1 else np.asarray(matrix, dtype=np.int64)
    folds = []
    for tile in packing.mvtu_weight_tiles(fields, p["pe"], p["simd"]):
        if xnor:
            rows = [[f"0x{packing.pack_fields(row[w * 64:(w + 1) * 64], 1):016x}ULL"
                     for w in range(_words_per_lane(p["simd"]))] for row in tile]
        else:
            rows = [[str(int(v)) for v in row] for row in tile]
        folds.append("{" + ", ".join("{" + ", ".join(r) + "}" for r in rows) + "}")
    return folds


def _words_per_lane(simd: int) -> int:
    return -(-simd // 64)


def _threshold_rows(name: str, thresholds: np.ndarray | None) -> list[str]:
    """One C initializer per neuron (none for the output layer, whose accumulators are the outputs)."""
    if thresholds is None:
        return []
    t = np.asarray(thresholds, dtype=np.int64).reshape(len(thresholds), -1)
    if t.min() < -(2 ** 31) or t.max() >= 2 ** 31:
        raise XnorkitError(f"{name}: thresholds exceed 32 bits")
    return ["{" + ", ".join(str(int(v)) for v in row) + "}" for row in t]


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


def _layer(low: Lowered, i: int, src: str, src_type: str) -> dict:
    """What the templates need of MVTU stage i, reading `src` of `src_type`."""
    s = low.stages[i]
    p = s.params
    last = i == len(low.stages) - 1
    if not last and p["n_thresh"] == 0:
        raise XnorkitError(f"'{s.name}': a hidden layer without an activation is not in the HLS backend")
    bipolar_in = s.in_kind is InKind.BIPOLAR
    xnor = bipolar_in and p["ir_w_bits"] == 1
    name = f"l{i}"
    return {"name": name, "source": s.name, "last": last, "mw": p["mw"], "mh": p["mh"], "pe": p["pe"],
            "simd": p["simd"], "n_thresh": p["n_thresh"], "base": p["out_base"], "cycles": _cycles(s),
            "xnor": xnor, "bipolar_in": bipolar_in, "bipolar_weights": p["ir_w_bits"] == 1,
            "words_per_lane": _words_per_lane(p["simd"]), "src": src, "src_type": src_type,
            "out": "out" if last else f"{name}_out",
            # a hidden activation's values (unsigned up to 8 bits, signed levels) in the narrowest signed type
            "out_type": "int32_t" if last else _c_type(s.out_bits + 1),
            "folds": _weight_folds(s, low.matrices[s.index], xnor),
            "thresholds": _threshold_rows(name, low.thresholds[s.index])}


def emit(graph: Graph, folding: Folding, part: str = "xc7z020clg400-1", clock_mhz: float = 100.0) -> dict[str, str]:
    """The HLS project (hw/hls/*.j2): the network as one dataflow function, its weights, the testbench and
    the Vitis HLS script."""
    low = lower(graph, folding)
    _check(low)
    in_type = _c_type(low.stages[0].in_bits + 1)  # unsigned pixels as signed values
    layers, src, src_type = [], "in", in_type
    for i in range(len(low.stages)):
        layers.append(_layer(low, i, src, src_type))
        src, src_type = layers[-1]["out"], layers[-1]["out_type"]
    context = {"top": TOP, "layers": layers, "in_type": in_type, "n_in": layers[0]["mw"], "n_out": layers[-1]["mh"],
               "interval": max(layer["cycles"] for layer in layers), "part": part, "clock_mhz": clock_mhz}
    files = {name: _render(f"{name}.j2", context)
             for name in ("xk_model.cpp", "xk_weights.h", "xk_hls_tb.cpp", "run_hls.tcl")}
    return files | {"xk_hls.h": tools.package_text("xnorkit.hw", "hls", "xk_hls.h")}


def _render(template: str, context: dict) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    return env.from_string(tools.package_text("xnorkit.hw", "hls", template)).render(context)
