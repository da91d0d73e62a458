"""Each IR layer type alone in RTL, under cocotb with random backpressure on both sides: a one-layer
network (its input straight from the stream, its output straight to it) generated, simulated and compared
with the golden model's function for that layer, over element kinds, bit widths and PE/SIMD foldings. The
unstalled run must take the cycles design.json predicts for its slowest stage.

Quantize and Dequantize are the host's side of the stream (the RTL takes and gives integers); Reshape and
Transpose are stream layouts (tests/test_sim.py, flatten and transpose cases)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import random_thresholds, require_tool
from xnorkit import golden, numerics
from xnorkit.hw import emit_sv
from xnorkit.hw.folding import Fold, matrix_shape
from xnorkit.ir import (
    BIPOLAR,
    Add,
    Concat,
    Conv,
    Dequantize,
    Graph,
    IntType,
    MatMul,
    MaxPool,
    Quantize,
    SumPool,
    Threshold,
    verify,
)
from xnorkit.outputs import write_tree
from xnorkit.sim import runner

U2, U3, S3, S4, S5 = IntType(2), IntType(3), IntType(3, True), IntType(4, True), IntType(5, True)
TERNARY = IntType(2, True)  # weights -1, 0, +1 only (the masked XNOR datapath)
TYPES = {"t": TERNARY, "bipolar": BIPOLAR, "u2": U2, "u3": U3, "s3": S3, "s4": S4, "s5": S5, "i2": IntType(2, True),
         "i3": S3, "i4": IntType(4, True),
         # whole PE x SIMD tiles pruned: of ternary weights, of binary ones (kept weights +-1), of int4 ones
         "t_tiles": TERNARY, "b_tiles": TERNARY, "i4_tiles": IntType(4, True),
         # every tile pruned: the unit stores none (an untrained narrow 2-bit export rounds all weights to 0)
         "zero_tiles": TERNARY}


class _Net:
    """A one-layer (or one-join) IR network under construction: input 'q' of `in_dtype` and `shape`."""

    def __init__(self, in_dtype: IntType, shape: tuple[int, ...], seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list = [Quantize("quant", "x", "q", 1.0, 0, in_dtype)]
        self.types, self.shapes = {"q": in_dtype}, {"q": shape}
        self.input_shape = shape

    def add(self, node, dtype: IntType, shape: tuple[int, ...]) -> str:
        self.nodes.append(node)
        self.types[node.output], self.shapes[node.output] = dtype, shape
        return node.output

    def weights(self, w_dtype: IntType, shape: tuple[int, ...], kind: str = "") -> np.ndarray:
        if w_dtype.bipolar or kind == "b_tiles":
            return self.rng.choice(np.array([-1, 1], dtype=np.int8), size=shape)
        if w_dtype is TERNARY:  # a pruned binary layer: -1, +1 and 70% zeros
            return (self.rng.choice(np.array([-1, 1], dtype=np.int8), size=shape)
                    * (self.rng.random(shape) < 0.3)).astype(np.int8)
        return self.rng.integers(w_dtype.min, w_dtype.max + 1, size=shape).astype(np.int8)  # zeros included

    def threshold(self, acc: str, rows: np.ndarray, in_dtype: IntType, levels: int, base: int) -> str:
        """Thresholds drawn inside each channel's range (plus one channel always and one never firing)."""
        ranges = np.array([numerics.accumulator_range(r, in_dtype) for r in rows])
        t = random_thresholds(self.rng, rows, in_dtype, levels)
        t[0], t[-1] = ranges[0, 0], ranges[-1, 1] + 1
        if base < 0:
            out_dtype = numerics.signed_type_for(base, base + levels)
        else:
            out_dtype = BIPOLAR if levels == 1 else IntType(int(levels).bit_length())
        return self.add(Threshold(f"act_{acc}", acc, f"{acc}_act", t, base, out_dtype), out_dtype, self.shapes[acc])

    def graph(self, output: str) -> Graph:
        channels = self.shapes[output][0]
        self.add(Dequantize("deq", output, "y", np.ones(channels), np.zeros(channels)), self.types[output],
                 self.shapes[output])
        graph = Graph("x", self.input_shape, tuple(self.nodes), (output,), ("y",), self.types, self.shapes)
        verify(graph)
        return graph


