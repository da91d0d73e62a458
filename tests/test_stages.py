"""hw/stages.py: the input kinds the SV library tests for, and an MVTU's memory sizes, each rule once."""

import re
from pathlib import Path

from hw.stages import InKind, MvtuMemory
from xnorkit import packing

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
