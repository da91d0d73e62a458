"""xnorkit/passes.py: constant and unread hidden neurons leave the IR, and the golden outputs stay the same."""

from dataclasses import replace

import numpy as np
import pytest

from tests.conftest import random_graph, random_inputs
from xnorkit import golden, passes
from xnorkit.errors import XnorkitError
from xnorkit.ir import MatMul, Threshold, inputs_of, verify


def _with_weights(graph, name, weights):
    nodes = tuple(replace(n, weights=weights) if n.name == name else n for n in graph.nodes)
    return replace(graph, nodes=nodes)


@pytest.mark.parametrize("w_bits,a_bits", [(1, 1), (2, 2), (3, 1)])
def test_pruned_neurons_leave_and_outputs_stay(w_bits, a_bits):
    graph = random_graph([24, 40, 32, 20, 10], seed=4, w_bits=w_bits, a_bits=a_bits)
    rng = np.random.default_rng(1)
    if w_bits > 1:  # structured pruning: whole rows (neurons) and a column (an input nothing reads) at zero
        fc0 = graph.node("fc0").weights.copy()
        fc0[rng.choice(40, 10, replace=False)] = 0
        fc1 = graph.node("fc1").weights.copy()
        fc1[rng.choice(32, 6, replace=False)] = 0
        fc1[:, 3] = 0
        graph = _with_weights(_with_weights(graph, "fc0", fc0), "fc1", fc1)
    x = random_inputs(graph, 300)
    before = golden.predict_int(graph, x)
    pruned, removed = passes.remove_constant_neurons(graph)
    verify(pruned)
    assert np.array_equal(golden.predict_int(pruned, x), before)
    assert np.array_equal(golden.predict_float(pruned, x), golden.predict_float(graph, x))
    # random_graph makes each hidden layer's first and last neuron constant (always / never fires); the last
    # hidden layer's stay (removing them would move the output accumulators)
    assert removed["sign0"] >= (11 if w_bits > 1 else 2) and removed["sign1"] >= (7 if w_bits > 1 else 2)
    assert "sign2" not in removed
    kept = [n.out_features for n in pruned.nodes if isinstance(n, MatMul)]
    assert kept == [40 - removed["sign0"], 32 - removed["sign1"], 20, 10]
    assert pruned.tensor_shapes["act0"] == (kept[0],)
    assert pruned.node("fc1").in_features == kept[0]


def test_the_output_layer_keeps_its_channels_and_a_clean_graph_is_unchanged():
    graph = random_graph([16, 20, 10], seed=2)
    pruned, removed = passes.remove_constant_neurons(graph)
    assert pruned.node("fc1").out_features == 10
    # constant neurons feeding the output layer would move the output accumulators: they stay
    assert removed == {}
    thresholds = graph.node("sign0").thresholds.copy()
    ranges = np.array([[-16 * 31, 16 * 31]] * 20)
    thresholds[1:-1] = ranges[1:-1, :1] + 1  # no neuron constant now
    clean = replace(graph, nodes=tuple(replace(n, thresholds=thresholds) if isinstance(n, Threshold) else n
                                      for n in graph.nodes))
    assert passes.remove_constant_neurons(clean)[1] == {}


def test_backends_build_the_pruned_network(tmp_path):
    """generate_firmware and generate_hw read the pass's graph: fewer neurons, the same outputs."""
    from tests.conftest import require_tool
    from xnorkit import build, ir

    graph = random_graph([24, 40, 32, 20, 10], seed=4, w_bits=2, a_bits=1)
    fc0 = graph.node("fc0").weights.copy()
    fc0[:8] = 0  # 8 neurons pruned whole (plus random_graph's constant ones)
    graph = _with_weights(graph, "fc0", fc0)
    ir.save(graph, tmp_path)
    design = build.generate_hw(tmp_path)
    assert design["layers"][0]["mh"] < 40 - 8
    from xnorkit.hw.folding import Fold

    # a folding written for the layers as compiled (40 neurons: PE 4 of fc0) is refused with the numbers, never
    # built for another graph than the one every backend reads
    as_compiled = {"fc0": Fold(4, 8), "fc1": Fold(4, 8), "fc2": Fold(2, 4), "fc3": Fold(2, 4)}
    with pytest.raises(XnorkitError, match=r"folding of 'fc0'.*constant neurons: outputs fc0 40 -> "):
        build.generate_hw(tmp_path, as_compiled)
    require_tool("gcc")
    from xnorkit.firmware import runner

    build.generate_firmware(tmp_path)
    x = random_inputs(graph, 100)
    assert np.array_equal(runner.run_host(tmp_path / "firmware", x, 10), golden.predict_int(graph, x))


