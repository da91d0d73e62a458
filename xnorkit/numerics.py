"""The numeric contract of docs/numerics.md, implemented once.

Every backend (golden model, RTL, C) relies on these rules through the IR; nothing else in the
project may restate them. Exactness matters more than speed here: thresholds are derived with
rational arithmetic from the exact values of the float32 parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from xnorkit.inttype import BIPOLAR, IntType

# ---- input quantization ---------------------------------------------------------------------------------

def quantize_values(x: np.ndarray, scale, zero_point: int, qmin: int, qmax: int) -> np.ndarray:
    """Float to integer as Brevitas' IntQuant does it: float32 x / scale + zero_point, rounded half to even,
    clamped to [qmin, qmax]. `scale` may be an array broadcasting against x (per-channel weights)."""
    y = np.asarray(x, dtype=np.float32) / np.asarray(scale, dtype=np.float32) + np.float32(zero_point)
    return np.clip(np.rint(y), qmin, qmax).astype(np.int64)


_PROLOGUE = {"mul": np.multiply, "div": np.divide, "add": np.add, "sub": np.subtract}


def prologue(x: np.ndarray, steps: tuple[str, ...], constants: tuple[np.ndarray, ...]) -> np.ndarray:
    """The float ops before the input quantizer, one at a time in float32 as qonnx's executor (onnxruntime)
    runs the exporter's Mul/Div/Add/Sub nodes: each result rounded to float32 before the next op, never fused."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(all="ignore"):  # inf and NaN propagate as IEEE 754 says, as in the exporter's graph
        for op, constant in zip(steps, constants, strict=True):
            x = _PROLOGUE[op](x, constant.astype(np.float32)).astype(np.float32)
    return x


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: IntType, qmin: int | None = None,
             qmax: int | None = None) -> np.ndarray:
    """The input quantizer: `quantize_values` into [qmin, qmax] (default: the range of `dtype`); a bipolar
    `dtype` gives the bit x >= 0 (qonnx's BipolarQuant: 0 is +1, NaN is -1). Returns int64."""
    if dtype.bipolar:
        return (np.asarray(x, dtype=np.float32) >= 0).astype(np.int64)
    return quantize_values(x, scale, zero_point, dtype.min if qmin is None else qmin,
                           dtype.max if qmax is None else qmax)


def integer_values(x: np.ndarray, dtype: IntType) -> np.ndarray:
    """The integers a tensor stands for: bipolar bits as -1 (bit 0) and +1 (bit 1), others as they are."""
    return 2 * x.astype(np.int64) - 1 if dtype.bipolar else x.astype(np.int64)


# ---- accumulators ---------------------------------------------------------------------------------------

def summed_zero_point(terms: list[tuple[int, IntType]]) -> int:
    """The zero point of a sum of quantized values of one scale (an addition, a window sum): each term's own
    zero point, 0 for a bipolar term (its integers are -1 and +1 already, real = scale * q)."""
    return sum(0 if dtype.bipolar else zero_point for zero_point, dtype in terms)


def accumulator_affine(in_dtype: IntType, row: np.ndarray, in_scale: Fraction, in_zero_point: int,
                       weight_scale: Fraction) -> tuple[Fraction, Fraction]:
    """(k, c) such that the real dot product of one output channel equals k * accumulator + c.

    The accumulator is the integer dot product sum_i x_i * w_i, with a bipolar input element counting
    as -1 or +1. Input x = s_x * (q - zp) (zp = 0 for bipolar), weights s_w * w, so
    dot = s_x s_w (acc - zp * sum w).
    """
    sxw = in_scale * weight_scale
    zero_point = 0 if in_dtype.bipolar else in_zero_point
    return sxw, -sxw * zero_point * int(row.sum())


def negated_affine(k: Fraction, c: Fraction) -> tuple[Fraction, Fraction]:
    """(k, c) of a channel after its weight row is negated (to fold a negative slope into `acc >= T`):
    the accumulator changes sign and nothing else does."""
    return -k, c


def accumulator_range(row: np.ndarray, in_dtype: IntType) -> tuple[int, int]:
    """Exact (min, max) of one channel's accumulator over all inputs of `in_dtype` (bipolar: -1, +1)."""
    w = row.astype(np.int64).reshape(-1)
    ends = np.stack([w * in_dtype.min, w * in_dtype.max])
    return int(ends.min(axis=0).sum()), int(ends.max(axis=0).sum())


def clamp_thresholds(thresholds: np.ndarray, weights: np.ndarray, in_dtype: IntType) -> np.ndarray:
    """Thresholds (out, levels) clamped per channel into [min, max + 1] of its accumulator: lower always fires
    as the minimum does, higher never fires as max + 1 does, so every threshold fits the accumulator type."""
    ranges = np.array([accumulator_range(row, in_dtype) for row in weights], dtype=np.int64).reshape(-1, 2)
    return np.clip(np.asarray(thresholds, dtype=np.int64), ranges[:, :1], ranges[:, 1:] + 1)


