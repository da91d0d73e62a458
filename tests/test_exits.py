"""Early exits that stop the inference (numerics.exit_margin / exit_taken): golden defines the exit taken and
the outputs, the C library returns early with the same integers and exit index on the host and on the
emulated Cortex-M4, and skips the rest of the network's instructions."""

import json
from dataclasses import replace

import numpy as np
import pytest

from tests.conftest import random_graph, random_inputs, require_tool
from xnorkit import golden, ir, numerics
from xnorkit.errors import XnorkitError
from xnorkit.firmware import emit_c, runner
from xnorkit.ir import Dequantize, MatMul
from xnorkit.outputs import write_tree


def branchy_graph(margin: int | None = None) -> ir.Graph:
    """random_graph's 40 -> 64 -> 64 -> 48 -> 10 MLP with an exit classifier (64 -> 10) on the first hidden
    layer, listed after the trunk in the IR (the C generator moves it forward)."""
    base = random_graph([40, 64, 64, 48, 10], seed=6)
    rng = np.random.default_rng(3)
    w = rng.choice(np.array([-1, 1], dtype=np.int8), size=(10, 64))
    act = base.tensor_types["act0"]
    exit_fc = MatMul("fc_exit", "act0", "acc_exit", w, act, ir.BIPOLAR, numerics.accumulator_type(w, act))
    # per-class scales, one of them negative: the accumulators alone do not rank the classes
    exit_out = Dequantize("out_exit", "acc_exit", "y_exit", rng.uniform(0.2, 2.0, 10) * np.r_[-1, np.ones(9)],
                          rng.normal(0, 3, 10))
    graph = replace(base, nodes=(*base.nodes, exit_fc, exit_out), outputs=("acc_exit", *base.outputs),
                    float_outputs=("y_exit", *base.float_outputs),
                    tensor_types={**base.tensor_types, "acc_exit": exit_fc.acc_dtype},
                    tensor_shapes={**base.tensor_shapes, "acc_exit": (10,), "y_exit": (10,)},
                    exits=(("acc_exit", 0),))
    if margin is None:  # the median margin: about half the inputs leave early
        margins = numerics.exit_margin(graph.class_scores("acc_exit", golden.run(graph, random_inputs(graph, 400))[
            "acc_exit"]))
        margin = int(np.median(margins))
    graph = replace(graph, exits=(("acc_exit", margin),))
    ir.verify(graph)
    return graph


def two_exit_graph() -> ir.Graph:
    """branchy_graph with a second exit classifier on the second hidden layer; margins that send about a third of
    the inputs out at each exit."""
    one = branchy_graph(margin=0)
    rng = np.random.default_rng(4)
    w = rng.choice(np.array([-1, 1], dtype=np.int8), size=(10, 64))
    act = one.tensor_types["act1"]
    fc = MatMul("fc_exit2", "act1", "acc_exit2", w, act, ir.BIPOLAR, numerics.accumulator_type(w, act))
    out = Dequantize("out_exit2", "acc_exit2", "y_exit2", rng.uniform(0.2, 2.0, 10), rng.normal(0, 3, 10))
    graph = replace(one, nodes=(*one.nodes, fc, out), outputs=("acc_exit", "acc_exit2", one.outputs[-1]),
                    float_outputs=("y_exit", "y_exit2", one.float_outputs[-1]),
                    tensor_types={**one.tensor_types, "acc_exit2": fc.acc_dtype},
                    tensor_shapes={**one.tensor_shapes, "acc_exit2": (10,), "y_exit2": (10,)},
                    exits=(("acc_exit", 0), ("acc_exit2", 0)))
    values = golden.run(graph, random_inputs(graph, 400))
    first = numerics.exit_margin(graph.class_scores("acc_exit", values["acc_exit"]))
    second = numerics.exit_margin(graph.class_scores("acc_exit2", values["acc_exit2"]))
    graph = replace(graph, exits=(("acc_exit", int(np.quantile(first, 0.67))),
                                  ("acc_exit2", int(np.quantile(second[first < np.quantile(first, 0.67)], 0.5)))))
    ir.verify(graph)
    return graph


