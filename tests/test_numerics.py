from fractions import Fraction

import numpy as np
import pytest

from xnorkit import numerics
from xnorkit.ir import BIPOLAR, IntType


def test_quantize_rounds_half_to_even_and_clamps():
    q = numerics.quantize(np.array([0.5, 1.5, 2.5, -1.0, 40.0, 3.49]), 1.0, 0, IntType(5))
    assert q.tolist() == [0, 2, 2, 0, 31, 3]


def test_accumulator_affine_bipolar_and_integer():
    row = np.array([1, -1, 1, 1])
    assert numerics.accumulator_affine(BIPOLAR, row, Fraction(1), 0, Fraction(1, 2)) == (Fraction(1, 2), Fraction(0))
    assert numerics.accumulator_affine(IntType(4), row, Fraction(2), 3, Fraction(1)) == (Fraction(2), Fraction(-12))


def test_accumulator_range_and_type():
    row = np.array([1, -1, 1])
    assert numerics.accumulator_range(row, IntType(5)) == (-31, 62)
    assert numerics.accumulator_range(row, BIPOLAR) == (-3, 3)
    assert numerics.accumulator_type(np.array([row]), IntType(5)) == IntType(7, signed=True)  # [-31, 63]
    assert numerics.signed_type_for(0, 64) == IntType(8, signed=True)


def _brute_force(k, c, bn, lo, hi):
    """The threshold by evaluating every accumulator exactly (sqrt via Fraction comparison of squares)."""
    for acc in range(lo, hi + 1):
        a = bn.gamma * (k * acc + c - bn.mean)
        if numerics._sign_of_a_plus_b_sqrt_r(a, bn.beta, bn.var_eps) >= 0:
            return acc
    return hi + 1


@pytest.mark.parametrize("seed", range(40))
def test_sign_threshold_matches_brute_force_any_gamma(seed):
    rng = np.random.default_rng(seed)
    gamma = float(rng.choice([-1, 0, 1]) * rng.uniform(0.1, 3))
    bn = numerics.BatchNorm.from_floats(gamma, rng.normal(0, 2), rng.normal(0, 10), rng.uniform(0.1, 50), 1e-5)
    k, c = Fraction(2), Fraction(-int(rng.integers(8, 64)))
    if numerics.needs_negation(k, bn):
        k = -k  # the compiler negates the weight row
    lo, hi = 0, int(-c)
    t = numerics.sign_threshold(k, c, bn, lo, hi)
    assert t == _brute_force(k, c, bn, lo, hi)
    for acc in (t - 1, t):
        if lo <= acc <= hi:
            y = float(bn.gamma) * (float(k * acc + c) - float(bn.mean)) / np.sqrt(float(bn.var_eps)) + float(bn.beta)
            assert (y >= 0) == (acc >= t) or abs(y) < 1e-9


def test_sign_threshold_zero_is_positive_and_constant_channels():
    # bn(acc) = acc - 5 exactly: acc = 5 gives y = 0, which is +1
    bn = numerics.BatchNorm(Fraction(1), Fraction(0), Fraction(5), Fraction(1))
    assert numerics.sign_threshold(Fraction(1), Fraction(0), bn, 0, 10) == 5
    zero_gamma_pos = numerics.BatchNorm(Fraction(0), Fraction(1, 4), Fraction(0), Fraction(1))
    zero_gamma_neg = numerics.BatchNorm(Fraction(0), Fraction(-1, 4), Fraction(0), Fraction(1))
    assert numerics.sign_threshold(Fraction(1), Fraction(0), zero_gamma_pos, -3, 10) == -3
    assert numerics.sign_threshold(Fraction(1), Fraction(0), zero_gamma_neg, -3, 10) == 11


def test_output_affine():
    bn = numerics.BatchNorm(Fraction(2), Fraction(1), Fraction(3), Fraction(4))
    scale, offset = numerics.output_affine(Fraction(1), Fraction(0), bn)
    assert (scale, offset) == (1.0, -2.0)


@pytest.mark.parametrize("dtype", [BIPOLAR, IntType(5)])
def test_negated_affine_describes_the_negated_row(dtype):
    rng = np.random.default_rng(0)
    row = rng.choice([-1, 1], size=9)
    k, c = numerics.accumulator_affine(dtype, row, Fraction(3, 4), 0, Fraction(1, 2))
    k2, c2 = numerics.negated_affine(k, c)
    for _ in range(20):
        x = rng.choice([-1, 1], size=9) if dtype.bipolar else rng.integers(0, 32, 9)
        acc, acc_neg = int((x * row).sum()), int((-x * row).sum())
        real = Fraction(3, 8) * acc
        assert k * acc + c == real == k2 * acc_neg + c2


def test_a_sums_zero_point_is_its_terms_but_bipolar_terms_count_zero():
    u4 = IntType(4, False)
    assert numerics.summed_zero_point([(3, u4), (5, u4)]) == 8
    assert numerics.summed_zero_point([(3, u4), (0, BIPOLAR)]) == 3
    assert numerics.summed_zero_point([(2, u4)] * 9) == 18  # a 3 x 3 window sum