# the default suite runs these; the other cases are marked slow (make test-all)
DEFAULT = {"xnor_sign_folded", "xnor_sign_parallel", "int4_ternary_2bit", "bipolar_pruned_binary_sign",
           "bipolar_tile_pruned_skipping", "xnor_conv_tile_pruned_skipping", "all_tile_pruned_skipping",
           "bipolar_int4_signed_out",
           "xnor_padded_int2_window", "xnor_unpadded_whole_window",
           "depthwise_serial", "grouped_2_three_per_group", "max_int4_padding_never_wins", "sum_int3_3x3",
           "int4_map_signed_3bit", "add_int4_pooled_branch", "concat_bipolar_fork"}


def _cases(cases: dict) -> list:
    return [c if c in DEFAULT else pytest.param(c, marks=pytest.mark.slow) for c in cases]


def _inputs(graph: Graph, count: int, seed: int = 2) -> np.ndarray:
    """Integer inputs as the stream carries them (bipolar as bits, 1 = +1)."""
    dtype = graph.nodes[0].dtype
    lo, hi = (0, 1) if dtype.bipolar else (dtype.min, dtype.max)
    return np.random.default_rng(seed).integers(lo, hi + 1, size=(count, *graph.input_shape))


def _check(tmp_path, graph: Graph, folding: dict[str, Fold], count: int = 6, skips: bool = False) -> None:
    """One case on its own Verilator build (the slow cases of `make test-all`)."""
    require_tool("verilator")
    write_tree(tmp_path / "rtl", emit_sv.emit(graph, folding))
    x_int = _inputs(graph, count)
    expected = golden.predict_from_int(graph, x_int).reshape(count, -1)
    stalled = runner.simulate(tmp_path / "rtl", x_int, expected, "verilator", 0.3, 0.3, seed=11)
    clean = runner.simulate(tmp_path / "rtl", x_int, expected, "verilator", rebuild=False)
    _assert_case(graph, folding, expected, stalled, clean, skips)