def test_exit_rule_in_golden():
    assert numerics.exit_margin(np.array([[3, 9, 1], [4, 4, 2], [-5, -7, -9]])).tolist() == [6, 0, 2]
    assert numerics.exit_taken(np.array([[6, 1], [0, 9], [1, 1]]), [5, 8]).tolist() == [0, 1, 2]
    weight, bias = numerics.score_affine(np.array([0.5, -0.25, 0.125]), np.array([1.0, 0.0, -3.0]))
    assert weight.tolist() == [65536, -32768, 16384] and bias.tolist() == [131072, 0, -393216]
    assert numerics.class_scores(np.array([[2, -4, 8]]), weight, bias).tolist() == [[262144, 131072, -262144]]
    graph = branchy_graph()
    margin = graph.exits[0][1]
    x = random_inputs(graph, 400)
    out = golden.predict_int(graph, x)
    taken = out[:, -1]
    assert 0.2 < (taken == 0).mean() < 0.9  # both paths are exercised
    values = golden.run(graph, x)
    scores = graph.class_scores("acc_exit", values["acc_exit"])
    assert np.array_equal(taken == 0, numerics.exit_margin(scores) >= margin)
    # the scores rank the classes as the float outputs do, which the accumulators do not
    assert np.array_equal(scores.argmax(1), values["y_exit"].argmax(1))
    assert not np.array_equal(values["acc_exit"].argmax(1), values["y_exit"].argmax(1))
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
    # each early image costs less than any that runs to the end by most of what those steps take
    last_step = np.nonzero(instructions[~early][0])[0].max()
    assert (instructions[early][:, last_step] == 0).all()
    skipped = (instructions[early] == 0).all(axis=0)
    trunk = instructions[~early][:, skipped].sum(axis=1).min()
    assert trunk > 5000 and per_image[early].max() + 0.9 * trunk < per_image[~early].min()


def test_c_returns_the_class_of_the_output_taken(tmp_path):
    """NAME_infer's return value: the argmax of the taken output's integer class scores, which is the argmax of
    its float outputs (the accumulators alone rank them differently here)."""
    import subprocess

    from xnorkit import tools

    require_tool("gcc")
    gcc = tools.require("gcc")
    graph = branchy_graph()
    write_tree(tmp_path, emit_c.emit(graph))
    (tmp_path / "classes.c").write_text(
        '#include <stdio.h>\n#include "xnorkit.h"\n'
        "int main(void) {\n    float input[XNORKIT_INPUT_SIZE];\n    int32_t output[XNORKIT_OUTPUT_SIZE];\n"
        '    while (fread(input, sizeof input, 1, stdin) == 1) printf("%d\\n", (int)xnorkit_infer(input, output));\n'
        "    return 0;\n}\n")
    subprocess.run([gcc, "-O2", *runner.WARNINGS, "classes.c", "xnorkit.c", "-lm", "-o", "classes"],
                   cwd=tmp_path, check=True)
    x = random_inputs(graph, 300)
    proc = subprocess.run([str(tmp_path / "classes")], input=np.ascontiguousarray(x, "<f4").tobytes(),
                          capture_output=True, check=True)
    values, taken = golden.run(graph, x), golden.predict_int(graph, x)[:, -1]
    expected = np.where(taken == 0, values["y_exit"].argmax(1), values[graph.float_outputs[1]].argmax(1))
    assert np.array_equal(np.array(proc.stdout.split(), dtype=int), expected)