def test_signed_outputs_with_a_constant_level_of_minus_one():
    """A signed multi-threshold output (base -2): a neuron stuck at level -1 is as constant as any other."""
    from xnorkit import numerics
    from xnorkit.ir import IntType

    graph = random_graph([16, 24, 20, 10], seed=5, a_bits=2)
    signed = IntType(2, True)
    act = graph.node("sign0")
    fc0 = graph.node("fc0")
    lo, hi = numerics.accumulator_range(fc0.weights[1], fc0.in_dtype)
    thresholds = act.thresholds.copy()
    thresholds[1] = [lo, hi + 1, hi + 1]  # always one level up from -2: -1
    fc1 = graph.node("fc1")
    nodes = tuple(replace(n, thresholds=thresholds, base=-2, out_dtype=signed) if n.name == "sign0" else
                  replace(n, in_dtype=signed, acc_dtype=numerics.accumulator_type(n.weights, signed))
                  if n.name == "fc1" else n for n in graph.nodes)
    types = {**graph.tensor_types, "act0": signed,
             "acc1": numerics.accumulator_type(fc1.weights, signed)}
    graph = replace(graph, nodes=nodes, tensor_types=types)
    verify(graph)
    x = random_inputs(graph, 300)
    pruned, removed = passes.remove_constant_neurons(graph)
    assert np.array_equal(golden.predict_int(pruned, x), golden.predict_int(graph, x))
    assert removed["sign0"] == 3  # always, never and the one at -1


def test_the_pipeline_is_the_backend_graph(tmp_path):
    from xnorkit import build, ir

    graph = random_graph([24, 40, 32, 20, 10], seed=4)
    ir.save(graph, tmp_path)
    backend, piped = build.backend_graph(tmp_path), passes.pipeline(graph)
    assert _mac_layers(backend) == _mac_layers(piped) == _mac_layers(passes.remove_constant_neurons(graph)[0])
    assert _mac_layers(backend) != _mac_layers(graph)
    x = random_inputs(graph, 100)
    assert np.array_equal(golden.predict_int(backend, x), golden.predict_int(graph, x))
    clean = random_graph([24, 40, 10], seed=4, constant_neurons=False)
    assert passes.pipeline(clean) is clean or _mac_layers(passes.pipeline(clean)) == _mac_layers(clean)


@pytest.fixture(scope="module")
def constant_neuron_build(trained_build, tmp_path_factory):
    """The trained network with 5 of its first hidden layer's neurons made constant (batch-norm offsets far
    outside the accumulator's range, as training leaves dead neurons), compiled."""
    import onnx
    from onnx import numpy_helper

    from xnorkit import build

    proto = onnx.load(str(trained_build / "model.onnx"))
    bias_name = next(n for n in proto.graph.node if n.op_type == "BatchNormalization").input[2]
    k = next(i for i, t in enumerate(proto.graph.initializer) if t.name == bias_name)
    bias = numpy_helper.to_array(proto.graph.initializer[k]).copy()
    bias[:3], bias[3:5] = 1e4, -1e4
    proto.graph.initializer[k].CopyFrom(numpy_helper.from_array(bias, bias_name))
    out = tmp_path_factory.mktemp("constant")
    onnx.save(proto, str(out / "model.onnx"))
    build.compile_model(out / "model.onnx", out / "build")
    return out / "build"


def _mac_layers(graph) -> list[tuple[str, int, int]]:
    return [(m.name, m.in_features, m.out_features) for m in graph.matmuls()]


