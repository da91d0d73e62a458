"""The generated RTL under cocotb: bit-exact against golden with random stalls, and the measured
back-to-back cycles per inference equal to the analytical count of the folding."""

import numpy as np
import pytest

from tests.conftest import random_cnn_graph, random_graph, random_inputs, require_tool
from tests.test_hw import FOLDINGS
from xnorkit import golden
from xnorkit.errors import XnorkitError
from xnorkit.hw import emit_sv, lowering
from xnorkit.hw import folding as fold_mod
from xnorkit.ir import Graph, MaxPool, Transpose
from xnorkit.outputs import write_tree
from xnorkit.sim import runner


def _simulate(tmp_path, graph, folding, count, simulator="verilator", stall=0.3, waves=False):
    require_tool("verilator" if simulator == "verilator" else "iverilog")
    write_tree(tmp_path / "rtl", emit_sv.emit(graph, folding))
    x_int = golden.quantize_input(graph, random_inputs(graph, count))
    expected = golden.predict_from_int(graph, x_int)
    stalled = runner.simulate(tmp_path / "rtl", x_int, expected, simulator, stall, stall, seed=7, waves=waves)
    clean = runner.simulate(tmp_path / "rtl", x_int, expected, simulator, rebuild=False)
    return expected, stalled, clean


# the fully parallel folding builds slowly; tests/test_rtl_layers.py runs a fully parallel unit by default
@pytest.mark.parametrize("name", [n if n != "full" else pytest.param(n, marks=pytest.mark.slow) for n in FOLDINGS])
def test_folding_sweep_bit_exact_and_cycles_match(tmp_path, small_graph, name):
    folding = FOLDINGS[name]
    count = 6 if name == "pe1_simd1" else 24
    expected, stalled, clean = _simulate(tmp_path, small_graph, folding, count)
    assert stalled.mismatch is None and clean.mismatch is None
    assert np.array_equal(stalled.outputs, expected) and np.array_equal(clean.outputs, expected)
    assert clean.steady_state_cycles == fold_mod.initiation_interval(small_graph, folding)


def test_mismatch_is_reported_with_index_and_values(tmp_path, small_graph):
    require_tool("verilator")
    write_tree(tmp_path / "rtl", emit_sv.emit(small_graph, FOLDINGS["gather"]))
    x_int = golden.quantize_input(small_graph, random_inputs(small_graph, 4))
    expected = golden.predict_from_int(small_graph, x_int)
    expected[2, 3] += 1
    heard: list[tuple[int, int]] = []
    result = runner.simulate(tmp_path / "rtl", x_int, expected, progress=lambda *told: heard.append(told))
    assert heard and heard == sorted(heard) and heard[-1] == (4, 4)  # outputs simulated, as they came
    assert result.mismatch is not None
    assert "first: input 2, output 3" in result.mismatch and f"golden {expected[2, 3]}" in result.mismatch


def test_icarus_gives_the_same_outputs_as_verilator(tmp_path, small_graph):
    folding = FOLDINGS["gather"]
    expected, stalled, clean = _simulate(tmp_path / "v", small_graph, folding, 8)
    _, icarus_stalled, icarus_clean = _simulate(tmp_path / "i", small_graph, folding, 8, simulator="icarus",
                                                waves=True)
    assert icarus_stalled.mismatch is None
    # the waveform of the run with stalls, beside rtl/, where `xnorkit sim --waves` says it is
    assert icarus_stalled.waves.parent == tmp_path / "i" and icarus_stalled.waves.stat().st_size > 1000
    assert np.array_equal(icarus_stalled.outputs, stalled.outputs)
    assert icarus_clean.steady_state_cycles == clean.steady_state_cycles


@pytest.mark.slow  # a minute; the default suite simulates the embedded default network itself (below)
def test_digits_sized_network_at_the_default_folding(tmp_path):
    graph = random_graph([64, 256, 256, 256, 10], seed=11)
    folding = fold_mod.solve(graph, 128)
    expected, stalled, clean = _simulate(tmp_path, graph, folding, 24)
    assert stalled.mismatch is None and np.array_equal(clean.outputs, expected)
    assert clean.steady_state_cycles == 128


@pytest.mark.parametrize(("w_bits", "a_bits", "fold"),
                         [(2, 2, (2, 4)), (3, 2, (4, 8)), (1, 3, (1, 2)), (2, 1, (8, 16))])