def test_rtl_exit_is_bit_exact_and_stops_feeding_the_trunk(tmp_path):
    """The generated accelerator's exit (xk_exit_test, xk_exit_gate, xk_exit_merge): golden's outputs and exit
    index on every input, with random stalls on both streams (the compiled harness); an input that leaves early
    never reaches the trunk, so it completes sooner than one that runs to the end."""
    from tests.test_hw import lint
    from xnorkit.hw import emit_sv
    from xnorkit.hw.folding import solve
    from xnorkit.sim import runner as sim

    require_tool("verilator")
    graph = branchy_graph()
    write_tree(tmp_path / "rtl", emit_sv.emit(graph, solve(graph, 64)))
    assert lint(tmp_path / "rtl") == ""
    x = random_inputs(graph, 120)
    x_int, expected = golden.quantize_input(graph, x), golden.predict_int(graph, x)
    assert 0.2 < (expected[:, -1] == 0).mean() < 0.9
    bulk = sim.simulate_bulk(tmp_path / "rtl", x_int, expected, 0.3, 0.3, seed=2)  # cocotb: the two-exit test
    assert bulk.mismatch is None, bulk.mismatch
    # one input at a time: an early one's latency ends at the exit
    latency = {}
    for taken in (0, 1):
        i = int(np.flatnonzero(expected[:, -1] == taken)[0])
        one = sim.simulate_bulk(tmp_path / "rtl", x_int[i:i + 1], expected[i:i + 1])
        assert one.mismatch is None
        latency[taken] = one.latency
    assert latency[0] < latency[1]


def test_rtl_with_two_exits_chains_gates_and_merges(tmp_path):
    """Two exits: the second exit's layers run only for inputs the first let through, its gate holds the rest;
    the merges nest (the first exit's outputs, then the second's, the final layer's, the index)."""
    from tests.test_hw import lint
    from xnorkit.hw import emit_sv
    from xnorkit.hw.folding import exit_segments, solve
    from xnorkit.sim import runner as sim

    require_tool("verilator")
    graph = two_exit_graph()
    assert [branch for _, branch in exit_segments(graph)] == ["act0", "act1"]
    write_tree(tmp_path / "rtl", emit_sv.emit(graph, solve(graph, 32, exit_rate=0.5)))
    assert lint(tmp_path / "rtl") == ""
    x = random_inputs(graph, 150)
    x_int, expected = golden.quantize_input(graph, x), golden.predict_int(graph, x)
    assert set(np.unique(expected[:, -1])) == {0, 1, 2}
    assert (expected[expected[:, -1] == 0, 10:30] == 0).all() and (expected[expected[:, -1] == 1, 20:30] == 0).all()
    stalled = sim.simulate(tmp_path / "rtl", x_int[:40], expected[:40], "verilator", 0.3, 0.3, seed=7)
    assert stalled.mismatch is None, stalled.mismatch
    bulk = sim.simulate_bulk(tmp_path / "rtl", x_int, expected, 0.2, 0.2, seed=3)
    assert bulk.mismatch is None, bulk.mismatch
    write_tree(tmp_path / "fw", emit_c.emit(graph))
    require_tool("gcc")
    assert np.array_equal(runner.run_host(tmp_path / "fw", x, expected.shape[1]), expected)


def test_solver_folds_the_layers_after_an_exit_for_the_inputs_that_stay():
    from xnorkit.hw.folding import exit_segments, layer_cycles, solve

    graph = branchy_graph()
    [(always, branch)] = exit_segments(graph)
    assert branch == "act0" and always == {"quant", "fc0", "sign0", "fc_exit"}
    plain, aware = solve(graph, 16), solve(graph, 16, exit_rate=0.75)
    for node in graph.matmuls():
        cycles = layer_cycles(graph, node, aware[node.name])
        if node.name in always:
            assert aware[node.name] == plain[node.name]
        else:  # folded for a quarter of the inputs: four times the interval, at most
            assert layer_cycles(graph, node, plain[node.name]) < cycles <= 64
    with pytest.raises(XnorkitError, match="exit rate must be at least 0 and below 1"):
        solve(graph, 16, exit_rate=1.0)
    with pytest.raises(XnorkitError, match="an exit rate needs early exits"):
        solve(replace(graph, exits=(), outputs=graph.outputs[1:], float_outputs=graph.float_outputs[1:]), 16, 0.5)


def test_rtl_needs_exits_set_for_several_outputs():
    from xnorkit.hw import emit_sv
    from xnorkit.hw.folding import solve

    graph = replace(branchy_graph(margin=14), exits=())
    with pytest.raises(XnorkitError, match="early exits that stop the inference.*set their margins first"):
        emit_sv.emit(graph, solve(graph, 64))


