import numpy as np
import pytest

from xnorkit import packing


def test_pack_bits_lsb_first_and_zero_padding():
    bits = np.zeros((1, 70), dtype=np.uint8)
    bits[0, [0, 2, 3, 64, 69]] = 1
    words = packing.pack_bits(bits, 64)
    assert words.tolist() == [[0b1101, 0b100001]]
    assert packing.pack_bits(bits, 32).tolist() == [[0b1101, 0, 0b100001]]


def test_bipolar_encoding_plus_one_is_bit_one():
    assert packing.bipolar_to_bits(np.array([1, -1, -1, 1])).tolist() == [1, 0, 0, 1]


def test_fields_round_trip_signed():
    values = np.array([-3, 5, 0, -8, 7])
    word = packing.pack_fields(values, 4)
    assert packing.unpack_fields(word, 5, 4, signed=True).tolist() == values.tolist()


def test_mvtu_weight_words_layout():
    # neuron nf*PE + p, inputs sf*SIMD + s -> word nf*SF + sf, bit p*SIMD + s
    w = -np.ones((4, 6), dtype=np.int8)
    w[3, 4] = 1  # neuron 3 = fold 1 lane 1; input 4 = fold 1 (SIMD 3) lane 1
    words = packing.mvtu_weight_words(w, pe=2, simd=3)
    assert len(words) == 4
    assert words == [0, 0, 0, 1 << (1 * 3 + 1)]


def test_threshold_words_and_mem_file():
    words = packing.mvtu_threshold_words(np.array([1, -1, 2, 3]), pe=2, acc_bits=4)
    assert words == [0xF1, 0x32]
    assert packing.mem_file(words, 8) == "f1\n32\n"


def test_stream_words():
    assert packing.stream_words(np.array([1, 2, 3, 4]), 2, 5) == [1 | 2 << 5, 3 | 4 << 5]


def test_stream_bytes_match_stream_words():
    rng = np.random.default_rng(0)
    for bits, elems, signed in [(1, 8, False), (3, 5, True), (17, 4, True), (8, 1, False)]:
        lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
        values = rng.integers(lo, hi, size=(3, elems * 4))
        beats = packing.stream_bytes(values, elems, bits)
        for i in range(3):
            words = packing.stream_words(values[i], elems, bits)
            assert [int.from_bytes(b.tobytes(), "little") for b in beats[i]] == words
        assert np.array_equal(packing.unstream_bytes(beats, elems, bits, signed), values)


@pytest.mark.parametrize("field_bits", [2, 4, 8])
def test_pack_rows_fields_round_trip(field_bits):
    rng = np.random.default_rng(field_bits)
    lo, hi = -(1 << (field_bits - 1)), (1 << (field_bits - 1)) - 1
    values = rng.integers(lo, hi + 1, size=(5, 37))
    words = packing.pack_rows(values, field_bits)
    per_word = 32 // field_bits
    assert words.dtype == np.uint32 and words.shape == (5, -(-37 // per_word))
    for r in range(5):
        for i in range(37):
            field = (int(words[r, i // per_word]) >> (i % per_word * field_bits)) & ((1 << field_bits) - 1)
            assert field - (1 << field_bits) * (field >> (field_bits - 1)) == values[r, i]
        assert int(words[r, -1]) >> (37 % per_word * field_bits) == 0 or 37 % per_word == 0  # padding fields 0


def test_sparse_weight_formats_sizes():
    from xnorkit import packing

    w = np.array([[1, 0, 0, 0, -1, 0, 0, 0]])
    # mask: 8 flags + 2 signs; gaps: 2 entries of (2-bit distance + sign); blocks: 1 flag + one 32-weight block
    assert packing.sparse_weight_bits(w, 2) == {"dense": 16, "mask": 10, "gaps": 6, "blocks": 65}
    k_bit = np.array([[3, 0, 0, -2]])
    assert packing.sparse_weight_bits(k_bit, 3)["mask"] == 4 + 2 * 3


def test_tile_schedule_skips_zero_tiles_after_the_first_fold():
    """PE 2 x SIMD 2 tiles of a 6 x 6 matrix: fold 0 reads every beat (computing on its nonzero tiles only),
    fold 1 has one nonzero tile, fold 2 none (one step that computes nothing)."""
    w = np.zeros((6, 6), dtype=np.int8)
    w[0, 4] = 1    # fold 0, tile sf 2
    w[3, 1] = -1   # fold 1, tile sf 0
    schedule = packing.tile_schedule(w, 2, 2)
    assert schedule == [packing.Step(0, 0, False, False), packing.Step(0, 1, False, False),
                        packing.Step(0, 2, True, True), packing.Step(1, 0, True, True),
                        packing.Step(2, 0, True, False)]
    assert packing.step_bits(3) == 4
    assert packing.tile_words(schedule, 3) == [0b0000, 0b0001, 0b1110, 0b1100, 0b0100]
    # the weight memory holds the computing tiles only: fold 0's sf 2, fold 1's sf 0
    words = packing.mvtu_weight_words(w, 2, 2, 2, schedule)
    assert words == [packing.pack_fields(np.array([1, 0, 0, 0]), 2), packing.pack_fields(np.array([0, 0, 0, -1]), 2)]


def test_tile_counts_match_the_schedule():
    rng = np.random.default_rng(0)
    for pe, simd in ((1, 1), (2, 3), (4, 6), (12, 24)):
        w = rng.integers(-1, 2, size=(12, 24)) * (rng.random((12, 24)) < 0.1)
        schedule = packing.tile_schedule(w, pe, simd)
        assert packing.tile_counts(w, pe, simd) == (len(schedule), sum(step.compute for step in schedule))


def test_score_words_hold_bias_above_weight_in_twos_complement():
    words = packing.score_words(np.array([-1, 5]), np.array([3, -2]), w_bits=4, b_bits=3)
    assert words == [0b011_1111, 0b110_0101]