def test_low_bit_networks_bit_exact(tmp_path, w_bits, a_bits, fold):
    """k-bit weights (signed, zeros included) and multi-threshold activations, several foldings."""
    graph = random_graph([16, 32, 16], seed=w_bits * 10 + a_bits, w_bits=w_bits, a_bits=a_bits)
    pe, simd = fold
    folding = {"fc0": fold_mod.Fold(pe, simd), "fc1": fold_mod.Fold(pe if 16 % pe == 0 else 1, pe)}
    expected, stalled, clean = _simulate(tmp_path, graph, folding, 12)
    assert stalled.mismatch is None and np.array_equal(stalled.outputs, expected)
    assert clean.steady_state_cycles == fold_mod.initiation_interval(graph, folding)


def test_bulk_harness_equals_cocotb_outputs_and_cycles(tmp_path):
    """The compiled C++ harness runs the same RTL: the same outputs and, back to back, the same cycles."""
    graph = random_graph([16, 64, 32, 10], seed=5, w_bits=2, a_bits=2)
    folding = {"fc0": fold_mod.Fold(4, 4), "fc1": fold_mod.Fold(2, 4), "fc2": fold_mod.Fold(1, 2)}
    expected, stalled, clean = _simulate(tmp_path, graph, folding, 10)
    x_int = golden.quantize_input(graph, random_inputs(graph, 10))
    bulk = runner.simulate_bulk(tmp_path / "rtl", x_int, expected)
    assert bulk.mismatch is None and np.array_equal(bulk.outputs, clean.outputs)
    assert bulk.steady_state_cycles == clean.steady_state_cycles == fold_mod.initiation_interval(graph, folding)
    assert bulk.latency == clean.latency
    bulk_stalled = runner.simulate_bulk(tmp_path / "rtl", x_int, expected, 0.3, 0.3, seed=3)
    assert bulk_stalled.mismatch is None
    wrong = expected.copy()
    wrong[4, 1] -= 1
    report = runner.simulate_bulk(tmp_path / "rtl", x_int, wrong).mismatch
    assert report == f"1 of 10 outputs differ; first: input 4, output 1: rtl {expected[4, 1]} golden {wrong[4, 1]}"


CNN_CASES = {  # (w_bits, a_bits, target cycles): foldings from serial to a whole window per beat
    "w1a1_serial": (1, 1, 5000),
    "w1a1_balanced": (1, 1, 600),
    "w1a1_parallel": (1, 1, 1),
    "w2a2": (2, 2, 300),
    "w3a1": (3, 1, 2000),
    "w1a3": (1, 3, 100),
}
# whole-window units run alone in tests/test_rtl_layers.py; w2a2 keeps multi-bit activations in the default suite
SLOW_CNN_CASES = ("w1a1_serial", "w3a1", "w1a1_parallel", "w1a3")


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW_CNN_CASES else c
                                  for c in CNN_CASES])
def test_cnn_bit_exact_with_window_pool_and_flatten(tmp_path, case):
    """Padded convolutions (bipolar windows padded with the real 0), 2x2 max-pooling, a flatten and a fully
    connected layer: bit-exact with random backpressure; back to back at the analytical interval."""
    w_bits, a_bits, target = CNN_CASES[case]
    graph = random_cnn_graph(w_bits=w_bits, a_bits=a_bits, seed=len(case))
    folding = fold_mod.solve(graph, target)
    expected, stalled, clean = _simulate(tmp_path, graph, folding, 4)
    assert stalled.mismatch is None and np.array_equal(clean.outputs, expected)
    x_int = golden.quantize_input(graph, random_inputs(graph, 30, seed=2))
    expected = golden.predict_from_int(graph, x_int)
    bulk = runner.simulate_bulk(tmp_path / "rtl", x_int, expected, 0.2, 0.2, seed=1)
    assert bulk.mismatch is None
    bulk = runner.simulate_bulk(tmp_path / "rtl", x_int, expected)
    design = emit_sv.design_info(graph, folding)
    assert bulk.steady_state_cycles == design["initiation_interval"] == fold_mod.initiation_interval(graph, folding)


@pytest.mark.parametrize(("kind", "w_bits", "a_bits", "target"),
                         # cnv, resnet and squeezenet build Verilator models of a minute to several each (make
                         # test-all); the default suite keeps LeNet-5, and each layer of the others (fork, sum,
                         # concatenation included) runs alone in tests/test_rtl_layers.py
                         [("lenet5", 1, 1, 256), pytest.param("cnv", 2, 2, 256, marks=pytest.mark.slow),
                          pytest.param("resnet", 1, 1, 256, marks=pytest.mark.slow),
                          pytest.param("resnet", 2, 2, 64, marks=pytest.mark.slow),
                          pytest.param("squeezenet", 1, 1, 256, marks=pytest.mark.slow),
                          pytest.param("squeezenet", 2, 2, 1024, marks=pytest.mark.slow)])