def signed_type_for(lo: int, hi: int) -> IntType:
    """Smallest two's complement type holding every integer in [lo, hi]."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return IntType(bits, signed=True)


def accumulator_type(weights: np.ndarray, in_dtype: IntType) -> IntType:
    """The accumulator type of a MatMul: wide enough for every channel's range and for its threshold,
    which may be one past the largest accumulator (a channel that never fires)."""
    ranges = [accumulator_range(r, in_dtype) for r in weights]
    lo = min(r[0] for r in ranges)
    hi = max(r[1] for r in ranges)
    return signed_type_for(lo, hi + 1)


# ---- batch-norm + sign folded into integer thresholds ---------------------------------------------------

@dataclass(frozen=True)
class BatchNorm:
    """y = gamma * (x - mean) / sqrt(var + eps) + beta, for one channel, with exact values."""

    gamma: Fraction
    beta: Fraction
    mean: Fraction
    var_eps: Fraction  # var + eps, > 0

    @staticmethod
    def from_floats(gamma: float, beta: float, mean: float, var: float, eps: float) -> BatchNorm:
        # ONNX computes var + eps in float32; so does PyTorch. Take that float32 sum exactly.
        var_eps = float(np.float32(var) + np.float32(eps))
        return BatchNorm(Fraction(float(gamma)), Fraction(float(beta)), Fraction(float(mean)), Fraction(var_eps))


IDENTITY_BN = BatchNorm(Fraction(1), Fraction(0), Fraction(0), Fraction(1))


def _sign_of_a_plus_b_sqrt_r(a: Fraction, b: Fraction, r: Fraction) -> int:
    """Exact sign of a + b * sqrt(r) for r > 0."""
    if a >= 0 and b >= 0:
        return 0 if (a == 0 and b == 0) else 1
    if a <= 0 and b <= 0:
        return -1
    lhs, rhs = a * a, b * b * r
    diff = lhs - rhs if a > 0 else rhs - lhs
    return (diff > 0) - (diff < 0)


def needs_negation(k: Fraction, bn: BatchNorm) -> bool:
    """True when the pre-activation falls as the accumulator rises (gamma * k < 0): the compiler then
    negates the channel's weight row so that every threshold reads `acc >= T`."""
    return bn.gamma * k < 0


def level_threshold(k: Fraction, c: Fraction, bn: BatchNorm, boundary: Fraction, tie_fires: bool, lo: int,
                    hi: int, relu: bool = False) -> int:
    """Smallest integer accumulator T in [lo, hi + 1] such that every acc >= T has z(acc) > boundary (or
    z(acc) == boundary when `tie_fires`), with z = bn(k * acc + c), passed through max(., 0) when `relu`.
    hi + 1 means never. Requires gamma * k >= 0 (see `needs_negation`), so z rises with acc.

    The test is exact: the sign of gamma*(k*acc + c - mean) + (beta - boundary)*sqrt(var+eps).
    """
    assert bn.gamma * k >= 0
    if relu and (boundary < 0 or (boundary == 0 and tie_fires)):
        return lo  # max(z, 0) always reaches it

    def fires(acc: int) -> bool:
        a = bn.gamma * (k * acc + c - bn.mean)
        sign = _sign_of_a_plus_b_sqrt_r(a, bn.beta - boundary, bn.var_eps)
        return sign > 0 or (sign == 0 and tie_fires)

    first, last = lo, hi + 1  # the answer is in [first, last]
    while first < last:
        mid = (first + last) // 2
        if fires(mid):
            last = mid
        else:
            first = mid + 1
    return first


def sign_threshold(k: Fraction, c: Fraction, bn: BatchNorm, lo: int, hi: int) -> int:
    """The threshold of a binary sign activation: +1 iff bn(k * acc + c) >= 0 (zero is positive, as in
    Brevitas and BipolarQuant). A channel with gamma = 0 or k = 0 is constant: lo (always +1) or hi + 1."""
    return level_threshold(k, c, bn, Fraction(0), True, lo, hi)


@dataclass(frozen=True)
class ActQuant:
    """A k-bit activation quantizer q = clamp(round_half_even(z / scale + zero_point), qmin, qmax)."""

    scale: Fraction
    zero_point: int
    qmin: int
    qmax: int

    @staticmethod
    def from_attrs(scale: float, zero_point: int, bits: int, signed: bool, narrow: bool) -> ActQuant:
        qmin, qmax = IntType(bits, signed).quant_range(narrow)
        return ActQuant(Fraction(float(np.float32(scale))), zero_point, qmin, qmax)


def quant_thresholds(k: Fraction, c: Fraction, bn: BatchNorm, act: ActQuant, lo: int, hi: int,
                     relu: bool = False) -> list[int]:
    """The qmax - qmin thresholds of a k-bit activation: q(acc) = qmin + #{t : acc >= T_t}, where level
    t = qmin + 1 .. qmax is reached iff z / scale + zp > t - 1/2, or equals it and t is even (ties round
    half to even)."""
    return [level_threshold(k, c, bn, act.scale * (Fraction(t) - Fraction(1, 2) - act.zero_point), t % 2 == 0,
                            lo, hi, relu)
            for t in range(act.qmin + 1, act.qmax + 1)]


