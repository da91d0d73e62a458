"""Early exits that stop the inference (numerics.exit_margin / exit_taken): golden defines the exit taken and
the outputs, the C library returns early with the same integers and exit index on the host and on the
emulated Cortex-M4, and skips the rest of the network's instructions."""

from dataclasses import replace

import numpy as np
import pytest

from firmware import emit_c, runner
from tests.conftest import random_graph, random_inputs, require_tool
from xnorkit import golden, ir, numerics
from xnorkit.build import write_tree
from xnorkit.errors import XnorkitError
from xnorkit.ir import Dequantize, MatMul


def branchy_graph(margin: int | None = None) -> ir.Graph:
    """random_graph's 40 -> 64 -> 64 -> 48 -> 10 MLP with an exit classifier (64 -> 10) on the first hidden
    layer, listed after the trunk in the IR (the C generator moves it forward)."""
    base = random_graph([40, 64, 64, 48, 10], seed=6)
    rng = np.random.default_rng(3)
    w = rng.choice(np.array([-1, 1], dtype=np.int8), size=(10, 64))
    act = base.tensor_types["act0"]
    exit_fc = MatMul("fc_exit", "act0", "acc_exit", w, act, ir.BIPOLAR, numerics.accumulator_type(w, act))
    exit_out = Dequantize("out_exit", "acc_exit", "y_exit", np.ones(10), np.zeros(10))
    graph = replace(base, nodes=(*base.nodes, exit_fc, exit_out), outputs=("acc_exit", *base.outputs),
                    float_outputs=("y_exit", *base.float_outputs),
                    tensor_types={**base.tensor_types, "acc_exit": exit_fc.acc_dtype},
                    tensor_shapes={**base.tensor_shapes, "acc_exit": (10,), "y_exit": (10,)},
                    exits=(("acc_exit", 0),))
    if margin is None:  # the median margin: about half the inputs leave early
        margins = numerics.exit_margin(golden.run(graph, random_inputs(graph, 400))["acc_exit"])
        margin = int(np.median(margins))
    graph = replace(graph, exits=(("acc_exit", margin),))
    ir.verify(graph)
    return graph


def test_exit_rule_in_golden():
    assert numerics.exit_margin(np.array([[3, 9, 1], [4, 4, 2], [-5, -7, -9]])).tolist() == [6, 0, 2]
    assert numerics.exit_taken(np.array([[6, 1], [0, 9], [1, 1]]), [5, 8]).tolist() == [0, 1, 2]
    graph = branchy_graph()
    margin = graph.exits[0][1]
    x = random_inputs(graph, 400)
    out = golden.predict_int(graph, x)
    taken = out[:, -1]
    assert 0.2 < (taken == 0).mean() < 0.9  # both paths are exercised
    values = golden.run(graph, x)
    assert np.array_equal(taken == 0, numerics.exit_margin(values["acc_exit"]) >= margin)
    assert np.array_equal(out[:, :10], values["acc_exit"])
    assert (out[taken == 0, 10:20] == 0).all()
    assert np.array_equal(out[taken == 1, 10:20], values["acc3"][taken == 1])


def test_exits_survive_save_and_load_and_are_checked(tmp_path):
    graph = branchy_graph(margin=14)
    ir.save(graph, tmp_path)
    assert ir.load(tmp_path).exits == (("acc_exit", 14),)
    with pytest.raises(XnorkitError, match="must be the outputs before the last"):
        ir.verify(replace(graph, exits=(("acc3", 1),)))


def test_c_returns_early_bit_exact_on_host_and_cortex_m4(tmp_path):
    require_tool("gcc")
    graph = branchy_graph()
    write_tree(tmp_path / "fw", emit_c.emit(graph))
    x = random_inputs(graph, 300)
    expected = golden.predict_int(graph, x)
    assert np.array_equal(runner.run_host(tmp_path / "fw", x, expected.shape[1]), expected)
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    outputs, instructions = runner.profile_cortex_m4(tmp_path / "fw", x[:60], expected.shape[1])
    assert np.array_equal(outputs, expected[:60])
    per_image = instructions.sum(axis=1)
    early = expected[:60, -1] == 0
    assert early.any() and (~early).any()
    # the early images skip the trunk's 64 -> 48 -> 10 layers: the steps after the exit record nothing, and
    # each early image costs at least 9,000 instructions less than any that runs to the end
    last_step = np.nonzero(instructions[~early][0])[0].max()
    assert (instructions[early][:, last_step] == 0).all()
    assert per_image[early].max() + 9000 < per_image[~early].min()


def test_without_exits_every_output_is_computed(tmp_path):
    require_tool("gcc")
    graph = replace(branchy_graph(margin=14), exits=())
    write_tree(tmp_path / "fw", emit_c.emit(graph))
    x = random_inputs(graph, 50)
    expected = golden.predict_int(graph, x)
    assert expected.shape[1] == 20
    assert np.array_equal(runner.run_host(tmp_path / "fw", x, 20), expected)
