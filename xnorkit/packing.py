"""The one packing module: how bits and small integers are laid into words.

Used by the golden model, the RTL weight memories (.mem files), the C arrays and the testbench drivers.
Rule (docs/numerics.md): element i of a vector goes to word i // W, bit position (i % W) * bits
(least significant first); bipolar +1 is bit 1, -1 is bit 0.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def bipolar_to_bits(values: np.ndarray) -> np.ndarray:
    """-1/+1 (or already 0/1 bits) to 0/1 uint8 bits: +1 -> 1, -1 -> 0."""
    v = np.asarray(values)
    return (v > 0).astype(np.uint8)


def pack_bits(bits: np.ndarray, word_bits: int = 64) -> np.ndarray:
    """Pack the last axis of a 0/1 array into unsigned words, element i at word i // W, bit i % W.
    The last word is padded with 0 bits."""
    bits = np.asarray(bits, dtype=np.uint8)
    n = bits.shape[-1]
    words = -(-n // word_bits)
    padded = np.zeros(bits.shape[:-1] + (words * word_bits,), dtype=np.uint8)
    padded[..., :n] = bits
    as_bytes = np.packbits(padded, axis=-1, bitorder="little")  # bit i of a byte = element i
    word_dtype = np.dtype(f"<u{word_bits // 8}")  # little-endian bytes inside a word
    return as_bytes.view(word_dtype).astype(word_dtype.newbyteorder("="))


def pack_rows(values: np.ndarray, field_bits: int, word_bits: int = 32) -> np.ndarray:
    """Pack each row of small signed integers into words of `word_bits // field_bits` two's complement fields,
    element i at word i // per_word, bits (i % per_word) * field_bits up; a row's last word is padded with 0
    fields. `field_bits` divides `word_bits`, so no field straddles two words."""
    assert word_bits % field_bits == 0
    values = np.asarray(values, dtype=np.int64)
    rows, n = values.shape
    per_word = word_bits // field_bits
    words = -(-n // per_word)
    fields = np.zeros((rows, words * per_word), dtype=np.uint64)
    fields[:, :n] = values & ((1 << field_bits) - 1)
    shifts = (np.arange(per_word, dtype=np.uint64) * field_bits)
    packed = (fields.reshape(rows, words, per_word) << shifts).sum(axis=2, dtype=np.uint64)
    return packed.astype(np.dtype(f"uint{word_bits}"))


def hwc_columns(matrix: np.ndarray, map_shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """A fully connected layer's weight columns after a flatten, from the IR's order to the order the
    feature map is stored and streamed in, pixel by pixel with channels fastest ((H, W, C)): `map_shape`
    is the stored (C, H, W) map and `axes` the flattened tensor's axes as axes of it (a transpose before
    the flatten). The same values, permuted."""
    rows = matrix.shape[0]
    logical = matrix.reshape(rows, *(map_shape[a] for a in axes))
    return logical.transpose(0, *(1 + axes.index(a) for a in (1, 2, 0))).reshape(rows, -1)


def pack_fields(values: np.ndarray, bits: int) -> int:
    """Pack a 1-D sequence of integers into one Python int, element i at bit position i * bits (two's
    complement fields for negative values). Used for wide RTL words of any width."""
    mask = (1 << bits) - 1
    word = 0
    for i, v in enumerate(np.asarray(values).tolist()):
        word |= (int(v) & mask) << (i * bits)
    return word


def unpack_fields(word: int, count: int, bits: int, signed: bool) -> np.ndarray:
    """Inverse of pack_fields."""
    mask = (1 << bits) - 1
    out = np.empty(count, dtype=np.int64)
    for i in range(count):
        v = (word >> (i * bits)) & mask
        if signed and v >> (bits - 1):
            v -= 1 << bits
        out[i] = v
    return out


def mvtu_weight_words(weights: np.ndarray, pe: int, simd: int, w_bits: int = 1,
                      schedule: list[Step] | None = None) -> list[int]:
    """Weight memory of a matrix-vector unit with PE x SIMD folding: word (nf * SF + sf) holds, for PE
    lane p, the SIMD weights of neuron nf * PE + p at inputs sf * SIMD .. sf * SIMD + SIMD - 1, at field
    p * SIMD + s of `w_bits` bits (1: a bipolar bit; more: two's complement). With a `schedule`
    (tile_schedule), the tiles of its computing steps only, in order."""
    fields = bipolar_to_bits(weights) if w_bits == 1 else np.asarray(weights, dtype=np.int64)
    tiles = mvtu_weight_tiles(fields, pe, simd)
    if schedule is not None:
        sf_count = weights.shape[1] // simd
        tiles = [tiles[step.nf * sf_count + step.sf] for step in schedule if step.compute]
    return [pack_fields(tile.reshape(-1), w_bits) for tile in tiles]


class Step(NamedTuple):
    """One cycle of a unit that skips zero tiles: its tile (nf, sf), whether it ends the neuron fold, and
    whether it computes (a zero tile read only for its input beat, or a fold's placeholder, adds 0)."""

    nf: int
    sf: int
    last: bool
    compute: bool


def step_bits(sf_count: int) -> int:
    """Bits of a step word, {compute, last, sf}: sf takes ceil(log2 SF) bits, at least 1 (the RTL's SF_W)."""
    return max(1, (sf_count - 1).bit_length()) + 2


def _nonzero_tiles(weights: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """(NF, SF) booleans: tile (nf, sf) holds a nonzero weight."""
    out_features, in_features = weights.shape
    return (np.asarray(weights) != 0).reshape(out_features // pe, pe, in_features // simd, simd).any(axis=(1, 3))


def tile_schedule(weights: np.ndarray, pe: int, simd: int) -> list[Step]:
    """Zero-tile skipping: the steps of a unit, one per cycle, in order. The first neuron fold has a step per
    input beat, as it reads the stream one beat per cycle (and buffers it), computing on its nonzero tiles; each
    later fold has a step per nonzero tile, or one that computes nothing when it has none, since a fold still
    writes its outputs. The weight memory holds the computing steps' tiles."""
    nonzero = _nonzero_tiles(weights, pe, simd)
    sf_count = nonzero.shape[1]
    schedule = []
    for nf, row in enumerate(nonzero):
        steps = range(sf_count) if nf == 0 else (np.flatnonzero(row).tolist() or [0])
        schedule += [Step(nf, sf, i == len(steps) - 1, bool(row[sf])) for i, sf in enumerate(steps)]
    return schedule


def tile_counts(weights: np.ndarray, pe: int, simd: int) -> tuple[int, int]:
    """(steps, computing steps) of tile_schedule, counted without building it."""
    nonzero = _nonzero_tiles(weights, pe, simd)
    per_fold = nonzero[1:].sum(axis=1)
    return nonzero.shape[1] + int(np.maximum(per_fold, 1).sum()), int(nonzero.sum())


def tile_words(schedule: list[Step], sf_count: int) -> list[int]:
    """The step memory of a skipping unit: word t is {compute, last, sf} of step t, step_bits(sf_count) wide."""
    sf_bits = step_bits(sf_count) - 2
    return [(int(step.compute) << (sf_bits + 1)) | (int(step.last) << sf_bits) | step.sf for step in schedule]


def mvtu_weight_tiles(weights: np.ndarray, pe: int, simd: int) -> list[np.ndarray]:
    """The (PE, SIMD) tiles of a matrix in fold order: tile nf * SF + sf holds neurons nf * PE .. + PE - 1 at
    inputs sf * SIMD .. + SIMD - 1 (the weight memory's word order, also the HLS backend's arrays)."""
    out_features, in_features = weights.shape
    return [weights[nf * pe:(nf + 1) * pe, sf * simd:(sf + 1) * simd]
            for nf in range(out_features // pe) for sf in range(in_features // simd)]


def mvtu_threshold_words(thresholds: np.ndarray, pe: int, acc_bits: int) -> list[int]:
    """Threshold memory of a unit: thresholds (C, L); word nf holds neuron nf * PE + p's L thresholds at
    fields p * L + l of acc_bits (two's complement)."""
    t = np.asarray(thresholds).reshape(len(thresholds), -1)
    return [pack_fields(t[nf * pe:(nf + 1) * pe].reshape(-1), acc_bits) for nf in range(len(t) // pe)]


def stream_words(values: np.ndarray, elems_per_word: int, bits: int) -> list[int]:
    """Split one vector into stream beats of `elems_per_word` elements of `bits` bits each."""
    values = np.asarray(values)
    return [pack_fields(values[i:i + elems_per_word], bits) for i in range(0, len(values), elems_per_word)]


def score_words(weight: np.ndarray, bias: np.ndarray, w_bits: int, b_bits: int) -> list[int]:
    """An early exit's class scores as the RTL reads them (xk_exit_test): per class one word {bias, weight},
    each field two's complement, the weight in the low w_bits."""
    return [(int(b) & ((1 << b_bits) - 1)) << w_bits | (int(w) & ((1 << w_bits) - 1))
            for w, b in zip(weight, bias, strict=True)]


def mem_file(words: list[int], width: int) -> str:
    """$readmemh text: one hexadecimal word per line."""
    digits = max(1, -(-width // 4))
    return "".join(f"{w:0{digits}x}\n" for w in words)


def stream_bytes(values: np.ndarray, elems_per_beat: int, bits: int) -> np.ndarray:
    """The stream beats of many vectors at once, as bytes: (N, F) integers -> (N, F / elems_per_beat,
    ceil(elems_per_beat * bits / 8)) uint8, each beat little-endian with the packing rule's field order
    (as `stream_words`, vectorized for bulk simulation)."""
    v = np.asarray(values, dtype=np.int64)
    n, features = v.shape
    fields = (v & ((1 << bits) - 1)).astype(np.uint64)
    field_bits = (fields[..., None] >> np.arange(bits, dtype=np.uint64)) & np.uint64(1)  # (N, F, bits)
    beat_bits = field_bits.astype(np.uint8).reshape(n, features // elems_per_beat, elems_per_beat * bits)
    return np.packbits(beat_bits, axis=-1, bitorder="little")


def unstream_bytes(beats: np.ndarray, elems_per_beat: int, bits: int, signed: bool) -> np.ndarray:
    """Inverse of stream_bytes: (N, beats, bytes) uint8 -> (N, beats * elems_per_beat) int64."""
    n, count = beats.shape[:2]
    beat_bits = np.unpackbits(beats, axis=-1, bitorder="little")[..., :elems_per_beat * bits]
    field_bits = beat_bits.reshape(n, count * elems_per_beat, bits).astype(np.int64)
    values = (field_bits << np.arange(bits, dtype=np.int64)).sum(axis=-1)
    if signed:
        values = np.where(values >> (bits - 1), values - (1 << bits), values)
    return values


def bus_words(beats: np.ndarray, bus_bytes: int) -> np.ndarray:
    """Stream beats as bytes (N, beats, beat_bytes) on a bus of `bus_bytes`-byte words, as xnorkit_shell carries
    them: each beat padded with 0 to whole words, (N, beats * words_per_beat * bus_bytes)."""
    n, count, beat_bytes = beats.shape
    padded = np.zeros((n, count, -(-beat_bytes // bus_bytes) * bus_bytes), dtype=np.uint8)
    padded[..., :beat_bytes] = beats
    return padded.reshape(n, -1)


def bus_packets(beats: np.ndarray, bus_bytes: int) -> np.ndarray:
    """What xnorkit_shell's output delivers per inference as one AXI4-Stream packet, the bytes its TKEEP marks:
    `bus_words` without the padding bytes after the last beat (N, packet_bytes)."""
    beat_bytes = beats.shape[-1]
    trailing = -(-beat_bytes // bus_bytes) * bus_bytes - beat_bytes
    words = bus_words(beats, bus_bytes)
    return words[:, :words.shape[1] - trailing]


# ---- sparse weight formats (sizes) ---------------------------------------------------------------------------

def signs_or_zeros(weights: np.ndarray) -> bool:
    """Every weight is -1, 0 or +1 (a pruned binary or ternary layer): one sign bit per kept weight suffices, and
    on bipolar inputs the masked XNOR-popcount computes the layer (RTL and C)."""
    return bool(np.isin(weights, (-1, 0, 1)).all())


BLOCK = 32  # weights per block of the `blocks` format: a 32-bit word of a binary row


def sparse_weight_bits(weights: np.ndarray, w_bits: int) -> dict[str, int]:
    """Bits of a weight matrix (rows = output channels) in each storage format, for choosing one by size:

    - `dense`: every weight at `w_bits`;
    - `mask`: a bit per weight (nonzero or not) plus the nonzeros packed, each in `value_bits` (1 when every
      nonzero is -1 or +1, a pruned binary or ternary layer; else `w_bits`);
    - `gaps`: Deep Compression's relative indexing: per nonzero, the distance to the previous one in its row in
      `g` bits and its value, a zero-valued filler entry where a distance does not fit; the best `g` of 1..8;
    - `blocks`: zero-block skipping: a bit per block of BLOCK weights of a row, the blocks with a nonzero dense.
    """
    w = np.asarray(weights).reshape(len(weights), -1)
    nonzero = w != 0
    count = int(nonzero.sum())
    value_bits = 1 if count and signs_or_zeros(w) else w_bits
    best_gaps = None
    for g in range(1, 9):
        limit = (1 << g) - 1
        entries = 0
        for row in nonzero:
            positions = np.flatnonzero(row)
            gaps = np.diff(np.r_[-1, positions]) - 1  # zeros skipped before each nonzero
            entries += len(positions) + int((gaps // (limit + 1)).sum())  # fillers for gaps beyond reach
        bits = entries * (g + value_bits)
        best_gaps = bits if best_gaps is None else min(best_gaps, bits)
    pad = (-w.shape[1]) % BLOCK
    blocks = np.pad(nonzero, ((0, 0), (0, pad))).reshape(len(w), -1, BLOCK).any(axis=2)
    return {"dense": int(w.size) * w_bits, "mask": int(w.size) + count * value_bits, "gaps": int(best_gaps),
            "blocks": int(blocks.size) + int(blocks.sum()) * BLOCK * w_bits}
