import numpy as np
import pytest

from tests.conftest import random_graph, random_inputs
from xnorkit import golden, numerics


@pytest.mark.parametrize("n", [1, 31, 64, 65, 200])
def test_xnor_popcount_is_the_bipolar_dot_product(n):
    rng = np.random.default_rng(n)
    bits = rng.integers(0, 2, size=(7, n)).astype(np.uint8)
    w = rng.choice(np.array([-1, 1], dtype=np.int8), size=(5, n))
    pc = golden.xnor_popcount(bits, w)
    dot = (2 * bits.astype(np.int64) - 1) @ w.T.astype(np.int64)
    assert np.array_equal(numerics.popcount_to_dot(pc, n), dot)


def test_run_from_int_equals_run_on_floats():
    g = random_graph([16, 32, 32, 8], seed=5)
    x = random_inputs(g, 20)
    assert np.array_equal(golden.predict_from_int(g, golden.quantize_input(g, x)), golden.predict_int(g, x))


def test_thresholds_act_per_channel():
    g = random_graph([16, 32, 8], seed=2)
    values = golden.run(g, random_inputs(g, 50), keep_all=True)
    act = values["act0"]
    assert act[:, 0].all() and not act[:, -1].any()  # the always / never firing channels
    thresholds = g.node("sign0").thresholds[:, 0]
    assert np.array_equal(act, (values["acc0"] >= thresholds).astype(np.uint8))