def _assert_case(graph: Graph, folding: dict[str, Fold], expected: np.ndarray, stalled, clean, skips: bool) -> None:
    """Bit-exact with stalls and back to back; back to back at the cycles design.json predicts; a pruned-tile
    unit at exactly its schedule's cycles, fewer than its folds."""
    assert stalled.mismatch is None, stalled.mismatch
    assert np.array_equal(stalled.outputs, expected)
    assert clean.mismatch is None
    design = emit_sv.design_info(graph, folding)
    assert clean.steady_state_cycles == design["initiation_interval"]
    layers = {layer["name"]: layer for layer in design["layers"]}
    units = [node for node in graph.nodes if isinstance(node, MatMul | Conv)]
    for node in units:
        mw, mh, positions = matrix_shape(graph, node)
        fold = folding[node.name]
        dense = positions * (mw // fold.simd) * (mh // fold.pe)
        assert (layers[node.name]["cycles"] < dense) == skips, (layers[node.name]["cycles"], dense)


@pytest.fixture(scope="module")
def default_cases(tmp_path_factory):
    """Every default case, each a design named after it, side by side in one top: one Verilator build for all
    (sim.runner.simulate_system), run with stalls and then back to back; each case's results by name."""
    require_tool("verilator")
    root = tmp_path_factory.mktemp("layers")
    builders = {**dict.fromkeys(MVTU_CASES, mvtu_net), **dict.fromkeys(CONV_CASES, conv_net),
                **dict.fromkeys(POOL_CASES, pool_net), **dict.fromkeys(THRESHOLD_CASES, threshold_net),
                **dict.fromkeys(JOIN_CASES, join_net)}
    cases, designs, inputs, expected = {}, {}, {}, {}
    for case in sorted(DEFAULT):
        graph, folding = builders[case](case)
        count = 3 if case in CONV_CASES else 6
        write_tree(root / case, emit_sv.emit(graph, folding, name=case))
        designs[f"{case}_"] = json.loads((root / case / "design.json").read_text())
        inputs[f"{case}_"] = _inputs(graph, count)
        expected[f"{case}_"] = golden.predict_from_int(graph, inputs[f"{case}_"]).reshape(count, -1)
        cases[case] = (graph, folding)
    (root / "layers.sv").write_text(runner.side_by_side("layers", designs))
    folders = {prefix: root / prefix[:-1] for prefix in designs}
    stalled = runner.simulate_system(root / "layers.sv", "layers", folders, inputs, expected, stall=0.3, seed=11)
    clean = runner.simulate_system(root / "layers.sv", "layers", folders, inputs, expected, stall=0.0,
                                   rebuild=False)
    return {case: (*cases[case], expected[f"{case}_"], stalled[f"{case}_"], clean[f"{case}_"]) for case in cases}


def _run(request, tmp_path, case: str, graph: Graph, folding: dict[str, Fold], count: int = 6,
         skips: bool = False) -> None:
    """A default case from the shared build, another on its own."""
    if case in DEFAULT:
        graph, folding, expected, stalled, clean = request.getfixturevalue("default_cases")[case]
        _assert_case(graph, folding, expected, stalled, clean, skips)
    else:
        _check(tmp_path, graph, folding, count, skips)


# ---- MatMul (+ Threshold): the MVTU ------------------------------------------------------------------------
# (input kind, weight kind, threshold levels (0: the raw accumulator), output base, PE, SIMD); MW 24, MH 12
MVTU_CASES = {
    "xnor_sign_serial": ("bipolar", "bipolar", 1, 0, 1, 1),
    "xnor_sign_folded": ("bipolar", "bipolar", 1, 0, 3, 8),
    "xnor_sign_parallel": ("bipolar", "bipolar", 1, 0, 12, 24),
    "xnor_accumulator": ("bipolar", "bipolar", 0, 0, 4, 6),
    "uint3_sign_weights_accumulator": ("u3", "bipolar", 0, 0, 2, 4),
    "int4_ternary_2bit": ("s4", "i2", 3, 0, 4, 6),
    "bipolar_int4_signed_out": ("bipolar", "i4", 3, -2, 6, 3),
    "uint2_int3_4bit_out": ("u2", "i3", 15, 0, 2, 12),
    "int5_int4_accumulator": ("s5", "i4", 0, 0, 3, 2),
    "bipolar_pruned_binary_sign": ("bipolar", "t", 1, 0, 3, 8),
    "bipolar_pruned_binary_parallel": ("bipolar", "t", 0, 0, 12, 24),
    # whole PE x SIMD tiles pruned: the unit skips them (and a fold with none left computes one zero tile)
    "bipolar_tile_pruned_skipping": ("bipolar", "b_tiles", 1, 0, 3, 4),
    "bipolar_ternary_tile_pruned_skipping": ("bipolar", "t_tiles", 0, 0, 2, 8),
    "int3_int4_tile_pruned_skipping": ("s3", "i4_tiles", 0, 0, 2, 6),
    "uint3_binary_tile_pruned_skipping": ("u3", "b_tiles", 3, 0, 2, 6),
    "all_tile_pruned_skipping": ("bipolar", "zero_tiles", 1, 0, 3, 4),
}


def prune_tiles(rng: np.random.Generator, w: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """`w` (rows, columns) with 70% of its PE x SIMD tiles zeroed, all of the third neuron fold's among them."""
    folds, per_fold = w.shape[0] // pe, w.shape[1] // simd
    keep = rng.random((folds, per_fold)) < 0.3
    keep[2] = False
    return w * np.repeat(np.repeat(keep, pe, axis=0), simd, axis=1).astype(w.dtype)


def mvtu_net(case: str) -> tuple[Graph, dict[str, Fold]]:
    in_kind, w_kind, levels, base, pe, simd = MVTU_CASES[case]
    in_dtype, w_dtype = TYPES[in_kind], TYPES[w_kind]
    net = _Net(in_dtype, (24,), seed=len(case))
    w = net.weights(w_dtype, (12, 24), w_kind)
    if w_kind.endswith("_tiles"):
        w = prune_tiles(net.rng, w, pe, simd) * (w_kind != "zero_tiles")
    acc = net.add(MatMul("fc", "q", "acc", w, in_dtype, w_dtype, numerics.accumulator_type(w, in_dtype)),
                  numerics.accumulator_type(w, in_dtype), (12,))
    out = net.threshold(acc, w, in_dtype, levels, base) if levels else acc
    return net.graph(out), {"fc": Fold(pe, simd)}


@pytest.mark.parametrize("case", _cases(MVTU_CASES))
def test_mvtu_alone(request, tmp_path, case):
    _run(request, tmp_path, case, *mvtu_net(case), skips="tile_pruned" in case)


# ---- Conv (+ Threshold): sliding window + MVTU ----------------------------------------------------------
# (input kind, weight kind, C, out channels, kernel, stride, pad, groups, levels, PE, SIMD) on 6 x 6 maps
CONV_CASES = {
    "xnor_padded_int2_window": ("bipolar", "bipolar", 4, 4, 3, 1, 1, 1, 1, 2, 4),
    "xnor_unpadded_whole_window": ("bipolar", "bipolar", 2, 4, 3, 1, 0, 1, 1, 4, 18),
    "uint3_stride2_multi_threshold": ("u3", "i2", 4, 6, 3, 2, 1, 1, 3, 3, 2),
    "int3_2x2_stride2_accumulator": ("s3", "i3", 4, 4, 2, 2, 0, 1, 0, 4, 16),
    "grouped_2_xnor": ("bipolar", "bipolar", 4, 4, 3, 1, 1, 2, 1, 1, 2),
    "grouped_2_three_per_group": ("u2", "bipolar", 4, 6, 3, 1, 1, 2, 1, 3, 1),
    "depthwise_serial": ("u2", "i2", 4, 4, 3, 2, 1, 4, 3, 1, 1),
    "depthwise_whole_window": ("u2", "i2", 4, 4, 3, 1, 1, 4, 3, 1, 9),
    "depthwise_multiplier_2": ("s3", "i3", 4, 8, 3, 1, 1, 4, 0, 2, 9),
    "xnor_conv_tile_pruned_skipping": ("bipolar", "b_tiles", 4, 8, 3, 1, 1, 1, 1, 2, 4),
    "uint2_9x9_window": ("u2", "i2", 2, 2, 9, 1, 4, 1, 0, 1, 2),  # over the C kernel's 64 taps found at once
}


def conv_net(case: str) -> tuple[Graph, dict[str, Fold]]:
    in_kind, w_kind, c, out_c, k, stride, pad, groups, levels, pe, simd = CONV_CASES[case]
    in_dtype, w_dtype = TYPES[in_kind], TYPES[w_kind]
    net = _Net(in_dtype, (c, 6, 6), seed=len(case))
    w = net.weights(w_dtype, (out_c, c // groups, k, k), w_kind)
    if w_kind.endswith("_tiles"):  # tiles of the window order (ky, kx, c), the unit's
        window = prune_tiles(net.rng, w.transpose(0, 2, 3, 1).reshape(out_c, -1), pe, simd)
        w = np.ascontiguousarray(window.reshape(out_c, k, k, c // groups).transpose(0, 3, 1, 2))
    rows = w.reshape(out_c, -1)
    acc_type = numerics.accumulator_type(rows, in_dtype)
    side = (6 + 2 * pad - k) // stride + 1
    acc = net.add(Conv("conv", "q", "acc", w, in_dtype, w_dtype, acc_type, (stride, stride), (pad,) * 4, groups),
                  acc_type, (out_c, side, side))
    out = net.threshold(acc, rows, in_dtype, levels, 0) if levels else acc
    return net.graph(out), {"conv": Fold(pe, simd)}


@pytest.mark.parametrize("case", _cases(CONV_CASES))
def test_convolution_alone(request, tmp_path, case):
    _run(request, tmp_path, case, *conv_net(case), count=3, skips="tile_pruned" in case)


# ---- MaxPool / SumPool: sliding window + reduction ---------------------------------------------------------
# (pool, input kind, kernel, stride, pad) on 3 x 6 x 6 maps
POOL_CASES = {
    "max_bipolar_or": ("max", "bipolar", 2, 2, 0),
    "max_uint3_padded": ("max", "u3", 3, 2, 1),
    "max_int4_padding_never_wins": ("max", "s4", 3, 1, 1),
    "sum_uint2": ("sum", "u2", 2, 2, 0),
    "sum_int3_3x3": ("sum", "s3", 3, 3, 0),
    "sum_bipolar": ("sum", "bipolar", 2, 2, 0),
}


def pool_net(case: str) -> tuple[Graph, dict[str, Fold]]:
    kind, in_kind, k, stride, pad = POOL_CASES[case]
    in_dtype = TYPES[in_kind]
    net = _Net(in_dtype, (3, 6, 6), seed=len(case))
    side = (6 + 2 * pad - k) // stride + 1
    if kind == "max":
        out = net.add(MaxPool("pool", "q", "pooled", (k, k), (stride, stride), (pad,) * 4), in_dtype, (3, side, side))
    else:
        out = net.add(SumPool("pool", "q", "pooled", (k, k), (stride, stride), in_dtype),
                      numerics.signed_type_for(k * k * in_dtype.min, k * k * in_dtype.max), (3, side, side))
    return net.graph(out), {}


@pytest.mark.parametrize("case", _cases(POOL_CASES))
def test_pool_alone(request, tmp_path, case):
    _run(request, tmp_path, case, *pool_net(case))


# ---- Threshold alone (after a join in real networks) -------------------------------------------------------
# (input kind, shape, levels, base)
THRESHOLD_CASES = {
    "int5_map_2bit": ("s5", (3, 4, 4), 3, 0),
    "uint3_vector_sign": ("u3", (8,), 1, 0),
    "int4_map_signed_3bit": ("s4", (2, 3, 3), 7, -4),
}


def threshold_net(case: str) -> tuple[Graph, dict[str, Fold]]:
    in_kind, shape, levels, base = THRESHOLD_CASES[case]
    in_dtype = TYPES[in_kind]
    net = _Net(in_dtype, shape, seed=len(case))
    rows = np.ones((shape[0], 1), dtype=np.int8)  # a channel's range is the input type's
    out = net.threshold("q", rows, in_dtype, levels, base)
    return net.graph(out), {}


@pytest.mark.parametrize("case", _cases(THRESHOLD_CASES))
def test_threshold_alone(request, tmp_path, case):
    _run(request, tmp_path, case, *threshold_net(case))


# ---- Add / Concat: joins of two streams ------------------------------------------------------------------
# (join, input kind, second operand: the input itself (a fork) or its 3x3 max-pool (a window in one branch))
JOIN_CASES = {
    "add_bipolar_fork": ("add", "bipolar", "same"),
    "add_uint3_pooled_branch": ("add", "u3", "pooled"),
    "add_int4_pooled_branch": ("add", "s4", "pooled"),
    "concat_uint2_pooled_branch": ("concat", "u2", "pooled"),
    "concat_bipolar_fork": ("concat", "bipolar", "same"),
}


def join_net(case: str) -> tuple[Graph, dict[str, Fold]]:
    kind, in_kind, second = JOIN_CASES[case]
    in_dtype = TYPES[in_kind]
    shape = (3, 5, 5)
    net = _Net(in_dtype, shape, seed=len(case))
    b = "q" if second == "same" else net.add(MaxPool("pool", "q", "pooled", (3, 3), (1, 1), (1,) * 4), in_dtype,
                                             shape)
    if kind == "add":
        lo, hi = 2 * in_dtype.min, 2 * in_dtype.max
        out = net.add(Add("join", ("q", b), "joined", (in_dtype, in_dtype)), numerics.signed_type_for(lo, hi),
                      shape)
    else:
        out = net.add(Concat("join", ("q", b), "joined"), in_dtype, (2 * shape[0], *shape[1:]))
    return net.graph(out), {}


@pytest.mark.parametrize("case", _cases(JOIN_CASES))
def test_join_alone(request, tmp_path, case):
    _run(request, tmp_path, case, *join_net(case))


def test_every_layer_case_is_lint_clean(tmp_path):
    """`verilator --lint-only -Wall` on the design of every case above, the slow ones included."""
    from tests.test_hw import lint

    for build, cases in ((mvtu_net, MVTU_CASES), (conv_net, CONV_CASES), (pool_net, POOL_CASES),
                         (threshold_net, THRESHOLD_CASES), (join_net, JOIN_CASES)):
        for case in cases:
            write_tree(tmp_path / case, emit_sv.emit(*build(case)))
            assert lint(tmp_path / case) == "", case