def test_without_exits_every_output_is_computed(tmp_path):
    require_tool("gcc")
    graph = replace(branchy_graph(margin=14), exits=())
    write_tree(tmp_path / "fw", emit_c.emit(graph))
    x = random_inputs(graph, 50)
    expected = golden.predict_int(graph, x)
    assert expected.shape[1] == 20
    assert np.array_equal(runner.run_host(tmp_path / "fw", x, 20), expected)


def test_calibrated_margin_is_the_smallest_within_the_allowance():
    from xnorkit.numerics import calibrate_margin

    margins = np.array([9, 7, 7, 5, 3, 1])
    exit_right = np.array([1, 1, 0, 1, 0, 0], bool)
    final_right = np.ones(6, bool)
    assert calibrate_margin(margins, exit_right, final_right, 0.0) == 8 + 1  # only margin 9 keeps every answer
    assert calibrate_margin(margins, exit_right, final_right, 0.2) == 5  # 9, 7, 7, 5 leave: one wrong, 1/6
    assert calibrate_margin(margins, exit_right, final_right, 1.0) == 1
    assert calibrate_margin(margins, np.zeros(6, bool), final_right, 0.0) == 10  # nothing may leave


def test_exits_command_sets_calibrates_and_refuses(tmp_path):
    from tests.test_cli import xnorkit
    from xnorkit import build
    from xnorkit.quant_train import config, data, train

    b = tmp_path / "b"
    ir.save(branchy_graph(), b)
    proc = xnorkit("exits", b, "--margin", "3", "--margin", "4")
    assert proc.returncode == 2 and "has 1 early exit(s) (acc_exit); give one margin each, not 2" in proc.stderr
    assert xnorkit("exits", b, "--margin", "7").returncode == 0 and build.load(b).exits == (("acc_exit", 7),)
    assert xnorkit("exits", b, "--off").returncode == 0 and build.load(b).exits == ()
    assert xnorkit("exits", b).returncode == 2

    cfg = config.Config(model=config.ModelConfig(kind="blenet", weights="int2", a_bits=2, exit_weights=[1.0]),
                        train=config.TrainConfig(epochs=2, batch_size=64))
    digits = data.load_digits()
    model, metrics = train.train(cfg, digits)
    train.save_run(model, metrics, cfg, digits, tmp_path / "run")
    build.compile_model(tmp_path / "run" / "model.onnx", tmp_path / "blenet")
    proc = xnorkit("exits", tmp_path / "blenet", "--calibrate", "digits", "--allowance", "0.05")
    assert proc.returncode == 0, proc.stderr
    graph = build.load(tmp_path / "blenet")
    assert len(graph.exits) == 1 and "margin >=" in proc.stdout
    require_tool("gcc")
    x = digits.x_test.reshape(-1, *graph.input_shape)
    expected = golden.predict_int(graph, x)
    assert np.array_equal(build.predict(tmp_path / "blenet", "c", x), expected)
    assert set(np.unique(expected[:, -1])) <= {0, 1} and (expected[:, -1] == 0).any()
    # the trained convolutional B-LeNet in RTL: the exit branches off a pooled feature map, whose frames wait in
    # front of the gate; the layers after it folded for the half of the inputs that stay
    from xnorkit.sim import runner as sim

    require_tool("verilator")
    assert xnorkit("hw", tmp_path / "blenet", "--exit-rate", "1.5").returncode == 2
    proc = xnorkit("hw", tmp_path / "blenet", "--target-cycles", "64", "--exit-rate", "0.5")
    assert proc.returncode == 0, proc.stderr
    design = json.loads((tmp_path / "blenet" / "rtl" / "design.json").read_text())
    assert design["exit_interval"] < design["initiation_interval"]
    result = sim.simulate_bulk(tmp_path / "blenet" / "rtl", golden.quantize_input(graph, x), expected, 0.2, 0.2)
    assert result.mismatch is None, result.mismatch
