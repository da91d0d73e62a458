from dataclasses import replace

import numpy as np
import pytest

from tests.conftest import random_graph, random_inputs, require_tool
from xnorkit import golden
from xnorkit.errors import XnorkitError
from xnorkit.firmware import emit_c, runner
from xnorkit.outputs import write_tree

# sizes that are not multiples of 32 exercise the padding rule
GRAPHS = {"padded": [20, 40, 70, 10], "digits_shape": [64, 256, 256, 256, 10]}


@pytest.fixture(params=list(GRAPHS))
def fw(request, tmp_path):
    graph = random_graph(GRAPHS[request.param], seed=4)
    write_tree(tmp_path / "fw", emit_c.emit(graph))
    return graph, tmp_path / "fw"


def test_host_c_is_bit_exact(fw):
    require_tool("gcc")
    graph, path = fw
    x = random_inputs(graph, 300)
    x[:5] += 0.5  # ties round half to even in C as in numpy
    out = runner.run_host(path, x, graph.producer(graph.output).out_features)
    assert np.array_equal(out, golden.predict_int(graph, x))


def test_cortex_m4_under_qemu_is_bit_exact(fw):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    graph, path = fw
    x = random_inputs(graph, 100)
    out = runner.run_cortex_m4(path, x, graph.producer(graph.output).out_features)
    assert np.array_equal(out, golden.predict_int(graph, x))
    size = runner.size(path / "build" / "xk_cortex_m4.elf")
    assert size["text"] > 0


