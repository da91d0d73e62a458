"""Shared fixtures. A missing external tool skips locally and fails under CI=true."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from xnorkit import golden, numerics, tools
from xnorkit.ir import (
    BIPOLAR,
    Conv,
    Dequantize,
    Graph,
    IntType,
    MatMul,
    MaxPool,
    Quantize,
    Reshape,
    Threshold,
    Transpose,
    verify,
)

IN_CI = os.environ.get("CI", "").lower() == "true"

if os.environ.get("PYTEST_XDIST_WORKER"):  # one thread per worker: two workers share the two cores, not four
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def require_tool(name: str) -> None:
    if not tools.available(name):
        message = f"required tool '{name}' is missing"
        if IN_CI:
            pytest.fail(message + " (CI=true: a missing tool is a failure)")
        pytest.skip(message)


def random_graph(sizes: list[int], seed: int = 0, input_bits: int = 5, w_bits: int = 1, a_bits: int = 1,
                 constant_neurons: bool = True) -> Graph:
    """A seeded IR network: integer input -> [MatMul -> Threshold]* -> MatMul -> Dequantize, with thresholds
    drawn inside each channel's accumulator range (so channels really switch) plus, with `constant_neurons`,
    each hidden layer's first and last neuron constant (which the backends' passes remove).
    `w_bits` 1 gives bipolar weights, more signed ones (zeros included); `a_bits` 1 bipolar activations,
    more unsigned multi-threshold ones."""
    rng = np.random.default_rng(seed)
    in_dtype = IntType(input_bits, signed=False)
    w_dtype = BIPOLAR if w_bits == 1 else IntType(w_bits, signed=True)
    nodes: list = [Quantize("quant", "x", "q", 1.0, 0, in_dtype)]
    types = {"q": in_dtype}
    current = "q"
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if w_bits == 1:
            w = rng.choice(np.array([-1, 1], dtype=np.int8), size=(n_out, n_in))
        else:
            w = rng.integers(w_dtype.min + 1, w_dtype.max + 1, size=(n_out, n_in)).astype(np.int8)
        acc_type = numerics.accumulator_type(w, in_dtype)
        nodes.append(MatMul(f"fc{i}", current, f"acc{i}", w, in_dtype, w_dtype, acc_type))
        types[f"acc{i}"] = acc_type
        if i < len(sizes) - 2:
            t = random_thresholds(rng, w, in_dtype, 1 if a_bits == 1 else 2 ** a_bits - 1)
            if constant_neurons:  # always fires / never fires
                t[0], t[-1] = numerics.accumulator_range(w[0], in_dtype)[0], numerics.accumulator_range(w[-1],
                                                                                                    in_dtype)[1] + 1
            out_dtype = BIPOLAR if a_bits == 1 else IntType(a_bits, signed=False)
            nodes.append(Threshold(f"sign{i}", f"acc{i}", f"act{i}", t, 0, out_dtype))
            types[f"act{i}"] = out_dtype
            current, in_dtype = f"act{i}", out_dtype
        else:
            nodes.append(Dequantize("out", f"acc{i}", "y", rng.uniform(0.1, 1, n_out), rng.normal(0, 1, n_out)))
    shapes = {n.output: (n.out_features,) if isinstance(n, MatMul) else None for n in nodes}
    for n in nodes:
        if shapes[n.output] is None:
            shapes[n.output] = shapes.get(n.input) or (sizes[0],)
    graph = Graph("x", (sizes[0],), tuple(nodes), (f"acc{len(sizes) - 2}",), ("y",), types, shapes)
    verify(graph)
    return graph


def random_thresholds(rng, rows: np.ndarray, in_dtype: IntType, levels: int) -> np.ndarray:
    """`levels` sorted thresholds per channel (weight row), drawn around the middle of its accumulator range."""
    ranges = np.array([numerics.accumulator_range(r, in_dtype) for r in rows])
    mid = ranges.mean(axis=1)
    spread = (ranges[:, 1] - ranges[:, 0]) / 8 + 1
    t = np.rint(mid[:, None] + rng.normal(0, 1, (len(ranges), levels)) * spread[:, None]).astype(np.int64)
    return np.sort(numerics.clamp_thresholds(t, rows, in_dtype), axis=1)


def random_cnn_graph(image: tuple[int, int, int] = (1, 12, 12), channels: tuple[int, ...] = (4, 8), classes: int = 10,
                     seed: int = 0, input_bits: int = 4, w_bits: int = 1, a_bits: int = 1, pads: int = 1,
                     kernel: int = 3, transpose: tuple[int, int, int] | None = None) -> Graph:
    """A seeded LeNet-style IR network: [Conv (padded) -> Threshold -> MaxPool 2x2]* -> [Transpose] -> flatten
    -> MatMul -> Dequantize; bipolar or k-bit weights and activations as in `random_graph`."""
    rng = np.random.default_rng(seed)
    in_dtype = IntType(input_bits, signed=False)
    w_dtype = BIPOLAR if w_bits == 1 else IntType(w_bits, signed=True)
    out_dtype = BIPOLAR if a_bits == 1 else IntType(a_bits, signed=False)
    nodes: list = [Quantize("quant", "x", "q", 1.0, 0, in_dtype)]
    types, shapes = {"q": in_dtype}, {"q": image}
    current, (c, h, w) = "q", image

    def weights(shape):
        if w_bits == 1:
            return rng.choice(np.array([-1, 1], dtype=np.int8), size=shape)
        return rng.integers(w_dtype.min + 1, w_dtype.max + 1, size=shape).astype(np.int8)

    for i, out_c in enumerate(channels):
        wt = weights((out_c, c, kernel, kernel))
        acc_type = numerics.accumulator_type(wt.reshape(out_c, -1), in_dtype)
        h, w = h + 2 * pads - kernel + 1, w + 2 * pads - kernel + 1
        nodes.append(Conv(f"conv{i}", current, f"cacc{i}", wt, in_dtype, w_dtype, acc_type, (1, 1), (pads,) * 4, 1))
        types[f"cacc{i}"], shapes[f"cacc{i}"] = acc_type, (out_c, h, w)
        t = random_thresholds(rng, wt.reshape(out_c, -1), in_dtype, 1 if a_bits == 1 else 2 ** a_bits - 1)
        nodes.append(Threshold(f"cact{i}", f"cacc{i}", f"cout{i}", t, 0, out_dtype))
        types[f"cout{i}"], shapes[f"cout{i}"] = out_dtype, (out_c, h, w)
        c, h, w = out_c, h // 2, w // 2
        nodes.append(MaxPool(f"pool{i}", f"cout{i}", f"pool{i}", (2, 2), (2, 2), (0, 0, 0, 0)))
        types[f"pool{i}"], shapes[f"pool{i}"] = out_dtype, (c, h, w)
        current, in_dtype = f"pool{i}", out_dtype
    if transpose is not None:
        nodes.append(Transpose("transpose", current, "transposed", transpose))
        types["transposed"], shapes["transposed"] = in_dtype, tuple((c, h, w)[a] for a in transpose)
        current = "transposed"
    nodes.append(Reshape("flatten", current, "flat", (c * h * w,)))
    types["flat"], shapes["flat"] = in_dtype, (c * h * w,)
    wt = weights((classes, c * h * w))
    acc_type = numerics.accumulator_type(wt, in_dtype)
    nodes.append(MatMul("fc", "flat", "acc", wt, in_dtype, w_dtype, acc_type))
    types["acc"], shapes["acc"] = acc_type, (classes,)
    nodes.append(Dequantize("out", "acc", "y", rng.uniform(0.1, 1, classes), rng.normal(0, 1, classes)))
    shapes["y"] = (classes,)
    graph = Graph("x", image, tuple(nodes), ("acc",), ("y",), types, shapes)
    verify(graph)
    return graph


def random_inputs(graph: Graph, count: int, seed: int = 1) -> np.ndarray:
    return golden.random_int_inputs(graph, count, seed).astype(np.float32)


@pytest.fixture(scope="session")
def small_graph() -> Graph:
    return random_graph([16, 32, 32, 8], seed=3)


@pytest.fixture(scope="session")
def trained_build(tmp_path_factory) -> Path:
    """A small binary MLP trained briefly on digits, exported and compiled (shared by CLI tests)."""
    from xnorkit import build
    from xnorkit.quant_train import config, data, train

    out = tmp_path_factory.mktemp("trained")
    cfg = config.Config(model=config.ModelConfig(hidden=[32, 32, 32]), train=config.TrainConfig(epochs=3))
    digits = data.load_digits()
    model, metrics = train.train(cfg, digits)
    train.save_run(model, metrics, cfg, digits, out)
    build.compile_model(out / "model.onnx", out / "build")
    np.save(out / "x.npy", digits.x_test[:40])
    return out


def check_exact(model, x: np.ndarray, folder: Path, calibrate: int = 64, min_tensors: int = 1):
    """The contract's check on a Brevitas model: calibrate its statistics on `calibrate` inputs (as a trained
    model has them), export and compile it; golden float outputs within tolerance of Brevitas (every exit),
    the same argmax per exit, and every quantized tensor equal to qonnx's execution exactly. Returns the
    IR graph and the golden outputs."""
    import torch

    from xnorkit import analysis, build, compare, golden
    from xnorkit.quant_train import train

    if calibrate:  # 0: the model is trained already
        model.train()
        with torch.no_grad():
            model(torch.from_numpy(x[:calibrate]))
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    train.export_qonnx(model, x.shape[1:], folder / "m.onnx")
    graph = build.compile_model(folder / "m.onnx", folder / "build")
    ref = train.evaluate(model, x, every_exit=True)
    ours = golden.predict_float(graph, x)
    assert ours.shape == ref.shape
    assert compare.float_rows_agree(ours, ref).all(), compare.max_relative_error(ours, ref)
    classes = ref.shape[1] // len(graph.outputs)
    for k in range(len(graph.outputs)):
        cols = slice(k * classes, (k + 1) * classes)
        assert np.array_equal(ours[:, cols].argmax(1), ref[:, cols].argmax(1))
    diffs, compared = analysis.diff_against_qonnx(graph, analysis.qonnx_tensors(folder / "build", x), x)
    assert diffs == [] and compared >= min_tensors
    return graph, ours


def run_cli(capsys, *args, cwd: Path | None = None) -> tuple[int, str, str]:
    """`xnorkit ARGS` through main(): (exit code, stdout, stderr). Any traceback fails the test."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    argv, hook = sys.argv, sys.unraisablehook
    sys.argv = ["xnorkit", *map(str, args)]
    here = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with pytest.raises(SystemExit) as exit_info:
            from xnorkit import cli

            cli.main()
    finally:
        os.chdir(here)
        sys.argv, sys.unraisablehook = argv, hook
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def assert_refused(result: tuple[int, str, str], *words: str) -> None:
    code, _, err = result
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def screenshot_report(page: Path, tmp_path: Path) -> np.ndarray:
    """report.html rendered by headless Chromium: the screenshot's RGB pixels (0..255); the page must load
    without a console error or a failed resource."""
    import shutil
    import subprocess

    from matplotlib import image

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if IN_CI:
            pytest.fail("required tool 'chromium' is missing (CI=true: a missing tool is a failure)")
        pytest.skip("required tool 'chromium' is missing")
    shot = tmp_path / "shot.png"
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
                           "--window-size=1000,4000", f"--screenshot={shot}", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    problems = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln or "Failed to load" in ln]
    assert not problems, problems
    return (image.imread(shot)[..., :3] * 255).round().astype(int)


def assert_tables_render(md_text: str, html_text: str) -> int:
    """Every Markdown table (a run of `|` lines whose second is a delimiter row with as many cells as the header)
    is a <table> in the page, with its rows; returns how many."""
    blocks, run = [], []
    for line in [*md_text.splitlines(), ""]:
        if line.startswith("|"):
            run.append(line)
        elif run:
            blocks.append(run)
            run = []
    for block in blocks:
        cells = [len(line.strip("|").split(" | ")) for line in block]
        assert len(block) >= 2 and set(block[1].strip("|").split("|")) == {"---"} and \
            len(block[1].strip("|").split("|")) == cells[0], f"not a table: {block[:2]}"
    assert html_text.count("<table>") == len(blocks)
    assert html_text.count("<tr>") == sum(len(block) - 1 for block in blocks)
    return len(blocks)
