"""Property-based mutation of what users hand xnorkit (hypothesis, derandomized): ONNX files, build folders,
.npy inputs, configs and option values. Every run ends either with exit 0 and results exact against a
reference (qonnx's executor for a model, golden for an input), or with exit 2 and one line; never a
traceback, and no file outside the output folder changes. `make test-all` runs many more examples
(XNORKIT_FUZZ_EXAMPLES)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import numpy_helper

from tests.conftest import run_cli
from xnorkit import analysis, build, golden

EXAMPLES = int(os.environ.get("XNORKIT_FUZZ_EXAMPLES", "12"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ODD_FLOATS = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1.0, 3.0e38, 1e-3, 7.0])


def assert_clean(result: tuple[int, str, str]) -> int:
    code, _, err = result
    assert "Traceback" not in err, err
    assert code == 0 or (code == 2 and len(err.strip().splitlines()) == 1), (code, err)
    return code


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def workspace(trained_build, tmp_path_factory) -> Path:
    """A folder holding the model and inputs; outputs go to its `out` subfolder only."""
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copy(trained_build / "model.onnx", root / "model.onnx")
    shutil.copy(trained_build / "x.npy", root / "x.npy")
    shutil.copytree(trained_build / "build", root / "build")
    return root


def _mutate_onnx(proto: onnx.ModelProto, data) -> None:
    g = proto.graph
    kind = data.draw(st.sampled_from(["value", "attribute", "drop_node", "rewire", "dims"]))
    if kind == "value":
        floats = [i for i in g.initializer if numpy_helper.to_array(i).dtype.kind == "f"]
        init = floats[data.draw(st.integers(0, len(floats) - 1))]
        value = numpy_helper.to_array(init).copy()
        value.flat[data.draw(st.integers(0, value.size - 1))] = data.draw(ODD_FLOATS)
        init.CopyFrom(numpy_helper.from_array(value, init.name))
    elif kind == "attribute":
        node = g.node[data.draw(st.integers(0, len(g.node) - 1))]
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.FLOAT:
                attr.f = data.draw(ODD_FLOATS)
            elif attr.type == onnx.AttributeProto.INT:
                attr.i = data.draw(st.integers(-3, 40))
    elif kind == "drop_node":
        del g.node[data.draw(st.integers(0, len(g.node) - 1))]
    elif kind == "rewire":
        node = g.node[data.draw(st.integers(1, len(g.node) - 1))]
        names = [t for n in g.node for t in n.output] + [i.name for i in g.initializer]
        node.input[0] = names[data.draw(st.integers(0, len(names) - 1))]
    else:
        dim = g.input[0].type.tensor_type.shape.dim
        dim[-1].dim_value = data.draw(st.integers(0, 100))


@FUZZ
@given(data=st.data())
def test_fuzzed_onnx_compiles_exactly_or_is_refused(capsys, workspace, data):
    proto = onnx.load(str(workspace / "model.onnx"))
    _mutate_onnx(proto, data)
    path = workspace / "mutated.onnx"
    onnx.save(proto, str(path))
    before = tree(workspace)
    out = workspace / "out"
    shutil.rmtree(out, ignore_errors=True)
    code = assert_clean(run_cli(capsys, "compile", path, "-o", out))
    outside = {k: v for k, v in tree(workspace).items() if not k.startswith("out/") and k != ".out.lock"}
    assert outside == {k: v for k, v in before.items() if not k.startswith("out/") and k != ".out.lock"}
    if code == 0:  # whatever compiled is exact against qonnx's executor on the model it compiled
        graph = build.load(out)
        x = np.load(workspace / "x.npy")[:8]
        try:
            reference = analysis.qonnx_tensors(out, x)
        except Exception as e:  # a rewired graph with a dead branch: qonnx's executor needs every shape
            assume("unspecified tensor shapes" not in str(e))
            raise
        diffs, _ = analysis.diff_against_qonnx(graph, reference, x)
        assert diffs == []
    else:
        assert not out.exists()


def test_truncated_or_flipped_onnx_bytes_are_refused(capsys, workspace):
    raw = (workspace / "model.onnx").read_bytes()
    rng = np.random.default_rng(0)
    for k in range(6):
        damaged = bytearray(raw[: len(raw) * (k + 1) // 8])
        for i in rng.integers(0, len(damaged), size=20):
            damaged[i] ^= 0xFF
        path = workspace / f"damaged{k}.onnx"
        path.write_bytes(bytes(damaged))
        code = assert_clean(run_cli(capsys, "compile", path, "-o", workspace / "out_damaged"))
        if code == 0:
            shutil.rmtree(workspace / "out_damaged")


def _mutate_ir(folder: Path, data) -> None:
    doc = json.loads((folder / "ir.json").read_text())
    node = doc["nodes"][data.draw(st.integers(0, len(doc["nodes"]) - 1))]
    key = data.draw(st.sampled_from(sorted(node)))
    value = data.draw(st.one_of(st.integers(-5, 1 << 40), st.floats(allow_nan=True), st.text(max_size=12),
                                st.none(), st.lists(st.integers(-3, 3), max_size=3), st.just({"array": "nope"})))
    node[key] = value
    (folder / "ir.json").write_text(json.dumps(doc))


@FUZZ
@given(data=st.data())
def test_fuzzed_build_folders_run_or_are_refused(capsys, workspace, data):
    b = workspace / "build_fuzz"
    shutil.rmtree(b, ignore_errors=True)
    shutil.copytree(workspace / "build", b)
    _mutate_ir(b, data)
    x = workspace / "x.npy"
    code = assert_clean(run_cli(capsys, "predict", b, "--backend", "c", "--input", x, "--output",
                                workspace / "y.npy"))
    if code == 0:  # an edit that leaves a valid network: the C library agrees with golden on it
        assert np.array_equal(np.load(workspace / "y.npy"), golden.predict_int(build.load(b), np.load(x)))
    assert_clean(run_cli(capsys, "inspect", b))


@FUZZ
@given(dtype=st.sampled_from(["float32", "float64", "int8", "uint8", "float16", "bool", "complex64", "U3"]),
       rows=st.integers(0, 3), features=st.sampled_from([64, 63, 1]), extra=st.booleans(), odd=ODD_FLOATS)
def test_fuzzed_inputs_predict_exactly_or_are_refused(capsys, workspace, dtype, rows, features, extra, odd):
    shape = (rows, features, 1) if extra else (rows, features)
    x = np.zeros(shape, dtype=dtype)
    if dtype.startswith("float") and x.size:
        x.flat[0] = odd
    np.save(workspace / "fuzz_x.npy", x)
    y = workspace / "fuzz_y.npy"
    y.unlink(missing_ok=True)
    code = assert_clean(run_cli(capsys, "predict", workspace / "build", "--input", workspace / "fuzz_x.npy",
                                "--output", y))
    if code == 0:
        graph = build.load(workspace / "build")
        assert np.array_equal(np.load(y), golden.predict_int(graph, x.astype(np.float32)))
    else:
        assert not y.exists()


YAML_VALUES = st.one_of(st.integers(-10, 10**12), st.floats(allow_nan=True), st.text(max_size=8), st.booleans(),
                        st.none(), st.lists(st.integers(-2, 300), max_size=4))


@FUZZ
@given(section=st.sampled_from(["model", "train", "hw", "dataset", "distill", "prune", "share", "nope"]),
       key=st.sampled_from(["hidden", "epochs", "lr", "target_cycles", "w_bits", "a_bits", "kind", "name", "x"]),
       value=YAML_VALUES)
def test_fuzzed_configs_validate_or_are_one_line(section, key, value):
    from xnorkit.errors import XnorkitError
    from xnorkit.quant_train import config

    try:
        config.validate({section: {key: value}} if section != "dataset" else {section: value})
    except XnorkitError as e:
        assert len(str(e).splitlines()) == 1 and len(str(e)) < 500


@FUZZ
@given(command=st.sampled_from(["hw", "sim", "firmware", "inspect", "exits"]),
       option=st.sampled_from(["--target-cycles", "--target-fps", "--clock-mhz", "--exit-rate", "--count", "--stall",
                               "--board", "--margin", "--simulator", "--backend"]),
       value=st.sampled_from(["nan", "inf", "-1", "0", "1e400", "abc", "", "../x", "99999999999999999999", "0.5"]))
def test_fuzzed_option_values_run_or_are_one_line(capsys, workspace, command, option, value):
    b = workspace / "build_opts"
    if not b.exists():
        shutil.copytree(workspace / "build", b)
    if command == "sim" and option not in ("--count", "--stall", "--simulator"):
        return  # sim runs the simulator only for its own options (kept short)
    if command == "sim":
        from tests.conftest import require_tool

        require_tool("verilator")
    args = [command, b, option, value] + (["--bulk", "--count", "2"] if command == "sim" and option != "--count"
                                          else ["--bulk"] if command == "sim" else [])
    assert_clean(run_cli(capsys, *args))
