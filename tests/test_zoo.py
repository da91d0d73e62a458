"""Every zoo model, trained for one short epoch on digits, exports to QONNX and compiles; the golden
model's argmax equals Brevitas' on every test input (every exit of B-LeNet), and the generated C on the
host and the HLS C++ under g++ compute the golden model's integers on every test input."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import IN_CI
from xnorkit import build, compare, golden, tools
from xnorkit.firmware import runner as fw_runner
from xnorkit.quant_train import config, data, train, zoo


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


CASES = [(name, "binary", 1, "learned") for name in zoo.NAMES] + [
    ("tfc", "int2", 2, "learned"), ("lenet5", "ternary", 2, "learned"), ("resnet", "int4", 4, "learned"),
    ("squeezenet", "int2", 2, "learned"),
    ("sfc", "xnor", 1, "learned"), ("lenet5", "xnor", 1, "learned"),  # XNOR-Net: alpha per output channel
    ("tfc", "dorefa2", 2, "dorefa"), ("cnv", "dorefa4", 3, "dorefa")]  # DoReFa weights and activations


@pytest.mark.parametrize("name,weights,a_bits,activations", CASES)
def test_zoo_model_trains_exports_and_compiles(tmp_path, digits, name, weights, a_bits, activations):
    cfg = config.Config(model=config.ModelConfig(kind=name, weights=weights, a_bits=a_bits, activations=activations),
                        train=config.TrainConfig(epochs=1, batch_size=64))
    model, metrics = train.train(cfg, digits)
    train.save_run(model, metrics, cfg, digits, tmp_path)
    graph = build.compile_model(tmp_path / "model.onnx", tmp_path / "build")
    x = digits.x_test.reshape(-1, *train.input_shape(cfg, digits))
    ref = train.evaluate(model, x, every_exit=True)
    ours = golden.predict_float(graph, x)
    assert ours.shape == ref.shape
    for part in range(ref.shape[1] // digits.num_classes):  # each output's classes
        cols = slice(part * digits.num_classes, (part + 1) * digits.num_classes)
        assert np.array_equal(ours[:, cols].argmax(1), ref[:, cols].argmax(1))
    assert compare.float_rows_agree(ours, ref).all(), compare.max_relative_error(ours, ref)
    if tools.available("gcc") or IN_CI:
        build.generate_firmware(tmp_path / "build")
        expected = golden.predict_int(graph, x)
        assert np.array_equal(fw_runner.run_host(tmp_path / "build" / "firmware", x, expected.shape[1]), expected)
    _check_hls(tmp_path / "build", graph, x)


def _check_hls(build_dir, graph, x) -> None:
    """The HLS C++ under g++ equals golden on every test input. B-LeNet's exit gets the median margin of these
    inputs (the RTL and HLS backends build several outputs as early exits)."""
    from dataclasses import replace

    from xnorkit import numerics
    from xnorkit.hw import emit_hls, folding
    from xnorkit.outputs import write_tree
    from xnorkit.sim import hls

    if len(graph.outputs) > 1 and not graph.exits:
        values = golden.run(graph, x)
        graph = replace(graph, exits=tuple((o, int(np.median(numerics.exit_margin(graph.class_scores(o, values[o])))))
                                           for o in graph.outputs[:-1]))
    write_tree(build_dir / "hls", emit_hls.emit(graph, folding.solve(graph, 256)))
    expected = golden.predict_int(graph, x)
    if graph.exits:
        assert 0 < (expected[:, -1] == 0).mean() < 1
    assert np.array_equal(hls.run(build_dir / "hls", golden.quantize_input(graph, x), expected.shape[1]), expected)
