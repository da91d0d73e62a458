"""The HLS backend (hw/emit_hls.py): its C++ compiled with g++ -Wall -Wextra -Werror and run against the
golden model, bit-exact: every layer case the RTL runs alone (tests/test_rtl_layers.py), fully connected
networks of every weight and activation width at several foldings, CNNs from serial to a whole window per
beat, Brevitas-exported zoo CNNs (residual forks and sums, fire-module concatenations), early exits."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests import test_rtl_layers as layers
from tests.conftest import random_cnn_graph, random_graph, random_inputs, require_tool
from xnorkit import build, golden
from xnorkit.errors import XnorkitError
from xnorkit.hw import emit_hls, folding
from xnorkit.ir import Threshold
from xnorkit.outputs import write_tree
from xnorkit.sim import hls

CASES = {  # sizes, weight bits, activation bits, solver target in cycles
    "digits_shape": ([64, 256, 256, 10], 1, 1, 128),
    "sfc_shape_fast": ([784, 256, 256, 256, 10], 1, 1, 64),
    "fully_folded": ([20, 12, 10], 1, 1, 100000),
    "wide_simd_words": ([200, 130, 10], 1, 1, 1),  # SIMD 200: four 64-bit words, the last one partial
    "w2a2": ([48, 32, 32, 10], 2, 2, 64),
    "w4a4": ([30, 24, 10], 4, 4, 16),
    "w2a8": ([40, 24, 24, 10], 2, 8, 16),  # hidden values up to 255: wider than int8_t
}


@pytest.mark.parametrize("case", list(CASES))
def test_hls_cpp_is_bit_exact(case, tmp_path):
    require_tool("g++")
    sizes, w_bits, a_bits, target = CASES[case]
    graph = random_graph(sizes, seed=4, w_bits=w_bits, a_bits=a_bits)
    fold = folding.solve(graph, target)
    for name, text in emit_hls.emit(graph, fold).items():
        (tmp_path / name).write_text(text)
    x = random_inputs(graph, 50)
    expected = golden.predict_from_int(graph, x)
    assert np.array_equal(hls.run(tmp_path, x, expected.shape[1]), expected)


def test_hls_cli_writes_a_checked_project(trained_build, tmp_path):
    from typer.testing import CliRunner

    from xnorkit.cli import app

    result = CliRunner().invoke(app, ["hw", str(trained_build / "build"), "--backend", "hls"])
    assert result.exit_code == 0, result.output
    out = trained_build / "build" / "hls"
    assert "bit-exact against golden on 64 inputs" in " ".join(result.output.split())
    tcl = (out / "run_hls.tcl").read_text()
    assert "set_part {xc7z020clg400-1}" in tcl and "create_clock -period 10.000" in tcl
    assert "#pragma HLS DATAFLOW" in (out / "xk_model.cpp").read_text()
    graph = build.load(trained_build / "build")
    x = golden.quantize_input(graph, np.load(trained_build / "x.npy"))
    expected = golden.predict_from_int(graph, x)
    assert np.array_equal(hls.run(out, x, expected.shape[1]), expected)


def _check(tmp_path, graph, fold, x_int) -> None:
    require_tool("g++")
    write_tree(tmp_path, emit_hls.emit(graph, fold))
    expected = golden.predict_from_int(graph, x_int).reshape(len(x_int), -1)
    assert np.array_equal(hls.run(tmp_path, x_int, expected.shape[1]), expected)


LAYER_CASES = {**dict.fromkeys(layers.MVTU_CASES, layers.mvtu_net), **dict.fromkeys(layers.CONV_CASES, layers.conv_net),
               **dict.fromkeys(layers.POOL_CASES, layers.pool_net),
               **dict.fromkeys(layers.THRESHOLD_CASES, layers.threshold_net),
               **dict.fromkeys(layers.JOIN_CASES, layers.join_net)}


@pytest.mark.parametrize("case", list(LAYER_CASES))
def test_every_rtl_layer_case_is_bit_exact(tmp_path, case):
    """Each layer alone, at the RTL case's folding: XNOR, integer, k-bit and ternary units, zero tiles skipped,
    padded, strided, grouped and depthwise windows, max and sum pooling, thresholds, sums and concats."""
    graph, fold = LAYER_CASES[case](case)
    _check(tmp_path, graph, fold, layers._inputs(graph, 40))


@pytest.mark.parametrize(("w_bits", "a_bits", "target"), [(1, 1, 5000), (1, 1, 600), (1, 1, 1), (2, 2, 300),
                                                          (3, 1, 2000), (1, 3, 100)])
def test_cnn_with_window_pool_and_flatten(tmp_path, w_bits, a_bits, target):
    graph = random_cnn_graph(w_bits=w_bits, a_bits=a_bits, seed=3)
    _check(tmp_path, graph, folding.solve(graph, target), golden.quantize_input(graph, random_inputs(graph, 40)))


@pytest.mark.parametrize("exits", [1, 2])
def test_early_exits(tmp_path, exits):
    """The exit's test, gate and merges: golden's outputs and the index of the output taken on every input."""
    from tests.test_exits import branchy_graph, two_exit_graph

    graph = branchy_graph() if exits == 1 else two_exit_graph()
    x_int = golden.quantize_input(graph, random_inputs(graph, 150))
    assert len(set(golden.predict_from_int(graph, x_int)[:, -1])) == exits + 1
    _check(tmp_path, graph, folding.solve(graph, 32, exit_rate=0.5), x_int)


@pytest.mark.parametrize(("kind", "w_bits", "a_bits"), [("lenet5", 1, 1), ("cnv", 2, 2), ("resnet", 1, 1),
                                                        ("resnet", 2, 2), ("squeezenet", 1, 1), ("squeezenet", 2, 2)])
def test_zoo_cnn_exported_by_brevitas(tmp_path, kind, w_bits, a_bits):
    import torch

    from tests.conftest import check_exact
    from xnorkit.quant_train import data, zoo

    torch.manual_seed(0)
    x = data.load_digits().x_test[:60].reshape(-1, 1, 8, 8)
    graph, _ = check_exact(zoo.build(kind, w_bits, a_bits, (1, 8, 8), 10, 5), x, tmp_path / "m")
    _check(tmp_path / "hls", graph, folding.solve(graph, 256), golden.quantize_input(graph, x))


def test_out_of_range_thresholds_are_refused_in_one_line():
    graph = random_graph([20, 12, 10], seed=4)
    node = next(n for n in graph.nodes if isinstance(n, Threshold))
    huge = replace(node, thresholds=node.thresholds.astype(np.int64) + 2 ** 33)
    graph = replace(graph, nodes=tuple(huge if n is node else n for n in graph.nodes))
    with pytest.raises(XnorkitError, match="thresholds exceed the HLS backend's 32 bits"):
        emit_hls.emit(graph, folding.solve(graph, 100))


def test_hls4ml_comparison_table(trained_build):
    require_tool("g++")
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "xnorkit", "hw", str(trained_build / "build"), "--backend", "hls4ml",
                           "--input", str(trained_build / "x.npy")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((trained_build / "build" / "hls4ml" / "comparison.json").read_text())
    assert result["inputs"] == 40 and [r["config"] for r in result["rows"]] == ["hls4ml default", "wide fixed<32,16>"]
    for row in result["rows"]:  # both configurations convert and run: the table holds their figures
        assert "error" not in row and 0 <= row["argmax_agree"] <= 40 and row["max_abs_difference"] >= 0
    assert "| hls4ml default |" in (trained_build / "build" / "hls4ml" / "comparison.md").read_text()
