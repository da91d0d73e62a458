"""hw/popcount_x7.py: the LUT6_2/CARRY4 XNOR-popcount netlists count exactly (their Python evaluation from the
INIT values, and the generated RTL on Yosys' primitive models under Verilator), and stay lint-clean."""

import random

import pytest

from tests.conftest import random_graph, random_inputs, require_tool
from tests.test_hw import lint
from xnorkit import golden
from xnorkit.hw import emit_sv, popcount_x7
from xnorkit.hw import folding as fold_mod
from xnorkit.outputs import write_tree
from xnorkit.sim import runner


def _count(n: int, x: int, w: int) -> int:
    return bin(~(x ^ w) & ((1 << n) - 1)).count("1")


@pytest.mark.parametrize("n", [1, 2, 5, 8, 9, 13])
def test_every_input_of_small_widths(n):
    net = popcount_x7.compressor(n)
    for x in range(1 << n):
        for w in ((0, (1 << n) - 1, x, 0x5555 & ((1 << n) - 1)) if n > 8 else range(1 << n)):
            assert popcount_x7.evaluate(net, x, w) == _count(n, x, w)


@pytest.mark.parametrize("n", [16, 32, 48, 64, 100, 128, 256])
def test_random_inputs_of_wide_widths(n):
    net = popcount_x7.compressor(n)
    rng = random.Random(n)
    ones = (1 << n) - 1
    for x, w in [(0, 0), (0, ones), (ones, ones)] + [(rng.getrandbits(n), rng.getrandbits(n)) for _ in range(300)]:
        assert popcount_x7.evaluate(net, x, w) == _count(n, x, w)


@pytest.mark.parametrize("n,luts", [(32, 27), (64, 52), (128, 108)])
def test_lut_count_is_under_one_per_product(n, luts):
    """The primitive count the bench's synthesis starts from (bench/popcount_luts.py measures Yosys' count)."""
    assert len(popcount_x7.compressor(n).luts) == luts


def test_file_is_empty_without_the_define_and_lists_each_width():
    text = popcount_x7.library([4, 32, 48, 32])
    assert text.count("module xk_xnor_popcount_x7_n") == 2 and "N == 32" in text and "N == 48" in text
    body = text.split("`ifdef XNORKIT_XILINX_PRIMITIVES\n", 1)[1]
    assert text.rstrip().endswith("`endif") and "`endif" not in body[:-8]


def test_rtl_with_primitives_is_bit_exact_under_verilator(tmp_path):
    """The design as 7-series synthesis reads it (XNORKIT_XILINX_PRIMITIVES: LUT6_2/CARRY4 on Yosys' models),
    bipolar folds of SIMD 32 and 48 beside an integer-input one, with stalls; lint-clean with the define too."""
    require_tool("verilator")
    graph = random_graph([64, 64, 48, 10], seed=3)
    folding = {"fc0": fold_mod.Fold(2, 16), "fc1": fold_mod.Fold(4, 32), "fc2": fold_mod.Fold(1, 48)}
    write_tree(tmp_path / "rtl", emit_sv.emit(graph, folding))
    assert (tmp_path / "rtl" / emit_sv.named(popcount_x7.FILE, graph.name)).read_text().count("LUT6_2 #") > 40
    x = golden.quantize_input(graph, random_inputs(graph, 200))
    expected = golden.predict_from_int(graph, x)
    for stall in (0.3, 0.0):
        result = runner.simulate_bulk(tmp_path / "rtl", x, expected, stall, stall, seed=1, xilinx_primitives=True)
        assert result.mismatch is None, result.mismatch
    assert result.steady_state_cycles == fold_mod.initiation_interval(graph, folding)  # the unstalled run
    (tmp_path / "cells.v").write_text(popcount_x7.cell_models())
    report = lint(tmp_path / "rtl", "-DXNORKIT_XILINX_PRIMITIVES", "-v", str(tmp_path / "cells.v"))
    assert [ln for ln in report.splitlines() if ln.startswith("%") and "cells.v" not in ln] == [], report
