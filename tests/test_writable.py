"""Runtime-writable weights (`xnorkit hw --writable-weights`, `xnorkit weights`, hw/config_map.py): a model
retrained to new weights and thresholds (here: two Brevitas exports of one architecture with different seeded
weights and batch-norm statistics) is loaded into the accelerator built for the first over AXI4-Lite
(cocotbext-axi's master, sim/tb_weights.py), and the accelerator then computes golden's outputs for the new model
on every input, bit-exact, with no new synthesis. An MLP and a CNN; the structure checks refuse in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from tests import test_model_matrix as matrix
from tests.conftest import assert_refused, require_tool, run_cli
from xnorkit import build, golden
from xnorkit.hw import emit_sv
from xnorkit.quant_train import train

ARCHITECTURES = {"mlp": ("mlp_w1a2", (20,)), "cnn": ("cnn_w1a1_pad_pool", (1, 8, 8))}


def _export(kind: str, seed: int, path) -> None:
    """One architecture of the model matrix with seeded weights and batch-norm statistics (no zero scale and
    thresholds within reach: no neuron is constant, so both seeds lower to the same stages)."""
    torch.manual_seed(seed)
    model = matrix.CASES[ARCHITECTURES[kind][0]]()
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            n = m.num_features
            sign = torch.randint(0, 2, (n,), generator=g) * 2 - 1
            m.weight.data = sign * (0.5 + torch.rand(n, generator=g))
            m.bias.data = torch.randn(n, generator=g) * 0.3
            m.running_mean.data = torch.randn(n, generator=g) * 0.3
            m.running_var.data = 0.5 + torch.rand(n, generator=g)
    train.export_qonnx(model.eval(), ARCHITECTURES[kind][1], path)


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def retrained(request, tmp_path_factory):
    """A build of the first model with every layer writable, the second model's QONNX, inputs for both."""
    kind = request.param
    root = tmp_path_factory.mktemp(f"writable_{kind}")
    _export(kind, 1, root / "first.onnx")
    _export(kind, 2, root / "second.onnx")
    build.compile_model(root / "first.onnx", root / "build")
    build.compile_model(root / "second.onnx", root / "second")
    x = np.random.default_rng(5).normal(0, 0.8, size=(40, *ARCHITECTURES[kind][1])).astype(np.float32)
    return kind, root, x


def test_new_weights_loaded_at_run_time_give_the_new_models_outputs(retrained, capsys):
    from tests.test_hw import lint
    from xnorkit.sim import runner

    require_tool("verilator")
    kind, root, x = retrained
    code, out, _ = run_cli(capsys, "hw", root / "build", "--writable-weights", "all", "--target-cycles", "32")
    assert code == 0, out
    assert lint(root / "build" / "rtl") == ""
    code, out, err = run_cli(capsys, "weights", root / "build", root / "second.onnx")
    assert code == 0 and "register writes" in out, err
    writes = np.fromfile(root / "build" / "weights.bin", dtype="<u4").reshape(-1, 2)
    first, second = build.backend_graph(root / "build"), build.backend_graph(root / "second")
    x_int = golden.quantize_input(first, x)
    before, after = golden.predict_from_int(first, x_int), golden.predict_from_int(second, x_int)
    assert (before != after).any(axis=1).mean() > 0.5  # the new model computes something else
    rtl = root / "build" / "rtl"
    as_built = runner.simulate(rtl, x_int, before, stall_in=0.2, stall_out=0.2, seed=3)
    assert as_built.mismatch is None  # the .mem files are the reset values
    loaded = runner.simulate(rtl, x_int, after, stall_in=0.2, stall_out=0.2, seed=4, weight_writes=writes,
                             rebuild=False)
    assert loaded.mismatch is None and np.array_equal(loaded.outputs, after), loaded.mismatch
    design = emit_sv.load_design(rtl)
    assert len(design["writable"]["layers"]) == (3 if kind == "mlp" else 4)


def test_a_model_of_another_structure_is_refused(retrained, capsys, tmp_path):
    kind, root, _ = retrained
    other = "cnn" if kind == "mlp" else "mlp"
    _export(other, 3, tmp_path / "other.onnx")
    run_cli(capsys, "hw", root / "build", "--writable-weights", "all", "--target-cycles", "32")
    assert_refused(run_cli(capsys, "weights", root / "build", tmp_path / "other.onnx"),
                   "does not fit this accelerator")
    assert not (root / "build" / "weights.bin").exists() or (root / "build" / "weights.bin").stat().st_size > 0


