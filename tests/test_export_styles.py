"""QONNX as the ecosystem exports it (tests/export_styles.py): each style compiles; every quantized tensor
equals qonnx's executor exactly, dequantized outputs agree with qonnx and with the PyTorch model within
1e-5 relative, argmax equal; the C library, the RTL and the HLS C++ equal golden exactly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from tests import export_styles as styles
from xnorkit import analysis, build, compare, golden
from xnorkit.errors import XnorkitError
from xnorkit.ir import BIPOLAR, Dequantize, Quantize, Reshape, Threshold, Transpose
from xnorkit.quant_train import train

STYLES = {
    "bnn_pynq_tfc_w1a1": lambda: styles.bnn_pynq_tfc(0),
    "bnn_pynq_tfc_w1a2": lambda: styles.bnn_pynq_tfc(1, a_bits=2, w_bits=1),
    "bnn_pynq_tfc_w2a2": lambda: styles.bnn_pynq_tfc(2, a_bits=2, w_bits=2),
    "plain_end": lambda: styles.plain_end(3),
    "softmax_end": lambda: styles.plain_end(4, torch.nn.Softmax(dim=1)),
    "log_softmax_end": lambda: styles.plain_end(5, torch.nn.LogSoftmax(dim=1)),
    "normalized_sign": lambda: styles.normalized_sign(6),
    "channels_last_cnv": lambda: styles.channels_last_cnv(7),
    "bnn_pynq_cnv_w1a1": lambda: styles.bnn_pynq_cnv(9),
    "bnn_pynq_cnv_w2a2": lambda: styles.bnn_pynq_cnv(10, a_bits=2, w_bits=2),
    "bnn_pynq_sfc_w1a1": lambda: styles.bnn_pynq_sfc(11),
}
RTL_DEFAULT = ["bnn_pynq_tfc_w1a1", "normalized_sign", "bnn_pynq_cnv_w1a1", "channels_last_cnv"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, tuple]:
    """Every style exported once as a user would (brevitas.export.export_qonnx) and compiled:
    name -> (model, sample inputs, build folder)."""
    out = tmp_path_factory.mktemp("export_styles")
    made = {}
    for name, make in STYLES.items():
        model, x = make()
        folder = out / name
        folder.mkdir()
        styles.export(model, x, folder / "m.onnx")
        build.compile_model(folder / "m.onnx", folder / "build")
        made[name] = (model, x, folder / "build")
    return made


def assert_exact(model, x: np.ndarray, build_dir: Path) -> None:
    graph = build.load(build_dir)
    ours = golden.predict_float(graph, x)
    reference = train.evaluate(model, x)
    assert compare.float_rows_agree(ours, reference).all(), compare.max_relative_error(ours, reference)
    assert np.array_equal(ours.argmax(1), reference.argmax(1))
    diffs, compared = analysis.diff_against_qonnx(graph, analysis.qonnx_tensors(build_dir, x), x)
    assert diffs == [] and compared >= 3


@pytest.mark.parametrize("style", list(STYLES))
def test_style_is_exact_against_qonnx_and_pytorch(corpus, style):
    assert_exact(*corpus[style])


def test_bnn_pynq_input_keeps_its_prologue_and_quantizes_to_signs(corpus):
    """flatten, 2x - 1, sign: the Quantize keeps Mul and Sub in float, the flatten follows on the bits."""
    graph = build.load(corpus["bnn_pynq_tfc_w1a1"][2])
    first, flatten = graph.nodes[:2]
    assert isinstance(first, Quantize) and first.dtype == BIPOLAR and first.steps == ("mul", "sub")
    assert [float(c) for c in first.constants] == [2.0, 1.0]
    assert isinstance(flatten, Reshape) and flatten.shape == (36,)
    x = np.array([[0.5, 0.49999997, 0.0, 1.0] + [0.0] * 32], dtype=np.float32).reshape(1, 1, 6, 6)
    assert golden.quantize_input(graph, x)[0, :4].tolist() == [1, 0, 0, 1]  # 2 * 0.5 - 1 = 0 is +1


def test_bnn_pynq_cnv_input_is_8_bit_with_a_power_of_two_scale(corpus):
    """2x - 1 kept in float before an 8-bit quantizer on [-1, 1 - 2^-7]: pixel p becomes round(256 p) - 128."""
    graph = build.load(corpus["bnn_pynq_cnv_w1a1"][2])
    q = graph.nodes[0]
    assert isinstance(q, Quantize) and q.steps == ("mul", "sub") and (q.dtype.name(), q.narrow) == ("int8", False)
    assert float(q.scale) == 2.0 ** -7
    pixels = np.array([0.0, 0.25, 0.5, 1.0, 0.00390625], dtype=np.float32)
    x = np.zeros((1, 3, 32, 32), dtype=np.float32)
    x[0, 0, 0, :5] = pixels
    assert golden.quantize_input(graph, x).reshape(x.shape)[0, 0, 0, :5].tolist() == [-128, -64, 0, 127, -127]
    assert [type(n).__name__ for n in graph.nodes[1:6]] == ["Conv", "Threshold", "Conv", "Threshold", "MaxPool"]


def test_narrow_input_quantizer_leaves_out_the_most_negative_value(corpus):
    graph = build.load(corpus["bnn_pynq_tfc_w1a2"][2])
    q = graph.nodes[0]
    assert q.narrow and (q.qmin, q.qmax) == (-1, 1)
    x = np.full((1, 1, 6, 6), -5.0, dtype=np.float32)
    assert golden.quantize_input(graph, x).min() == -1


def test_epilogue_folds_into_dequantize_and_softmax_stays_in_float(corpus):
    tfc = build.load(corpus["bnn_pynq_tfc_w1a1"][2])
    assert [type(n).__name__ for n in tfc.nodes[-2:]] == ["MatMul", "Dequantize"]  # TensorNorm folded
    for style, kind in (("softmax_end", "softmax"), ("log_softmax_end", "log_softmax")):
        model, x, build_dir = corpus[style]
        graph = build.load(build_dir)
        assert graph.dequantize_of(graph.output).softmax == kind
        ints = golden.predict_int(graph, x)
        scores = graph.class_scores(graph.output, ints)
        assert np.array_equal(scores.argmax(1), golden.predict_float(graph, x).argmax(1))


def test_final_sign_is_a_threshold_and_ir_names_avoid_the_graph_output(corpus):
    graph = build.load(corpus["normalized_sign"][2])
    last = graph.producer(graph.output)
    assert isinstance(last, Threshold) and last.out_dtype == BIPOLAR
    assert graph.output != graph.float_output  # the integer tensor is renamed; the ONNX name is the float output
    node = graph.dequantize_of(graph.output)
    assert isinstance(node, Dequantize) and node.scale[0] == -2 * node.offset[0] > 0


def test_channels_last_input_transposes_the_quantized_integers(corpus):
    graph = build.load(corpus["channels_last_cnv"][2])
    q, t = graph.nodes[:2]
    assert isinstance(q, Quantize) and q.narrow and q.steps == ("sub", "div")
    assert q.constants[0].shape == (1, 12, 12, 3)  # per-channel constants moved back to the input's layout
    assert isinstance(t, Transpose) and t.perm == (2, 0, 1)


def test_external_data_and_odd_names_compile_exactly(corpus, tmp_path):
    """Weights in an external file (forced for every tensor), then every name a number or a path with dots,
    slashes and colons: the build holds one self-contained model.onnx and stays exact."""
    model, x, build_dir = corpus["bnn_pynq_tfc_w2a2"]
    source = onnx.load(str(build_dir / "model.onnx"))
    external = tmp_path / "ext" / "model.onnx"
    external.parent.mkdir()
    onnx.save(source, str(external), save_as_external_data=True, all_tensors_to_one_file=True,
              location="model.onnx.data", size_threshold=0)
    assert (external.parent / "model.onnx.data").stat().st_size > 0
    build.compile_model(external, tmp_path / "b1")
    assert_exact(model, x, tmp_path / "b1")
    renamed = styles.rename_everything(external, tmp_path / "renamed.onnx")
    names = [t for node in onnx.load(str(renamed)).graph.node for t in node.output]
    assert all(t.isdigit() or "/model/" in t for t in names)
    graph = build.compile_model(renamed, tmp_path / "b2")
    assert_exact(model, x, tmp_path / "b2")
    assert np.array_equal(build.predict(tmp_path / "b2", "c", x), golden.predict_int(graph, x))


@pytest.mark.parametrize("style", list(STYLES))
def test_style_c_library_equals_golden(corpus, style):
    _, x, build_dir = corpus[style]
    graph = build.load(build_dir)
    assert np.array_equal(build.predict(build_dir, "c", x), golden.predict_int(graph, x))


@pytest.mark.parametrize("style", [s for s in RTL_DEFAULT if s != "channels_last_cnv"])
def test_style_rtl_equals_golden(corpus, style):
    from tests.conftest import require_tool

    require_tool("verilator")
    _, x, build_dir = corpus[style]
    graph = build.load(build_dir)
    assert np.array_equal(build.predict(build_dir, "rtl", x), golden.predict_int(graph, x))


@pytest.mark.parametrize("style", list(STYLES))
def test_style_hls_equals_golden(corpus, style):
    """The HLS C++ (g++, at the RTL's default folding) on every style, the channels-last input included."""
    from tests.conftest import require_tool

    require_tool("g++")
    _, x, build_dir = corpus[style]
    graph = build.load(build_dir)
    assert np.array_equal(build.predict(build_dir, "hls", x), golden.predict_int(graph, x))


@pytest.mark.slow
@pytest.mark.parametrize("style", [s for s in STYLES if s not in RTL_DEFAULT])
def test_every_style_rtl_equals_golden(corpus, style):
    test_style_rtl_equals_golden(corpus, style)


def test_a_channels_last_input_is_taken_as_it_comes_by_c_and_rtl(corpus):
    """The transpose after the quantizer costs nothing: the C quantizer reads the (H, W, C) input in place of
    the (C, H, W) one, and the RTL's input stream is the input in its own order."""
    from tests.conftest import require_tool

    _, x, build_dir = corpus["channels_last_cnv"]
    graph = build.load(build_dir)
    assert graph.channels_last_input() is graph.nodes[1]
    expected = golden.predict_int(graph, x)
    assert np.array_equal(build.predict(build_dir, "c", x), expected)
    require_tool("verilator")
    assert np.array_equal(build.predict(build_dir, "rtl", x), expected)


def test_a_float_input_into_a_layer_names_the_node_and_input_quant(tmp_path):
    """An unquantized network input going into a layer (QKeras' converter) fails in one line at compile."""
    from brevitas import nn as qnn

    model = torch.nn.Sequential(qnn.QuantLinear(6, 4, bias=True, weight_bit_width=4)).eval()
    styles.export(model, np.zeros((1, 6), dtype=np.float32), tmp_path / "m.onnx")
    proc = subprocess.run([sys.executable, "-m", "xnorkit", "compile", str(tmp_path / "m.onnx"), "-o",
                           str(tmp_path / "b")], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "float network input" in proc.stderr and "--input-quant" in proc.stderr
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(("style", "input_quant"), [("qkeras", "int8:scale=0.0625"), ("older_export", None)])
def test_helper_written_styles_compile_exact_in_golden_and_c(tmp_path, style, input_quant):
    """qonnx's Keras-converter style (a float input: compiled with --input-quant; quantized biases; a final
    Softmax) and an older exporter's (opset 9, parameters as graph inputs, a shape-computing flatten, TensorNorm
    as Sub/Pow/Div/Mul/Add): golden equals qonnx's executor on the QONNX saved in the build, and C equals golden."""
    make = styles.qkeras_style_mlp if style == "qkeras" else styles.older_export_tfc
    x = make(0, tmp_path / "m.onnx")
    graph = build.compile_model(tmp_path / "m.onnx", tmp_path / "b", input_quant)
    diffs, compared = analysis.diff_against_qonnx(graph, analysis.qonnx_tensors(tmp_path / "b", x), x)
    assert diffs == [] and compared >= 4
    assert np.array_equal(build.predict(tmp_path / "b", "c", x), golden.predict_int(graph, x))
    assert np.array_equal(build.predict(tmp_path / "b", "hls", x), golden.predict_int(graph, x))
    if input_quant:
        saved = onnx.load(str(tmp_path / "b" / "model.onnx"))
        assert saved.graph.node[0].op_type == "Quant" and saved.graph.node[0].input[0] == "input_1"
        assert graph.dequantize_of(graph.output).softmax == "softmax"


def test_compile_says_what_it_made_of_the_input_and_output(corpus, tmp_path):
    model, x, build_dir = corpus["bnn_pynq_tfc_w1a1"]
    proc = subprocess.run([sys.executable, "-m", "xnorkit", "compile", str(build_dir / "model.onnx"), "-o",
                           str(tmp_path / "b")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "input: x * 2, x - 1, reshape to 36, sign -> 1 bit" in proc.stdout
    assert "output 'global_out': the last layer, dequantized with the float ops after it folded in" in proc.stdout


@pytest.mark.parametrize(("spec", "expected"), [
    ("int8", (8, True, 1.0)), ("uint8", (8, False, 1.0)), ("int8:scale=0.0625", (8, True, 0.0625)),
    ("fixed<16,6>", (16, True, 2.0 ** -10)), ("ufixed<8,0>", (8, False, 2.0 ** -8))])
def test_input_quant_specs(spec, expected):
    from xnorkit.frontend import parse_input_quant

    assert parse_input_quant(spec) == expected


@pytest.mark.parametrize("spec", ["int1", "int8:scale=0", "int8:scale=-1", "float", "fixed<40,2>", "int8:scale=nan"])
def test_a_bad_input_quant_spec_names_the_option(spec):
    from xnorkit.frontend import parse_input_quant

    with pytest.raises(XnorkitError, match="--input-quant"):
        parse_input_quant(spec)


def test_a_bad_input_quant_spec_is_one_line_exit_2_with_nothing_written(corpus, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "xnorkit", "compile", str(corpus["plain_end"][2] / "model.onnx"),
                           "-o", str(tmp_path / "b"), "--input-quant", "int8:scale=0"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "--input-quant" in proc.stderr
    assert not (tmp_path / "b").exists()


def test_sign_input_through_the_int8_baseline_kernels_equals_golden(corpus, tmp_path):
    """The bipolar input unpacked to -1/+1 integers (`xk_quantize_sign` into ints), as the int8 baseline of
    bench/firmware_kernels builds every network."""
    from xnorkit.firmware import emit_c, runner
    from xnorkit.outputs import write_tree

    _, x, build_dir = corpus["bnn_pynq_tfc_w1a1"]
    graph = build.load(build_dir)
    files = emit_c.emit(graph, binary_kernels=False)
    source = files[f"{graph.name}.c"]
    assert "xk_quantize_sign(input" in source and ", 0, XK_T" in source
    write_tree(tmp_path / "int8", files)
    assert np.array_equal(runner.run_host(tmp_path / "int8", x, 10), golden.predict_int(graph, x))


class _SignThenFlatten(torch.nn.Module):
    """A binary classifier whose graph output is a flatten of its final sign: the reshape's IR output is
    renamed (the graph output's name belongs to the Dequantize) and still takes its ONNX shape."""

    def __init__(self):
        super().__init__()
        from brevitas import nn as qnn
        from brevitas.quant import Int8ActPerTensorFloat, SignedBinaryActPerTensorConst

        self.net = torch.nn.Sequential(
            qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True),
            qnn.QuantConv2d(1, 2, 3, bias=True, weight_bit_width=2),
            qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst))

    def forward(self, x):
        return torch.flatten(self.net(x), 1)


def test_a_graph_output_after_a_reshape_compiles_exactly(tmp_path):
    torch.manual_seed(8)
    model = _SignThenFlatten().eval()
    x = np.random.default_rng(8).normal(size=(32, 1, 5, 5)).astype(np.float32)
    styles.export(model, x, tmp_path / "m.onnx")
    graph = build.compile_model(tmp_path / "m.onnx", tmp_path / "b")
    assert isinstance(graph.producer(graph.output), Reshape) and graph.output != graph.float_output
    assert graph.shape(graph.output) == (18,)
    diffs, compared = analysis.diff_against_qonnx(graph, analysis.qonnx_tensors(tmp_path / "b", x), x)
    assert diffs == [] and compared >= 2
    assert np.array_equal(golden.predict_float(graph, x), train.evaluate(model, x))
