"""hw/stages.py: the input kinds the SV library tests for, an MVTU's memory sizes and the stages' own resource
figures, each rule once."""

import re
from pathlib import Path

from tests.conftest import random_cnn_graph
from xnorkit import packing
from xnorkit.hw import folding, lowering
from xnorkit.hw.stages import MVTU_CONTROL_LUTS, STAGE_KINDS, InKind, MvtuMemory, Stage, connect

RTL = Path(__file__).resolve().parents[1] / "hw" / "rtl"


def test_input_kinds_are_the_sv_librarys():
    text = (RTL / "xk_mvtu.sv").read_text()
    assert re.search(r"IN_KIND 0 bipolar .*, 1 unsigned, 2 signed", text)  # the library's documented encoding
    assert "localparam bit XNOR = IN_KIND == 0 && W_BITS == 1" in text
    assert [InKind.of(k) for k in ("bipolar", "unsigned", "signed")] == [0, 1, 2]


def test_dense_weight_memory_is_one_word_per_fold():
    m = MvtuMemory(pe=4, simd=16, w_bits=1, mw=256, mh=64)
    assert (m.folds, m.width, m.depth) == (16 * 16, 64, 256)
    assert m.weight_bits() == m.total_bits() == 256 * 64 == 256 * 64 * 1
    assert m.step_rom() == (0, 0)


def test_a_unit_skipping_zero_tiles_stores_its_tiles_and_a_step_word_per_cycle():
    m = MvtuMemory(pe=4, simd=16, w_bits=2, mw=256, mh=64, stored_tiles=40, steps=52)
    assert m.weight_bits() == 40 * 4 * 16 * 2
    assert m.step_rom() == (packing.step_bits(16), 52)
    assert m.total_bits() == 40 * 128 + 52 * packing.step_bits(16)
    empty = MvtuMemory(pe=4, simd=16, w_bits=2, mw=256, mh=64, stored_tiles=0, steps=16)
    assert empty.depth == 1 and empty.weight_bits() == 0  # a ROM of one word still exists


def test_the_memory_of_generated_stage_params():
    p = {"pe": 2, "simd": 8, "w_bits": 1, "mw": 64, "mh": 32, "n_tiles": 0, "n_words": 0}
    assert MvtuMemory.of_params(p) == MvtuMemory(2, 8, 1, 64, 32)
    p |= {"n_tiles": 20, "n_words": 12}
    assert MvtuMemory.of_params(p) == MvtuMemory(2, 8, 1, 64, 32, 12, 20)


def _mvtu(in_kind: InKind, w_bits: int, in_bits: int, n_thresh: int = 1, pe: int = 4, simd: int = 32) -> Stage:
    params = dict(mw=256, mh=64, pe=pe, simd=simd, in_kind=int(in_kind), w_bits=w_bits, ir_w_bits=w_bits, acc_bits=9,
                  n_thresh=n_thresh, n_tiles=0, n_words=0)
    return Stage(0, "mvtu", "fc", simd, in_bits, pe, 1, False, (256 // simd) * (64 // pe), 64 // pe, params)


def test_mac_lanes_by_input_and_weight_kind():
    assert _mvtu(InKind.BIPOLAR, 1, 1).mac_luts() == 4 * 32 * 1  # XNOR-popcount
    assert _mvtu(InKind.UNSIGNED, 1, 8).mac_luts() == 4 * 32 * 9  # add or subtract an 8-bit input
    assert _mvtu(InKind.SIGNED, 2, 4).mac_luts() == 4 * 32 * 8  # a 4 x 2-bit multiplier
    assert _mvtu(InKind.BIPOLAR, 1, 1).xnor and not _mvtu(InKind.BIPOLAR, 2, 1).xnor


def test_one_mvtu_logic_formula_for_the_first_order_figures_and_the_boards():
    s = _mvtu(InKind.BIPOLAR, 1, 1, n_thresh=3)
    lanes, comparators = 4 * 32, 4 * 9 * 3
    assert s.mvtu_logic_luts() == lanes + comparators + MVTU_CONTROL_LUTS
    assert s.mvtu_logic_luts(2.5) == 2.5 * lanes + comparators + MVTU_CONTROL_LUTS
    assert s.resources().lut == s.mvtu_logic_luts()
    # the weight ROM (8 x 16 folds of 128 bits), 3 thresholds per neuron, the input buffer of 8 folds x 32 inputs
    assert s.resources().memory_bits == 128 * 128 + 64 * 3 * 9 + 8 * 32
    assert s.weight_memory_bits() == {"weight_bits": 128 * 128, "dense_weight_bits": 128 * 128}


def test_every_stage_kind_has_its_figures_and_every_edge_its_fifo():
    graph = random_cnn_graph(w_bits=1, a_bits=1, seed=4)
    low = lowering.lower(graph, folding.solve(graph, 64))
    kinds = {s.kind for s in low.stages}
    assert kinds <= set(STAGE_KINDS) and {"mvtu", "window"} <= kinds
    assert all(s.resources().lut > 0 and s.resources().ff > 0 for s in low.stages)
    _, edges, _ = connect(low)
    for e in edges:
        assert e.resources().memory_bits == e.fifo_width * e.fifo_depth