def test_weights_are_packed_const_and_buffers_planned(fw):
    graph, path = fw
    source = (path / "xnorkit.c").read_text()
    weight_words = sum(m.out_features * ((m.in_features + 31) // 32) for m in graph.matmuls())
    assert source.count("static const uint32_t") == len(graph.matmuls())
    assert sum(int(line.split("[")[1].split("]")[0]) for line in source.splitlines()
               if line.startswith("static const uint32_t")) == weight_words
    plan = emit_c.lower(graph)
    assert f"#define XNORKIT_ACTIVATION_BYTES {plan.bytes}u" in (path / "xnorkit.h").read_text()


def test_board_definitions():
    from xnorkit import boards

    assert {"mps2-an386", "stm32f4-discovery", "nrf52840-dk", "rpi-pico", "stm32f746g-disco"} <= set(boards.names())
    assert boards.load("mps2-an386")["cpu"] == "cortex-m4"
    assert {boards.load(n).cpu for n in boards.names("mcu")} >= {"cortex-m4f", "cortex-m0plus", "cortex-m7"}
    assert boards.load("stm32f4-discovery").ram_bytes == 128 * 1024
    with pytest.raises(Exception, match="flash_bytes"):
        boards.McuBoard(name="x", kind="mcu", description="", cpu="cortex-m4", part="x", clock_mhz=1, flash_bytes=0,
                     ram_bytes=1)
    with pytest.raises(Exception, match="extra"):
        boards.McuBoard(name="x", kind="mcu", description="", cpu="cortex-m4", part="x", clock_mhz=1, flash_bytes=1,
                     ram_bytes=1, sram=4)


def test_a_network_that_does_not_fit_is_refused_with_the_numbers():
    from xnorkit import boards
    from xnorkit.errors import XnorkitError

    big = emit_c.lower(random_graph([784, 3072, 3072, 10], seed=0))  # 11.9 Mbit of binary weights
    # packed rows (the first layer's +1 weights for its subset-sum tables), int32 thresholds, the class scores'
    # weights (int32) and biases (int64)
    weights = 4 * (25 * 3072 + 96 * 3072 + 96 * 10) + 4 * 2 * 3072 + 12 * 10
    with pytest.raises(XnorkitError, match=rf"does not fit stm32f4-discovery \(STM32F407VGT6\): it needs "
                                           rf"[0-9,]+ bytes of flash \(weights {weights:,} \+ code about"):
        emit_c.check_fits(big, boards.load("stm32f4-discovery"))
    need = emit_c.check_fits(big, boards.load("rpi-pico"))
    assert need["weights"] == weights
    assert need["ram"] == big.bytes + emit_c.STACK_BYTES


def test_k_bit_activations_in_c_are_bit_exact(tmp_path):
    """Binary weights with 2-bit activations: multi-level thresholds and integer-input layers in C."""
    import torch

    from tests.conftest import check_exact
    from xnorkit.ir import Threshold
    from xnorkit.quant_train.zoo import MLP

    require_tool("gcc")
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    torch.manual_seed(0)
    model = MLP(64, [32, 24], 10, 1, 2, 5)
    x = np.random.default_rng(0).integers(0, 17, size=(200, 64)).astype(np.float32)
    graph, _ = check_exact(model, x, tmp_path / "m")
    assert any(isinstance(n, Threshold) and n.thresholds.shape[1] == 3 for n in graph.nodes)
    write_tree(tmp_path / "fw", emit_c.emit(graph))
    expected = golden.predict_int(graph, x)
    assert np.array_equal(runner.run_host(tmp_path / "fw", x, 10), expected)
    assert np.array_equal(runner.run_cortex_m4(tmp_path / "fw", x[:60], 10), expected[:60])


def _layer_cases():
    from tests import test_rtl_layers as layers

    for build, cases in ((layers.mvtu_net, layers.MVTU_CASES), (layers.conv_net, layers.CONV_CASES),
                         (layers.pool_net, layers.POOL_CASES), (layers.threshold_net, layers.THRESHOLD_CASES),
                         (layers.join_net, layers.JOIN_CASES)):
        for case in cases:
            yield case, build(case)[0]


def test_every_layer_type_in_c_is_bit_exact(tmp_path):
    """The one-layer networks of tests/test_rtl_layers.py (dense and convolution over element kinds and bit
    widths, grouped and depthwise, max and sum pooling, thresholds, add and concat) in C on the host, a
    bipolar network input (BNN-PYNQ's sign of the pixels) included."""
    require_tool("gcc")
    cases = list(_layer_cases())
    for case, graph in cases:
        write_tree(tmp_path / case, emit_c.emit(graph))
        x = random_inputs(graph, 20)
        expected = golden.predict_int(graph, x).reshape(len(x), -1)
        assert np.array_equal(runner.run_host(tmp_path / case, x, expected.shape[1]), expected), case
    assert sum(g.nodes[0].dtype.bipolar for _, g in cases) > 0


@pytest.mark.parametrize(("w_bits", "a_bits", "transpose"), [(1, 1, None), (2, 2, None), (1, 1, (1, 2, 0)),
                                                             (3, 1, None)])
def test_cnn_in_c_on_host_and_cortex_m4(tmp_path, w_bits, a_bits, transpose):
    """LeNet-style networks (padded convolutions, max-pooling, a flatten, after a transpose or not) in C:
    host and Cortex-M4 under QEMU equal golden; the arena is smaller than keeping every tensor."""
    from tests.conftest import random_cnn_graph

    require_tool("gcc")
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    graph = random_cnn_graph(w_bits=w_bits, a_bits=a_bits, seed=w_bits + 3 * a_bits, transpose=transpose)
    write_tree(tmp_path / "fw", emit_c.emit(graph))
    x = random_inputs(graph, 60)
    expected = golden.predict_int(graph, x)
    assert np.array_equal(runner.run_host(tmp_path / "fw", x, 10), expected)
    assert np.array_equal(runner.run_cortex_m4(tmp_path / "fw", x[:20], 10), expected[:20])
    prog = emit_c.lower(graph)
    assert prog.bytes < sum(t.bytes for t in prog.tensors)


def test_arena_plan_never_overlaps_live_tensors():
    from tests.conftest import random_cnn_graph

    prog = emit_c.lower(random_cnn_graph(w_bits=2, a_bits=2))
    for a in prog.tensors:
        for b in prog.tensors:
            if a.index < b.index and not (a.last < b.first or b.last < a.first):
                assert a.offset + a.bytes <= b.offset or b.offset + b.bytes <= a.offset, (a, b)


@pytest.mark.parametrize("path", list(runner.HOST_PATHS))
def test_every_kernel_path_gives_the_same_integers(tmp_path, path):
    """The portable reference, the 64-bit POPCNT path and the Harley-Seal carry-save path (Cortex-M's) on
    the host, through each binary kernel: word counts that are not multiples of 8 exercise each path's tail."""
    from tests.conftest import random_cnn_graph

    require_tool("gcc")
    sources = ""
    for name, graph in (("mlp", random_graph([100, 300, 200, 10], seed=5)),
                        ("cnn", random_cnn_graph(channels=(40, 72), seed=5)),
                        ("cnn32", random_cnn_graph(channels=(32, 64), seed=6))):  # whole words per pixel
        files = emit_c.emit(graph)
        sources += files["xnorkit.c"].split("xk_layers(")[1]
        write_tree(tmp_path / name, files)
        x = random_inputs(graph, 40)
        assert np.array_equal(runner.run_host(tmp_path / name, x, 10, path), golden.predict_int(graph, x)), name
    # both binary convolutions: a window gathered into one vector (40 channels), tap by tap (32 and 64)
    assert "xk_conv_bin_window(" in sources and "xk_conv_bin_bin(" in sources


@pytest.mark.parametrize("cpu", ["cortex-m0plus", "cortex-m4", "cortex-m7"])
def test_library_compiles_warning_free_for_each_cortex_m(tmp_path, cpu):
    import subprocess

    from xnorkit import tools

    require_tool("arm-none-eabi-gcc")
    gcc = tools.require("arm-none-eabi-gcc")
    write_tree(tmp_path, emit_c.emit(random_graph([64, 96, 10], seed=1)))
    for source in ("xk_kernels.c", "xnorkit.c"):
        proc = subprocess.run([gcc, f"-mcpu={cpu}", "-mthumb", "-O2", *runner.WARNINGS, "-c", source, "-o",
                               f"{source}.o"], cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_int8_baseline_gives_the_same_integers(tmp_path):
    """The int8 baseline (bipolar values as -1/+1 integers, int8 weights, no packed bits) that the firmware
    benchmark compares against: the same integers as golden, with no binary kernel in its calls."""
    from tests.conftest import random_cnn_graph

    require_tool("gcc")
    for name, graph in (("mlp", random_graph([100, 64, 48, 10], seed=2)), ("cnn", random_cnn_graph(seed=2))):
        files = emit_c.emit(graph, binary_kernels=False)
        body = files["xnorkit.c"].split("static int32_t xk_layers(")[1]  # the calls, then both entry points
        assert "bin" not in body and "xk_dense_int_int" in body
        write_tree(tmp_path / name, files)
        x = random_inputs(graph, 30)
        assert np.array_equal(runner.run_host(tmp_path / name, x, 10), golden.predict_int(graph, x)), name


def test_generated_folder_builds_with_make_and_cmake(tmp_path):
    """The output folder stands alone: its Makefile builds and runs the host and Cortex-M4 programs, its
    CMakeLists.txt builds the library (the Zephyr module and PlatformIO manifests point at the same two
    sources)."""
    import json
    import subprocess

    require_tool("gcc")
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    graph = random_graph([20, 40, 10], seed=6)
    write_tree(tmp_path / "fw", emit_c.emit(graph))
    fw = tmp_path / "fw"
    x = random_inputs(graph, 8)
    (fw / "build").mkdir()
    x.astype("<f4").tofile(fw / "build" / "inputs.bin")
    for target in ("run", "run-m4"):
        (fw / "build" / "outputs.bin").unlink(missing_ok=True)
        proc = subprocess.run(["make", target], cwd=fw, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        outputs = np.fromfile(fw / "build" / "outputs.bin", dtype="<i4").reshape(8, 10)
        assert np.array_equal(outputs, golden.predict_int(graph, x))
    manifest = json.loads((fw / "library.json").read_text())
    assert manifest["name"] == "xnorkit" and manifest["build"]["srcFilter"] == ["-<*>", "+<xnorkit.c>"]
    assert "build" in manifest["export"]["exclude"]
    assert "cmake: ." in (fw / "zephyr" / "module.yml").read_text()
    require_tool("cmake")
    build = tmp_path / "cmake"
    for cmd in (["cmake", "-S", str(fw), "-B", str(build)], ["cmake", "--build", str(build)]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (build / "libxnorkit.a").exists()


def test_pruned_binary_layers_run_on_the_masked_kernel(tmp_path):
    """Bipolar inputs with weights -1, 0, +1 (random_graph's 2-bit weights): the two-plane XNOR kernel, bit-exact
    on the host and the Cortex-M4, with fewer instructions than the same layers as 2-bit integer fields."""
    require_tool("gcc")
    graph = random_graph([20, 40, 70, 10], seed=8, w_bits=2)
    x = random_inputs(graph, 200)
    expected = golden.predict_int(graph, x)
    write_tree(tmp_path / "fw", emit_c.emit(graph))
    assert (tmp_path / "fw" / "xnorkit.c").read_text().count("xk_dense_bin_masked(") == 2
    assert np.array_equal(runner.run_host(tmp_path / "fw", x, 10), expected)
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    outputs, masked = runner.profile_cortex_m4(tmp_path / "fw", x[:20], 10)
    assert np.array_equal(outputs, expected[:20])
    write_tree(tmp_path / "int", emit_c.emit(graph, binary_kernels=False))
    _, plain = runner.profile_cortex_m4(tmp_path / "int", x[:20], 10)
    assert masked.sum(axis=1).max() < plain.sum(axis=1).min()


def test_block_pruned_binary_layers_skip_zero_words(tmp_path):
    """A layer of weights -1, 0, +1 with 3 in 4 of its 32-weight words zero: stored as its nonzero words and their
    places (xk_dense_bin_sparse), bit-exact on the host and the Cortex-M4, in fewer instructions than the
    two-plane kernel over every word."""
    require_tool("gcc")
    graph = unpruned = random_graph([20, 128, 128, 10], seed=8, w_bits=2)
    fc1 = graph.node("fc1")
    words = np.random.default_rng(3).random((128, 4)) < 0.25
    pruned = replace(fc1, weights=(fc1.weights * np.repeat(words, 32, axis=1)).astype(np.int8))
    graph = replace(graph, nodes=tuple(pruned if n.name == "fc1" else n for n in graph.nodes))
    x = random_inputs(graph, 200)
    expected = golden.predict_int(graph, x)
    write_tree(tmp_path / "fw", emit_c.emit(graph))
    source = (tmp_path / "fw" / "xnorkit.c").read_text()
    assert source.count("xk_dense_bin_sparse(") == 1 and source.count("xk_dense_bin_masked(") == 1
    assert np.array_equal(runner.run_host(tmp_path / "fw", x, 10), expected)
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    outputs, sparse = runner.profile_cortex_m4(tmp_path / "fw", x[:20], 10)
    assert np.array_equal(outputs, expected[:20])
    write_tree(tmp_path / "unpruned", emit_c.emit(unpruned))  # fc1 whole: the two-plane kernel over every word
    _, masked = runner.profile_cortex_m4(tmp_path / "unpruned", x[:20], 10)
    assert sparse.sum(axis=1).max() < masked.sum(axis=1).min()


def test_the_dense_kernel_choice():
    """emit_c.dense_kernel alone: each fully connected case to its kernel."""
    from xnorkit.ir import BIPOLAR, IntType, MatMul

    def layer(in_dtype, w_dtype, weights):
        return MatMul("fc", "x", "y", weights, in_dtype, w_dtype, IntType(16, True))

    signs = np.where(np.arange(64 * 64).reshape(64, 64) % 3 == 0, -1, 1).astype(np.int8)
    pruned = (signs * (np.arange(64)[None, :] % 2)).astype(np.int8)  # every other weight zero
    blocks = (signs * (np.arange(64)[None, :] < 32)).astype(np.int8)  # the second word of each row zero
    blocks[:48] = 0  # and most rows: few words hold a weight
    u8, u13, i2, i4 = IntType(8), IntType(13), IntType(2, True), IntType(4, True)
    cases = [(layer(BIPOLAR, BIPOLAR, signs), True, True, 8, "bin_bin"),
             (layer(BIPOLAR, i2, pruned), True, True, 8, "bin_masked"),
             (layer(BIPOLAR, i2, blocks), True, True, 8, "bin_sparse"),
             (layer(BIPOLAR, i2, pruned), True, False, 8, "int_int"),
             (layer(u8, BIPOLAR, signs), False, True, 8, "int_lut"),
             (layer(u8, BIPOLAR, signs), False, True, 4, "int_lut"),
             (layer(u8, i2, pruned), False, True, 8, "int_lut"),  # ternary: two planes
             (layer(u8, BIPOLAR, signs), False, True, 0, "int_bin"),  # no room for tables
             (layer(u13, BIPOLAR, signs), False, True, 8, "int_bin"),  # sums past 16 bits
             (layer(u8, i2, pruned), False, True, 0, "int_kbit"),
             (layer(u8, i4, pruned * 3), False, True, 8, "int_kbit"),
             (layer(u8, BIPOLAR, signs), False, False, 8, "int_int")]
    for node, packed, binary_kernels, lut_bits, kernel in cases:
        assert emit_c.dense_kernel(node, node.weights, packed, 1, 64, binary_kernels, lut_bits) == kernel, kernel


# a C++ application of the generated library: what an Arduino, Zephyr C++ or mbed main does
_CPP_MAIN = """\
#include <cstdio>

#include "xnorkit.h"

int main() {
    static float input[XNORKIT_INPUT_SIZE];
    static int32_t output[XNORKIT_OUTPUT_SIZE];
    std::FILE *in = std::fopen("inputs.bin", "rb");
    std::FILE *out = std::fopen("outputs.bin", "wb");
    if (in == nullptr || out == nullptr) return 1;
    while (std::fread(input, sizeof input[0], XNORKIT_INPUT_SIZE, in) == XNORKIT_INPUT_SIZE) {
        static_cast<void>(xnorkit_infer(input, output));
        std::fwrite(output, sizeof output[0], XNORKIT_OUTPUT_SIZE, out);
    }
    std::fclose(in);
    std::fclose(out);
    return 0;
}
"""
_CPP_WARNINGS = ["-Wall", "-Wextra", "-Werror", "-pedantic", "-std=c++17"]


def _compile_and_link_cpp(fw, cc: str, cxx: str, flags: list[str], link: list[str], exe: str,
                          c_sources: tuple[str, ...] = ("xnorkit",)) -> None:
    """The library compiled as C, main.cpp as C++ including the generated header, linked by the C++ driver."""
    import subprocess

    from xnorkit import tools

    (fw / "main.cpp").write_text(_CPP_MAIN)
    steps = [[tools.require(cc), *flags, *runner.WARNINGS, "-c", f"{name}.c", "-o", f"{name}.o"]
             for name in c_sources]
    steps.append([tools.require(cxx), *flags, *_CPP_WARNINGS, "-fno-exceptions", "-fno-rtti", "-c", "main.cpp",
                  "-o", "main.o"])
    steps.append([tools.require(cxx), *flags, *link, "main.o", *(f"{name}.o" for name in c_sources), "-lm",
                  "-o", exe])
    for cmd in steps:
        proc = subprocess.run(cmd, cwd=fw, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_the_header_compiles_and_links_from_cpp_on_host_and_cortex_m4(tmp_path):
    """A C++ main links against the C library (extern "C" in both headers) and gives golden's integers, with
    g++ on the host and arm-none-eabi-g++ for the Cortex-M4 under QEMU."""
    import subprocess

    for tool in ("gcc", "g++", "arm-none-eabi-gcc", "arm-none-eabi-g++", "qemu-system-arm"):
        require_tool(tool)
    graph = random_graph([20, 40, 10], seed=7)
    x = random_inputs(graph, 12)
    expected = golden.predict_int(graph, x)
    for target in ("host", "cortex-m4"):
        fw = tmp_path / target
        write_tree(fw, emit_c.emit(graph))
        x.astype("<f4").tofile(fw / "inputs.bin")
        if target == "host":
            _compile_and_link_cpp(fw, "gcc", "g++", ["-O2"], [], "app")
            command = ["./app"]
        else:
            _compile_and_link_cpp(fw, "arm-none-eabi-gcc", "arm-none-eabi-g++", runner.M4_FLAGS,
                                  ["--specs=rdimon.specs", "-T", "link.ld", "-Wl,--gc-sections",
                                   "-lc", "-lrdimon", "-lgcc"], "app.elf", ("xnorkit", "startup"))
            command = runner._qemu(fw / "app.elf")
        proc = subprocess.run(command, cwd=fw, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert np.array_equal(np.fromfile(fw / "outputs.bin", dtype="<i4").reshape(12, 10), expected), target


def _int_api_cases():
    """Every input type the corpus has: the one-layer networks (bipolar, signed and unsigned k-bit inputs), an
    early-exit network (its outputs zeroed before the input step), uint16 inputs, a channels-last CNN."""
    from tests.conftest import random_cnn_graph
    from tests.test_exits import two_exit_graph

    yield from _layer_cases()
    yield "exits", two_exit_graph()
    yield "uint12", random_graph([30, 64, 10], seed=9, input_bits=12)
    yield "cnn_channels_last", random_cnn_graph(seed=5, transpose=(1, 2, 0))


def test_the_integer_api_equals_golden_on_every_input_type(tmp_path):
    """NAME_infer_int on already-quantized inputs (the input quantizer's integers, in NAME_input_t, the narrowest
    C type of the IR's input type) equals golden on the host for every case, values out of the type's range
    clamped as the quantizer clamps; on the Cortex-M4 under QEMU for two of them."""
    require_tool("gcc")
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    ctypes = set()
    for case, graph in _int_api_cases():
        write_tree(tmp_path / case, emit_c.emit(graph))
        x_int = golden.quantize_input(graph, random_inputs(graph, 20)).reshape(20, -1)
        q = graph.nodes[0]
        if not q.dtype.bipolar:  # two values past each end, as a sensor might deliver them
            x_int[0, :2] = [q.qmin - 1, q.qmax + 1] if q.dtype.signed else [q.qmax + 1, q.qmax + 1]
        expected = golden.predict_from_int(graph, np.clip(x_int, q.qmin, q.qmax)).reshape(20, -1)
        out = runner.run_host(tmp_path / case, x_int, expected.shape[1], integer=True)
        assert np.array_equal(out, expected), case
        if q.dtype.bipolar:  # -1/+1 as well as the IR's bits 0/1
            out = runner.run_host(tmp_path / case, 2 * x_int - 1, expected.shape[1], integer=True)
            assert np.array_equal(out, expected), case
        if case in ("uint12", "cnn_channels_last"):
            assert np.array_equal(runner.run_cortex_m4(tmp_path / case, x_int, expected.shape[1], integer=True),
                                  expected), case
        ctypes.add(emit_c.input_ctype(q.dtype))
    assert ctypes == {"int8_t", "uint8_t", "uint16_t"}


def _integer_input_cases():
    """Networks whose integer inputs meet binary or ternary weights: MNIST-like uint8 inputs over 99 (not a
    multiple of 8 or 32), 12-bit inputs (the widest the tables take), ternary weights, 2-bit activations into
    binary weights, and the one-layer corpus' signed and unsigned inputs."""
    from xnorkit.ir import MatMul

    yield "u8", random_graph([99, 64, 10], seed=11, input_bits=8)
    yield "u12", random_graph([40, 33, 10], seed=12, input_bits=12)
    yield "ternary", random_graph([70, 48, 10], seed=13, input_bits=8, w_bits=2)
    yield "a2", random_graph([64, 40, 40, 10], seed=14, a_bits=2)
    for case, graph in _layer_cases():
        first = graph.nodes[1]
        if isinstance(first, MatMul) and not first.in_dtype.bipolar:
            yield case, graph


@pytest.mark.parametrize("lut_bits", emit_c.LUT_BITS)
def test_integer_input_layers_equal_golden_on_each_table_size(tmp_path, lut_bits):
    """xk_dense_int_lut with 8- and 4-input subset-sum tables, and the bit-plane kernel that replaces it where a
    board has no RAM for tables: equal to golden on the host (inputs at the type's ends included, the largest
    sums), and on the Cortex-M4 under QEMU for the uint8 and ternary networks."""
    require_tool("gcc")
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    signed, on_tables = set(), set()
    for case, graph in _integer_input_cases():
        files = emit_c.emit(graph, lut_bits=lut_bits)
        if "xk_dense_int_lut(" in files["xnorkit.c"].split("xk_layers(")[1]:
            on_tables.add(case)
        write_tree(tmp_path / case, files)
        x_int = golden.quantize_input(graph, random_inputs(graph, 30)).reshape(30, -1)
        q = graph.nodes[0]
        x_int[0], x_int[1] = q.qmax, q.qmin  # every input at each end of its type
        expected = golden.predict_from_int(graph, x_int).reshape(30, -1)
        assert np.array_equal(runner.run_host(tmp_path / case, x_int, expected.shape[1], integer=True),
                              expected), case
        if case in ("u8", "ternary"):
            out = runner.run_cortex_m4(tmp_path / case, x_int, expected.shape[1], integer=True)
            assert np.array_equal(out, expected), case
        signed.add(q.dtype.signed)
    assert signed == {True, False}
    if lut_bits:  # the four networks and corpus cases too
        assert on_tables > {"u8", "u12", "ternary", "a2"}
    else:
        assert not on_tables


def test_the_board_picks_the_table_size_its_ram_holds():
    """emit_c.fit: 8-input tables where the RAM holds them (64 bytes per input), 4-input ones on a small part,
    bit planes on a smaller one still, and the usual refusal when nothing fits."""
    from xnorkit import boards

    graph = random_graph([784, 256, 256, 10], seed=3, input_bits=8)
    board = boards.load("mps2-an386")
    assert emit_c.fit(graph, board)[0] == 8
    need = {bits: emit_c.footprint(emit_c.lower(graph, lut_bits=bits))["ram"] for bits in emit_c.LUT_BITS}
    assert need[8] - need[4] == (64 - 8) * 800 and need[4] > need[0]  # 784 inputs padded to 800
    assert emit_c.fit(graph, board.model_copy(update={"ram_bytes": need[8] - 1}))[0] == 4
    assert emit_c.fit(graph, board.model_copy(update={"ram_bytes": need[4] - 1}))[0] == 0
    with pytest.raises(XnorkitError, match="does not fit"):
        emit_c.fit(graph, board.model_copy(update={"ram_bytes": need[0] - 1}))


@pytest.mark.parametrize("core", list(runner.QEMU_BOARDS))
def test_every_cortex_m_core_under_qemu_equals_golden(tmp_path, core):
    """Each core's build (Cortex-M0 without DSP or popcount, M3, M4 with its FPU, M7, M33, M55) under QEMU, float and
    integer inputs, an MLP on the subset-sum and XNOR kernels and a CNN on the 16-bit and window convolutions,
    the table size the board's RAM allows: equal to golden; the profile counts instructions on every core."""
    from tests.conftest import random_cnn_graph
    from xnorkit import boards

    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    board = runner.QEMU_BOARDS[core]
    nets = [("mlp", random_graph([99, 64, 10], seed=11, input_bits=8)), ("cnn", random_cnn_graph(seed=1))]
    if core != "cortex-m0":  # tap by tap (whole-word channels): 32 channels' accumulators exceed the micro:bit's RAM
        nets.append(("cnn32", random_cnn_graph(channels=(32, 64), seed=6)))
    for name, graph in nets:
        lut_bits, _ = emit_c.fit(graph, boards.load(board), runner.HARNESS_RAM_BYTES)
        write_tree(tmp_path / name, emit_c.emit(graph, lut_bits=lut_bits))
        x = random_inputs(graph, 12)
        x_int = golden.quantize_input(graph, x).reshape(len(x), -1)
        expected = golden.predict_int(graph, x)
        assert np.array_equal(runner.run_cortex_m(tmp_path / name, x, 10, board), expected), name
        out, instructions = runner.profile_cortex_m(tmp_path / name, x_int[:2], 10, board, integer=True)
        assert np.array_equal(out, expected[:2]) and (instructions.sum(axis=1) > 1000).all(), name


def test_the_float_input_step_runs_on_the_fpu(tmp_path):
    """On a board with an FPU (the MPS2-AN386's Cortex-M4F) the library is built for it (hard-float ABI): the same
    outputs as software floating point, the input quantizer in a fraction of the instructions."""
    from xnorkit import boards

    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    graph = random_graph([784, 64, 10], seed=2, input_bits=8)
    write_tree(tmp_path, emit_c.emit(graph))
    x = random_inputs(graph, 3)
    hard_out, hard = runner.profile_cortex_m(tmp_path, x, 10, "mps2-an386")
    soft_out, soft = runner.profile_cortex_m(tmp_path, x, 10, "mps2-an386", hard_float=False)
    assert np.array_equal(hard_out, golden.predict_int(graph, x)) and np.array_equal(soft_out, hard_out)
    assert hard[:, 0].max() * 3 < soft[:, 0].min()  # step 0: the input quantizer
    # the integer layers: the same code but for register allocation, within 2% (SysTick ticks are 40 instructions)
    assert (np.abs(hard[:, 1:] - soft[:, 1:]) <= 40 + 0.02 * soft[:, 1:]).all()
    with pytest.raises(XnorkitError, match="no FPU"):
        runner.arm_flags(boards.load("mps2-an385"), hard_float=True)


def test_the_emitters_window_limits_are_the_kernels():
    """emit_c chooses xk_conv_bin_window and xk_conv_single_int16 only for windows the kernels' stack buffers hold:
    its limits must be the C defines (a larger window would overrun them)."""
    import re
    from pathlib import Path

    lib = Path(emit_c.__file__).parent / "lib"
    source = (lib / "xk_kernels.h").read_text() + (lib / "xk_kernels.c").read_text()
    defines = {name: int(value) for name, value in re.findall(r"#define (XK_WINDOW_\w+) (\d+)u", source)}
    assert defines == {"XK_WINDOW_WORDS": emit_c.WINDOW_WORDS, "XK_WINDOW_TAPS": emit_c.WINDOW_TAPS}
