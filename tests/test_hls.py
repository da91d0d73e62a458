"""The HLS backend (hw/emit_hls.py): its C++ compiled with g++ -Wall -Wextra -Werror and run against the
golden model, bit-exact, for binary, integer-input, ternary and multi-bit networks at several foldings."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import random_cnn_graph, random_graph, random_inputs, require_tool
from xnorkit import build, golden
from xnorkit.errors import XnorkitError
from xnorkit.hw import emit_hls, folding
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


def test_convolutions_are_refused_in_one_line():
    graph = random_cnn_graph()
    with pytest.raises(XnorkitError, match="fully connected networks.*xnorkit hw"):
        emit_hls.emit(graph, folding.solve(graph, 4096))


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