def test_changed_weights_of_a_fixed_layer_are_refused(retrained, capsys):
    kind, root, _ = retrained
    first_layer = emit_sv.load_design(root / "build" / "rtl")["layers"]
    mvtus = [layer["name"] for layer in first_layer if layer["kind"] == "mvtu"]
    run_cli(capsys, "hw", root / "build", "--writable-weights", mvtus[-1], "--target-cycles", "32")
    assert_refused(run_cli(capsys, "weights", root / "build", root / "second.onnx"),
                   f"'{mvtus[0]}' is not writable in this build", f"--writable-weights {mvtus[0]}")
    run_cli(capsys, "hw", root / "build", "--target-cycles", "32")
    assert_refused(run_cli(capsys, "weights", root / "build", root / "second.onnx"), "no writable weights")
    assert_refused(run_cli(capsys, "hw", root / "build", "--writable-weights", "nope"), "no layer named nope")


def test_bad_requests_are_refused_before_anything_is_written(retrained, capsys, tmp_path):
    kind, root, _ = retrained
    run_cli(capsys, "hw", root / "build", "--writable-weights", "all", "--target-cycles", "32")
    rtl_before = (root / "build" / "rtl" / "design.json").read_text()
    assert_refused(run_cli(capsys, "weights", root / "build", root / "second.onnx", "-o", tmp_path / "no" / "w.bin"),
                   "does not exist")
    assert_refused(run_cli(capsys, "weights", root / "build", root / "second.onnx", "-o", tmp_path), "is a folder")
    assert_refused(run_cli(capsys, "weights", tmp_path / "no_build", root / "second.onnx"), "no generated design")
    assert_refused(run_cli(capsys, "hw", root / "build", "--writable-weights", ""), "no layer named ''")
    assert_refused(run_cli(capsys, "hw", root / "build", "--writable-weights", "all", "--backend", "hls"),
                   "for the RTL backend")
    layers = [m["name"] for m in emit_sv.load_design(root / "build" / "rtl")["layers"] if m["kind"] == "mvtu"]
    fold = tmp_path / "fold.json"
    fold.write_text(json.dumps({n: {"pe": 1, "simd": 1, "weights": "writable"} for n in layers}))
    assert_refused(run_cli(capsys, "hw", root / "build", "--fold", fold, "--backend", "hls"),
                   f"makes {layers[0]}", "compiles weights in as constants")
    assert (root / "build" / "rtl" / "design.json").read_text() == rtl_before
    assert not (root / "build" / "hls").exists() and not list(tmp_path.glob("**/*.bin"))
    edited = json.loads(rtl_before)  # a design.json whose folding no longer matches its register map
    first = next(n for n, f in edited["folding"].items() if f["simd"] > 1)  # one whose edit changes the map
    edited["folding"][first]["simd"] = 1
    (root / "build" / "rtl" / "design.json").write_text(json.dumps(edited))
    try:
        assert_refused(run_cli(capsys, "weights", root / "build", root / "second.onnx", "-o", tmp_path / "w.bin"),
                       "does not match its folding")
    finally:
        (root / "build" / "rtl" / "design.json").write_text(rtl_before)


def test_pynq_driver_loads_the_weights_and_the_wrapper_carries_the_port(retrained, capsys):
    """With a Zynq board the vendor project connects the AXI4-Lite port to the processor; the PYNQ driver's
    load_weights() checks the ID registers and writes every pair of `xnorkit weights`' file in order; the Verilog
    wrapper with the port is lint-clean around the shell."""
    import subprocess
    import sys
    import types

    from xnorkit import tools

    kind, root, _ = retrained
    code, out, _ = run_cli(capsys, "hw", root / "build", "--board", "pynq-z2", "--writable-weights", "all",
                           "--vendor-project")
    assert code == 0, out
    project = root / "build" / "synth" / "pynq-z2" / "vivado"
    assert "[get_bd_intf_pins xnorkit/s_axil]" in (project / "create_project.tcl").read_text()
    run_cli(capsys, "weights", root / "build", root / "second.onnx", "-o", root / "second.bin")
    design = emit_sv.load_design(root / "build" / "rtl")
    written: list[tuple[int, int]] = []
    port = types.SimpleNamespace(read=lambda a: {0: design["writable"]["id"], 4: len(design["writable"]["layers"])}[a],
                                 write=lambda a, v: written.append((a, v)))
    sys.modules["pynq"] = types.SimpleNamespace(Overlay=lambda bitfile: types.SimpleNamespace(dma=None, xnorkit=port),
                                                allocate=None)
    try:
        driver: dict = {}
        exec((project / "xnorkit_pynq.py").read_text(), driver)
        count = driver["XnorkitAccelerator"]().load_weights(str(root / "second.bin"))
    finally:
        sys.modules.pop("pynq")
    expected = np.fromfile(root / "second.bin", dtype="<u4").reshape(-1, 2)
    assert count == len(expected) > 0 and written == [tuple(r) for r in expected.tolist()]
    require_tool("verilator")
    wrapper = f"{design['name']}_axis"  # the design is named after the model file
    proc = subprocess.run([tools.require("verilator"), "--lint-only", "-Wall", "--top-module", wrapper,
                           *design["shell"]["sources"], f"{wrapper}.v"], cwd=project, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