def test_every_backend_estimate_and_report_read_the_backend_graph(capsys, constant_neuron_build, trained_build):
    """hw --board (fit's estimate), hw --backend hls, synth, firmware, inspect and report of a network whose
    constant neurons the passes remove: each reads the same layers (this failed with `folding of 'fc0': PE=..
    must divide its 32 outputs` when the estimate read the compiled graph)."""
    import json
    import shutil

    from tests.conftest import assert_refused, require_tool, run_cli
    from xnorkit import build

    b = constant_neuron_build.parent / "b"
    shutil.copytree(constant_neuron_build, b)
    layers = _mac_layers(build.backend_graph(b))
    assert layers[0][2] == _mac_layers(build.load(b))[0][2] - 5
    code, out, err = run_cli(capsys, "hw", b, "--board", "icebreaker", "--backend", "hls")
    assert code == 0, err
    out = " ".join(out.split())  # rich wraps long lines
    assert "icebreaker: estimated" in out and "bit-exact against golden" in out
    design = json.loads((b / "rtl" / "design.json").read_text())
    assert [(ly["name"], ly["mw"], ly["mh"]) for ly in design["layers"] if ly["kind"] == "mvtu"] == layers
    code, out, err = run_cli(capsys, "inspect", b, "--json")
    assert code == 0, err
    shown = [(r["name"], r["shape"]) for r in json.loads(out)["layers"] if r["op"] == "MatMul"]
    assert [name for name, _ in shown] == [name for name, _, _ in layers]
    assert all(str(mh) in shape for (_, shape), (_, _, mh) in zip(shown, layers, strict=True))
    require_tool("gcc")
    code, out, err = run_cli(capsys, "firmware", b)
    assert code == 0, err
    header = (b / "firmware" / "model.h").read_text()  # named after model.onnx
    assert f"{layers[0][2]}" in (b / "firmware" / "model.c").read_text() and "model_infer" in header
    x = np.load(trained_build / "x.npy")
    from xnorkit.firmware import runner

    assert np.array_equal(runner.run_host(b / "firmware", x, 10), golden.predict_int(build.load(b), x))
    code, out, err = run_cli(capsys, "synth", b, "--board", "icebreaker", "--no-place-route")
    assert code == 0, err
    code, out, err = run_cli(capsys, "report", b, "-o", b.parent / "report")
    assert code == 0, err
    report = (b.parent / "report" / "report.md").read_text()
    assert all(f"| {name} |" in report for name, _, _ in layers)
    # a folding written for the compiled layers is refused with the numbers
    (b.parent / "fold.json").write_text(json.dumps({n: {"pe": 32 if i == 0 else 1, "simd": 1}
                                                    for i, (n, _, _) in enumerate(_mac_layers(build.load(b)))}))
    assert_refused(run_cli(capsys, "hw", b, "--fold", b.parent / "fold.json"), "constant neurons: outputs")


def test_the_exit_schedule_puts_each_exits_layers_first():
    from tests.test_exits import branchy_graph, two_exit_graph

    plain = random_graph([16, 20, 10], seed=2)
    groups, ordered = passes.exit_schedule(plain)
    assert groups == [] and [n.name for n in ordered] == [n.name for n in plain.nodes]
    for graph in (branchy_graph(margin=3), two_exit_graph()):
        groups, ordered = passes.exit_schedule(graph)
        assert len(groups) == len(graph.exits) and sorted(n.name for n in ordered) == sorted(n.name for n in
                                                                                              graph.nodes)
        position = {n.name: k for k, n in enumerate(ordered)}
        for k, (output, _) in enumerate(graph.exits):
            assert graph.producer(output).name in groups[k]  # the exit's own layer in its group
            later = [n.name for n in graph.nodes if not any(n.name in g for g in groups[:k + 1])]
            assert all(position[a] < position[b] for a in groups[k] for b in later)
        for node in ordered:  # still a topological order
            assert all(position[graph.producer(t).name] < position[node.name]
                       for t in inputs_of(node) if graph.producer(t) is not None)


def test_each_mac_layer_fuses_the_threshold_that_reads_it():
    from tests.test_exits import branchy_graph

    graph = random_graph([16, 20, 12, 10], seed=3)
    layers = [n for n in graph.nodes if isinstance(n, MatMul)]
    fused = [passes.fused_threshold(graph, layer) for layer in layers]
    assert [t.input for t in fused[:-1]] == [layer.output for layer in layers[:-1]]
    assert all(isinstance(t, Threshold) for t in fused[:-1]) and fused[-1] is None  # the output's accumulators
    exits = branchy_graph(margin=3)  # an exit's head: its accumulators are an output, nothing fused
    for output, _ in exits.exits:
        assert passes.fused_threshold(exits, exits.producer(output)) is None