def test_zoo_cnn_compiles_to_bit_exact_rtl(tmp_path, kind, w_bits, a_bits, target):
    """A zoo CNN exported by Brevitas, compiled, generated and simulated: RTL = golden on every input, with
    random stalls, and the analytical interval back to back. Residual nets exercise forks, sums, standalone
    thresholds and sum pooling; SqueezeNet's fire modules channel concatenation."""
    import torch

    from tests.conftest import check_exact
    from tests.test_hw import lint
    from xnorkit.quant_train import data, zoo

    torch.manual_seed(0)
    digits = data.load_digits()
    x = digits.x_test[:40].reshape(-1, 1, 8, 8)
    graph, _ = check_exact(zoo.build(kind, w_bits, a_bits, (1, 8, 8), 10, 5), x, tmp_path / "m")
    folding = fold_mod.solve(graph, target)
    write_tree(tmp_path / "rtl", emit_sv.emit(graph, folding))
    assert lint(tmp_path / "rtl") == ""
    x_int = golden.quantize_input(graph, x)
    expected = golden.predict_from_int(graph, x_int)
    result = runner.simulate(tmp_path / "rtl", x_int[:12], expected[:12], "verilator", 0.2, 0.2, seed=4)  # cocotb
    assert result.mismatch is None and np.array_equal(result.outputs, expected[:12])
    result = runner.simulate_bulk(tmp_path / "rtl", x_int, expected, 0.2, 0.2, seed=4)
    assert result.mismatch is None and np.array_equal(result.outputs, expected)
    clean = runner.simulate_bulk(tmp_path / "rtl", x_int, expected)
    assert clean.steady_state_cycles == emit_sv.design_info(graph, folding)["initiation_interval"]


def test_icarus_equals_verilator_on_the_digits_default(tmp_path):
    """The embedded default network (digits, the demo's configuration), one training epoch: the same RTL
    under Icarus (cocotb, with stalls) and Verilator (the C++ harness) gives the same integers as golden."""
    require_tool("iverilog")
    from xnorkit import build
    from xnorkit.quant_train import config, data, train

    digits = data.load_digits()
    cfg = config.Config()
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 1})})
    model, _ = train.train(cfg, digits)
    train.export_qonnx(model, (64,), tmp_path / "m.onnx")
    graph = build.compile_model(tmp_path / "m.onnx", tmp_path / "b")
    info = build.generate_hw(tmp_path / "b")
    x_int = golden.quantize_input(graph, digits.x_test[:24])
    expected = golden.predict_from_int(graph, x_int)
    icarus = runner.simulate(tmp_path / "b" / "rtl", x_int, expected, "icarus", 0.2, 0.2, seed=2)
    verilator = runner.simulate_bulk(tmp_path / "b" / "rtl", x_int, expected)
    assert icarus.mismatch is None and verilator.mismatch is None
    assert np.array_equal(icarus.outputs, verilator.outputs)
    assert verilator.steady_state_cycles == info["initiation_interval"]


@pytest.mark.parametrize("perm", [(1, 2, 0), (2, 1, 0), (0, 2, 1)])
def test_transpose_before_flatten_is_a_column_order(tmp_path, perm):
    """A transpose of a feature map followed by a flatten only reorders the fully connected layer's inputs:
    the emitter lays its weight columns out in stream order, and the RTL equals golden."""
    require_tool("verilator")
    graph = random_cnn_graph(channels=(4,), transpose=perm, seed=3)
    folding = fold_mod.solve(graph, 256)
    write_tree(tmp_path / "rtl", emit_sv.emit(graph, folding))
    x_int = golden.quantize_input(graph, random_inputs(graph, 20))
    expected = golden.predict_from_int(graph, x_int)
    assert runner.simulate_bulk(tmp_path / "rtl", x_int, expected, 0.2, 0.2, seed=1).mismatch is None


def test_a_transposed_map_read_by_a_pool_is_refused():
    graph = random_cnn_graph(channels=(4,), seed=3)
    nodes = list(graph.nodes)
    pool = next(i for i, n in enumerate(nodes) if n.name == "pool0")
    nodes.insert(pool, Transpose("transpose", "cout0", "cout0_t", (0, 2, 1)))
    nodes[pool + 1] = MaxPool("pool0", "cout0_t", "pool0", (2, 2), (2, 2), (0, 0, 0, 0))
    broken = Graph(graph.input, graph.input_shape, tuple(nodes), graph.outputs, graph.float_outputs,
                   graph.tensor_types | {"cout0_t": graph.tensor_types["cout0"]},
                   graph.tensor_shapes | {"cout0_t": graph.tensor_shapes["cout0"]})
    with pytest.raises(XnorkitError, match="'pool0' reads a transposed feature map"):
        lowering.lower(broken, fold_mod.solve(graph, 256))