def softmax(real: np.ndarray, kind: str) -> np.ndarray:
    """A final Softmax or LogSoftmax over axis 1, in float64 on the dequantized outputs (max subtracted first).
    Float only: integer outputs, class scores and exit decisions are taken before it."""
    shifted = real - real.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return shifted - log_sum if kind == "log_softmax" else np.exp(shifted - log_sum)


def output_affine(k: Fraction, c: Fraction, bn: BatchNorm) -> tuple[float, float]:
    """(scale, offset), float64, such that the float output = scale * accumulator + offset."""
    g = float(bn.gamma) / np.sqrt(float(bn.var_eps))
    return g * float(k), g * (float(c) - float(bn.mean)) + float(bn.beta)


# ---- the dot product from popcount ----------------------------------------------------------------------

def popcount_to_dot(popcount: np.ndarray, n: int) -> np.ndarray:
    """Bipolar dot product of two n-element vectors from the popcount of their XNOR: 2 * pc - n.
    The XNOR-popcount kernels of every backend compute the accumulator this way."""
    return 2 * popcount - n


__all__ = [
    "ActQuant", "integer_values", "level_threshold", "quant_thresholds", "quantize_values",
    "BIPOLAR", "BatchNorm", "IDENTITY_BN", "accumulator_affine", "accumulator_range", "accumulator_type",
    "clamp_thresholds",
    "needs_negation", "negated_affine", "output_affine", "popcount_to_dot", "quantize", "sign_threshold",
    "signed_type_for",
]


# ---- early exits -----------------------------------------------------------------------------------------

SCORE_BITS = 16  # the integer class scores resolve the largest output scale into 2**SCORE_BITS steps


def score_affine(scale: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An output layer's integer class scores, score[o] = weight[o] * acc[o] + bias[o]: its float outputs
    (scale[o] * acc[o] + offset[o]) in units of max|scale| / 2**SCORE_BITS, each factor rounded half to even.
    The accumulators alone do not rank the classes: a per-class scale, of either sign, sits between them and
    the float outputs. Returns (weight, bias), int64."""
    scale, offset = np.asarray(scale, dtype=np.float64), np.asarray(offset, dtype=np.float64)
    unit = float(np.abs(scale).max(initial=0.0)) or 1.0
    step = unit / 2.0 ** SCORE_BITS
    return np.rint(scale / step).astype(np.int64), np.rint(offset / step).astype(np.int64)


def class_scores(acc: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The integer class scores (score_affine) of accumulators (N, channels, ...), flattened per row."""
    acc = np.asarray(acc, dtype=np.int64)
    acc = acc.reshape(len(acc), len(weight), -1)
    return (acc * np.asarray(weight)[None, :, None] + np.asarray(bias)[None, :, None]).reshape(len(acc), -1)


def exit_margin(scores: np.ndarray) -> np.ndarray:
    """Per row, the largest class score (class_scores) minus the second largest (0 on a tie): an exit's
    confidence."""
    top = np.sort(np.asarray(scores, dtype=np.int64).reshape(len(scores), -1), axis=1)
    return top[:, -1] - top[:, -2]


def exit_taken(margins: np.ndarray, thresholds: list[int]) -> np.ndarray:
    """Per row, the first exit whose margin reaches its threshold (`margins` (N, exits)), else len(thresholds):
    the final output."""
    margins = np.asarray(margins, dtype=np.int64).reshape(len(margins), -1)
    fired = margins >= np.asarray(thresholds, dtype=np.int64)[None, :]
    return np.where(fired.any(axis=1), fired.argmax(axis=1), len(thresholds))


def calibrate_margin(margins: np.ndarray, exit_right: np.ndarray, final_right: np.ndarray, allowance: float) -> int:
    """The integer counterpart of quant_train.conditional.calibrate_single_exit for the compiled network
    (exit_taken): the smallest margin threshold (the most inputs leaving early) whose two-exit cascade accuracy
    on held-out data stays within `allowance` of always running to the end. `margins` are the exit's integer
    margins (exit_margin), `exit_right` / `final_right` whether each exit's answer is right. Above every margin
    (nothing leaves) when no threshold qualifies."""
    margins = np.asarray(margins, dtype=np.int64)
    order = np.argsort(-margins, kind="stable")
    m, early, final = margins[order], np.asarray(exit_right)[order], np.asarray(final_right)[order]
    # accuracy when the k + 1 highest-margin inputs leave early
    accuracy = (np.cumsum(early) + final.sum() - np.cumsum(final)) / len(m)
    cut = np.r_[m[:-1] != m[1:], True]  # a threshold admits every input of equal margin
    ok = np.flatnonzero(cut & (accuracy >= final.mean() - allowance))
    return int(m[ok[-1]]) if len(ok) else int(m.max()) + 1
