"""Hostile and broken inputs (issue 22's classes): each is one line on stderr with exit 2 (or 130 when
interrupted), never a traceback, never a wrong answer with exit 0, never a lost or half-written output, never
code run from data. The CLI runs in this process (xnorkit.cli.main) where a subprocess is not the point."""

from __future__ import annotations

import json
import pickle
import signal
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.conftest import assert_refused, run_cli
from xnorkit import build, golden, outputs
from xnorkit.errors import XnorkitError


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def model(trained_build) -> Path:
    return trained_build / "model.onnx"


def _edit_onnx(source: Path, out: Path, edit) -> Path:
    proto = onnx.load(str(source))
    edit(proto.graph)
    onnx.save(proto, str(out))
    return out


def _set_initializer(graph, pick, change) -> None:
    """Replace the first float initializer that `pick(name, array)` accepts with `change(array)`."""
    for k, init in enumerate(graph.initializer):
        value = numpy_helper.to_array(init)
        if value.dtype.kind == "f" and pick(init.name, value):
            graph.initializer[k].CopyFrom(numpy_helper.from_array(change(value.copy()), init.name))
            return
    raise AssertionError("no such initializer")


def _bn_input(graph, position: int) -> str:
    return next(n for n in graph.node if n.op_type == "BatchNormalization").input[position]


# ---- ONNX numerics: NaN/Inf and degenerate batch-norm are refused, naming the node -------------------------

@pytest.mark.parametrize("case", ["nan_weight", "inf_bn_mean", "negative_variance", "zero_variance_zero_eps",
                                  "nan_scale"])
def test_non_finite_or_degenerate_onnx_is_refused_at_compile(capsys, model, tmp_path, case):
    def edit(graph):
        if case == "nan_weight":
            _set_initializer(graph, lambda name, v: v.ndim == 2, lambda v: np.where(v == v.flat[0], np.nan, v))
        elif case == "inf_bn_mean":
            _set_initializer(graph, lambda name, v: name == _bn_input(graph, 3), lambda v: v + np.inf)
        elif case in ("negative_variance", "zero_variance_zero_eps"):
            _set_initializer(graph, lambda name, v: name == _bn_input(graph, 4),
                             lambda v: v * 0 - 1 if case == "negative_variance" else v * 0)
            if case == "zero_variance_zero_eps":
                bn = next(n for n in graph.node if n.op_type == "BatchNormalization")
                next(a for a in bn.attribute if a.name == "epsilon").f = 0.0
        else:
            quant = next(n for n in graph.node if n.op_type == "Quant")
            _set_initializer(graph, lambda name, v: name == quant.input[1], lambda v: v * np.nan)

    path = _edit_onnx(model, tmp_path / "m.onnx", edit)
    words = {"negative_variance": "variance + epsilon must be positive",
             "zero_variance_zero_eps": "variance + epsilon must be positive"}.get(case, "NaN or infinite")
    assert_refused(run_cli(capsys, "compile", path, "-o", tmp_path / "b"), words)
    assert not (tmp_path / "b").exists()


# ---- outputs are never lost -----------------------------------------------------------------------------

@pytest.mark.parametrize("location,words", [("../../../etc/passwd", "outside the directory"),
                                            ("/etc/passwd", "absolute path"), ("gone.bin", "not regular file")])
def test_external_data_outside_the_models_folder_is_never_read(capsys, model, tmp_path, location, words):
    """An ONNX file's external data names a file: only one beside the model is read."""
    from onnx import TensorProto

    def edit(graph):
        init = max(graph.initializer, key=lambda t: len(t.raw_data))
        init.ClearField("raw_data")
        init.data_location = TensorProto.EXTERNAL
        entry = init.external_data.add()
        entry.key, entry.value = "location", location

    bad = _edit_onnx(model, tmp_path / "m.onnx", edit)
    assert_refused(run_cli(capsys, "compile", bad, "-o", tmp_path / "b"), "external data", words)
    assert not (tmp_path / "b").exists()


def test_compile_refuses_the_current_folder_and_foreign_folders(capsys, model, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    assert_refused(run_cli(capsys, "compile", model, "-o", ".", cwd=work), "current folder")
    assert_refused(run_cli(capsys, "compile", model, "-o", "..", cwd=work), "current folder")
    assert_refused(run_cli(capsys, "compile", model, "-o", work), "not empty")
    assert_refused(run_cli(capsys, "compile", model, "-o", model.parent), "holds the input")
    assert_refused(run_cli(capsys, "compile", model, "-o", work / "notes.txt"), "is a file")
    assert (work / "notes.txt").read_text() == "mine" and snapshot(work) == {"notes.txt": b"mine"}
    assert {p.name for p in model.parent.iterdir()} >= {"checkpoint.pt", "metrics.json", "model.onnx"}


def test_compile_replaces_its_own_build_and_firmware_refuses_a_foreign_folder(capsys, model, trained_build, tmp_path):
    assert run_cli(capsys, "compile", model, "-o", tmp_path / "b")[0] == 0
    assert outputs.kind_of(tmp_path / "b") == "build"
    assert run_cli(capsys, "compile", model, "-o", tmp_path / "b")[0] == 0  # its own kind: replaced
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "main.c").write_text("int main(void) { return 0; }\n")
    assert_refused(run_cli(capsys, "firmware", tmp_path / "b", "-o", tmp_path / "lib"), "not empty")
    assert (tmp_path / "lib" / "main.c").exists()
    assert run_cli(capsys, "firmware", tmp_path / "b", "-o", tmp_path / "fw")[0] == 0  # a new folder
    assert run_cli(capsys, "firmware", tmp_path / "b", "-o", tmp_path / "fw")[0] == 0  # its own kind again


@pytest.mark.parametrize("place", ["/proc/xnorkit-test/out", "/sys/xnorkit-test/out"])
def test_an_unwritable_output_is_one_line_before_any_work(capsys, model, trained_build, tmp_path, place):
    """/proc and /sys refuse new folders even to root: what a read-only place does, on any machine."""
    import shutil

    config = tmp_path / "c.yaml"
    config.write_text("model: {hidden: [8]}\ntrain: {epochs: 50}\n")  # would take minutes if it started
    b = tmp_path / "b"
    shutil.copytree(trained_build / "build", b)
    assert run_cli(capsys, "hw", b)[0] == 0  # what report reads
    for args in (["compile", model, "-o", place], ["firmware", b, "-o", place],
                 ["train", config, "-o", place], ["flow", config, "-o", place],
                 ["predict", b, "--input", trained_build / "x.npy", "--output", place + ".npy"],
                 ["report", b, "-o", place]):
        assert_refused(run_cli(capsys, *args), "cannot write" if args[0] != "predict" else "")
    assert_refused(run_cli(capsys, "predict", trained_build / "build", "--input", trained_build / "x.npy",
                           "--output", tmp_path), "is a folder")


class _InterruptAt:
    """Raises KeyboardInterrupt at the `at`-th call of any wrapped function (counting from 1)."""

    def __init__(self, at: int):
        self.at, self.calls = at, 0

    def wrap(self, real):
        def wrapper(*args, **kwargs):
            self.calls += 1
            if self.calls == self.at:
                raise KeyboardInterrupt
            return real(*args, **kwargs)
        return wrapper


def test_a_write_interrupted_at_every_step_leaves_the_old_tree_or_the_new_one(tmp_path, monkeypatch):
    """KeyboardInterrupt (what SIGINT and, under the CLI, SIGTERM raise) at each file operation of a
    replacement: the destination afterwards holds the old files or the new ones, never a mix or nothing, and
    the next write resolves what was left beside it."""
    import shutil
    from pathlib import Path as P

    dest = tmp_path / "out"
    old, new = {"a.txt": "old a", "b.txt": "old b"}, {"a.txt": "new a", "c.txt": "new c"}
    at = 1
    while True:
        shutil.rmtree(dest, ignore_errors=True)
        outputs.write_tree(dest, old, "generated")
        interrupt = _InterruptAt(at)
        with monkeypatch.context() as m:
            for name in ("rename", "write_text", "mkdir", "chmod"):
                m.setattr(P, name, interrupt.wrap(getattr(P, name)))
            m.setattr(outputs.shutil, "rmtree", interrupt.wrap(shutil.rmtree))
            try:
                outputs.write_tree(dest, new, "generated")
                finished = True
            except KeyboardInterrupt:
                finished = False
        files = {k: v.decode() for k, v in snapshot(dest).items() if k != outputs.MARKER}
        assert files in (old, new), (at, files)
        outputs.write_tree(dest, old, "generated")  # the next run recovers and writes
        assert {k: v.decode() for k, v in snapshot(dest).items() if k != outputs.MARKER} == old
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out-")]
        if finished:
            break
        at += 1
    assert at >= 8  # every file operation of the replacement was interrupted once


def test_a_killed_write_is_resolved_by_the_next_one(tmp_path):
    """What SIGKILL can leave: the old tree renamed aside and the destination missing, or a stray new tree."""
    dest = tmp_path / "out"
    outputs.write_tree(dest, {"a.txt": "old"}, "generated")
    dest.rename(tmp_path / ".out-old")
    (tmp_path / ".out-new-x1").mkdir()
    outputs.recover(dest)
    assert (dest / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"]


def _interrupt_while_writing(args: list, out: Path, delay: float | None, signum: int, cwd: Path) -> int:
    """Run `xnorkit ARGS` and send `signum` `delay` seconds after its new tree for `out` appears (None: at once,
    before it writes anything). Returns the exit code; a traceback fails the test."""
    import subprocess
    import time

    assert not list(out.parent.glob(f".{out.name}-new-*")), "a new tree left by the run before"
    proc = subprocess.Popen([sys.executable, "-m", "xnorkit", *map(str, args)], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if delay is not None:
        while proc.poll() is None and not list(out.parent.glob(f".{out.name}-new-*")):
            time.sleep(0.0005)
        time.sleep(delay)
    else:
        time.sleep(0.6)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    # killed by the signal itself only before Python's first instruction (no handler yet): silent, nothing written
    before_python = delay is None and proc.returncode == -signum and not err
    assert "Traceback" not in err and (proc.returncode in (0, 130) or before_python), (proc.returncode, delay, err)
    if proc.returncode == 130:  # with its one line (typer once swallowed it into a silent 130)
        assert "xnorkit: error: interrupted" in err, (delay, err)
    return proc.returncode


@pytest.mark.parametrize("command", ["compile", "hw", "firmware"])
def test_signals_during_compile_hw_and_firmware_leave_old_or_new_complete(trained_build, tmp_path, command):
    """SIGINT and SIGTERM before the write and at moments after the new tree appears beside the old one: the
    output is afterwards the old one or the new one, byte for byte, and the build loads."""
    import subprocess

    model = trained_build / "model.onnx"
    other = _edit_onnx(model, tmp_path / "other.onnx", lambda g: _set_initializer(
        g, lambda name, v: v.ndim == 2, lambda v: -v))  # another network: old and new builds differ
    b, b_other = tmp_path / "b", tmp_path / "b_other"
    build.compile_model(other, b_other)
    if command == "compile":
        args, out = ["compile", model, "-o", b], b
        build.compile_model(other, b)
    elif command == "hw":
        args, out = ["hw", b, "--target-cycles", "16"], b / "rtl"
        build.compile_model(model, b)
        build.generate_hw(b, target_cycles=64)
    else:
        args, out = ["firmware", b], b / "firmware"
        build.compile_model(model, b)
        build.generate_firmware(b_other, out=out)
    old = snapshot(out)
    subprocess.run([sys.executable, "-m", "xnorkit", *map(str, args)], cwd=tmp_path, check=True, capture_output=True)
    new = snapshot(out)
    assert old != new
    seen = set()
    for signum in (signal.SIGINT, signal.SIGTERM):
        for delay in (None, 0.0, 0.002, 0.01, 0.05):
            restore(out, old)
            code = _interrupt_while_writing(args, out, delay, signum, tmp_path)
            now = snapshot(out)
            assert now in (old, new), (signum, delay, code)
            seen.add("new" if now == new else "old")
            build.load(b)
    assert seen == {"old", "new"}  # both outcomes happened: the signals fell before and after the swap


def restore(folder: Path, files: dict[str, bytes]) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)


def test_two_compiles_into_one_folder_at_once_both_finish_and_the_build_is_whole(model, tmp_path):
    import subprocess

    procs = [subprocess.Popen([sys.executable, "-m", "xnorkit", "compile", str(model), "-o", str(tmp_path / "b")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    build.load(tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["b"]


# ---- inputs: .npy files and their values ----------------------------------------------------------------

@pytest.mark.parametrize("case,words", [
    ("zero_bytes", "cannot read input"), ("structured", "give real numbers"), ("npz", ".npz archive"),
    ("no_rows", "N >= 1"), ("nan_pixel", "NaN or infinite"), ("wrong_shape", "the model takes"),
    ("object", "cannot read input"), ("missing", "does not exist")])
def test_bad_inputs_are_one_line(capsys, trained_build, tmp_path, case, words):
    x = tmp_path / "x.npy"
    if case == "zero_bytes":
        x.write_bytes(b"")
    elif case == "structured":
        np.save(x, np.zeros(3, dtype=[("a", "f4"), ("b", "i4")]))
    elif case == "npz":
        np.savez(x, a=np.zeros((2, 64), dtype=np.float32))
        (tmp_path / "x.npy.npz").rename(x)
    elif case == "no_rows":
        np.save(x, np.zeros((0, 64), dtype=np.float32))
    elif case == "nan_pixel":
        bad = np.load(trained_build / "x.npy")[:4].copy()
        bad[2, 5] = np.nan
        np.save(x, bad)
    elif case == "wrong_shape":
        np.save(x, np.zeros((2, 63), dtype=np.float32))
    elif case == "object":
        np.save(x, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    backends = ("golden", "c", "qonnx", "rtl", "cortex-m4") if case == "no_rows" else ("golden", "c")
    for backend in backends:
        assert_refused(run_cli(capsys, "predict", trained_build / "build", "--backend", backend, "--input", x,
                           "--output", tmp_path / "y.npy"), words)
    assert not (tmp_path / "y.npy").exists()


def test_output_is_written_under_the_name_given(capsys, trained_build, tmp_path):
    code, out, _ = run_cli(capsys, "predict", trained_build / "build", "--input", trained_build / "x.npy",
                       "--output", tmp_path / "y.out")
    assert code == 0 and f"{tmp_path / 'y.out'}" in out
    assert np.load(tmp_path / "y.out").shape == (40, 10) and not (tmp_path / "y.out.npy").exists()


# ---- tampered build folders -----------------------------------------------------------------------------

def _tamper_ir(folder: Path, case: str) -> None:
    doc = json.loads((folder / "ir.json").read_text())
    arrays = dict(np.load(folder / "ir.npz"))
    first_layer = next(n for n in doc["nodes"] if n["op"] == "MatMul")
    if case == "invalid_json":
        (folder / "ir.json").write_text("{ not json")
        return
    if case == "no_nodes":
        del doc["nodes"]
    elif case == "npz_garbage":
        (folder / "ir.npz").write_bytes(b"PK\x03\x04garbage")
        return
    elif case == "scale_zero":
        doc["nodes"][0]["scale"] = 0.0
    elif case == "negative_input_shape":
        doc["input_shape"] = [-64]
    elif case == "weights_wrong_shape":
        name = first_layer["weights"]["array"]
        arrays[name] = arrays[name][:, :-1]
    elif case == "thresholds_nan":
        node = next(n for n in doc["nodes"] if n["op"] == "Threshold")
        name = node["thresholds"]["array"]
        arrays[name] = arrays[name].astype(np.float64) * np.nan
    elif case == "comment_injection":
        first_layer["name"] = "fc0 */ system(\"id\"); /*"
    elif case == "unknown_type":
        doc["nodes"][0]["dtype"] = "int9999"
    (folder / "ir.json").write_text(json.dumps(doc))
    np.savez(folder / "ir.npz", **arrays)


@pytest.mark.parametrize("case", ["invalid_json", "no_nodes", "npz_garbage", "scale_zero", "negative_input_shape",
                                  "weights_wrong_shape", "thresholds_nan", "comment_injection", "unknown_type"])
def test_a_tampered_build_is_refused_by_every_reader(capsys, trained_build, tmp_path, case):
    import shutil

    b = tmp_path / "b"
    # the compiled IR alone (another test of this worker may have generated the backends into the shared build)
    shutil.copytree(trained_build / "build", b, ignore=shutil.ignore_patterns("rtl", "firmware", "hls", "sim_build"))
    _tamper_ir(b, case)
    with pytest.raises(XnorkitError):
        build.load(b)
    for args in (["predict", b, "--input", trained_build / "x.npy", "--output", tmp_path / "y.npy"],
                 ["inspect", b], ["hw", b], ["firmware", b]):
        assert_refused(run_cli(capsys, *args))
    assert not (tmp_path / "y.npy").exists() and not (b / "rtl").exists() and not (b / "firmware").exists()


def _edit_json(path: Path, edit) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


DESIGN_EDITS = {"interval_text": lambda d: d.update(initiation_interval="x"),
                "top_injection": lambda d: d.update(top="x; exec rm -rf /"),
                "stream_nan": lambda d: d["input"].update(elem_bits=float("nan")),
                "layer_negative": lambda d: d["layers"][0].update(cycles=-1)}


@pytest.mark.parametrize("case", ["missing_mem", "missing_sv", "garbage_mem", "damaged_design", *DESIGN_EDITS])
def test_a_tampered_rtl_folder_is_refused_before_simulation(capsys, trained_build, tmp_path, case):
    import shutil

    b = tmp_path / "b"
    shutil.copytree(trained_build / "build", b)
    build.generate_hw(b)
    rtl = b / "rtl"
    if case == "missing_mem":
        next(rtl.glob("*.mem")).unlink()
    elif case == "missing_sv":
        (rtl / "model_top.sv").unlink()  # named after model.onnx
    elif case == "garbage_mem":
        next(rtl.glob("*.mem")).write_text("zz not hex\n")
    elif case == "damaged_design":
        (rtl / "design.json").write_text("{")
    else:
        _edit_json(rtl / "design.json", DESIGN_EDITS[case])
    assert_refused(run_cli(capsys, "predict", b, "--backend", "rtl", "--input", trained_build / "x.npy",
                       "--output", tmp_path / "y.npy"), "regenerate it with `xnorkit hw")
    assert_refused(run_cli(capsys, "sim", b, "--bulk", "--count", "4"), "regenerate")
    assert_refused(run_cli(capsys, "report", b, "-o", tmp_path / "r"), "regenerate")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name,edit,words", [
    ("utilization.json", lambda d: d["total"].update(lut=-5), "'total.lut'"),
    ("utilization.json", lambda d: d.update(family="x; rm"), "'family'"),
    ("utilization.json", lambda d: d.update(clock_mhz=float("inf")), "'clock_mhz'"),
    ("utilization.json", None, "damaged (JSONDecodeError)"),
    ("report.json", lambda d: d.update(n_test="all"), "'n_test'")])
def test_tampered_results_beside_a_build_are_refused_by_the_report(capsys, trained_build, tmp_path, name, edit,
                                                                    words):
    """What `synth` and `flow` leave beside a build, edited: one line, no report written."""
    import shutil

    b = tmp_path / "b"
    shutil.copytree(trained_build / "build", b)
    build.generate_hw(b)
    good = {"board": "icebreaker", "family": "ice40", "top": "xnorkit_shell", "fits": True, "design_sha256": "",
            "total": {"lut": 1, "ff": 1, "bram": 0, "dsp": 0}, "layers": {},
            "capacity": {"lut": 5280, "ff": 5280, "bram": 30, "dsp": 8}, "clock_mhz": 12.0}
    if name == "report.json":
        good = {"accuracy": {"brevitas": 0.9, "golden": 0.9}, "n_test": 10, "agreement": {"c": 10}}
    path = b / "synth" / "icebreaker" / name if name == "utilization.json" else b / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(good))
    assert run_cli(capsys, "report", b, "-o", tmp_path / "ok")[0] == 0  # the untouched file is read
    if edit is None:
        path.write_text("garbage")
    else:
        _edit_json(path, edit)
    assert_refused(run_cli(capsys, "report", b, "-o", tmp_path / "r"), words)
    assert not (tmp_path / "r").exists()


# ---- options ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,words", [
    (["hw", "BUILD", "--target-fps", "nan"], "finite"), (["hw", "BUILD", "--clock-mhz", "inf", "--target-fps", "5"],
                                                          "finite"),
    (["hw", "BUILD", "--target-cycles", "abc"], "Invalid value for '--target-cycles'"),
    (["sim", "BUILD", "--count", "-3"], "--count"), (["sim", "BUILD", "--stall", "nan"], "--stall"),
    (["hw", "BUILD", "--fold", "FOLD"], "folding JSON"), (["hw", "BUILD", "--board", "../../x"], "unknown board"),
    (["compile"], "Missing argument"), (["predict", "BUILD", "--nope"], "No such option")])
def test_bad_options_are_one_line(capsys, trained_build, tmp_path, args, words):
    (tmp_path / "fold.json").write_text('{"fc0": {"pe": Infinity, "simd": 1}}')
    args = [str(trained_build / "build") if a == "BUILD" else str(tmp_path / "fold.json") if a == "FOLD" else a
            for a in args]
    assert_refused(run_cli(capsys, *args), words)


# ---- nothing from the data becomes code or a path ---------------------------------------------------------

class _RunsCode:
    def __reduce__(self):
        return (Path.write_text, (Path("PWNED"), "ran"))


def test_a_teacher_checkpoint_that_would_run_code_is_refused(tmp_path):
    import torch

    from xnorkit.quant_train import config, data, recipe

    run_dir = tmp_path / "teacher"
    run_dir.mkdir()
    torch.save({"config": {}, "state_dict": {}, "x": _RunsCode()}, run_dir / "checkpoint.pt",
               pickle_protocol=pickle.DEFAULT_PROTOCOL)
    cfg = config.validate({"model": {"hidden": [8]}, "distill": {"teacher": str(run_dir)}})
    here = Path.cwd()
    import os

    os.chdir(tmp_path)
    try:
        with pytest.raises(XnorkitError, match="not a checkpoint of `xnorkit train`"):
            recipe.load_teacher(cfg, data.load_digits())
    finally:
        os.chdir(here)
    assert not (tmp_path / "PWNED").exists()


def test_an_unsafe_name_is_refused_by_the_one_name_check():
    """Names reach SV and C comments and file names: check_name is the one gate (a tampered ir.json's node name
    with a comment terminator is refused by every reader, test_a_tampered_build_is_refused_by_every_reader)."""
    from xnorkit.ir import check_name

    for name in ('x */ $system("id") /*', "a\nb", "../x", "", "x" * 129):
        with pytest.raises(XnorkitError, match="is not allowed"):
            check_name(name, "node")
    check_name("Gemm_0_out0", "tensor")


def test_a_yaml_alias_bomb_is_refused_small_and_fast(capsys, tmp_path):
    import time

    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for k in range(1, 9):
        prev = chr(ord("a") + k - 1)
        lines.append(f"{chr(ord('a') + k)}: &{chr(ord('a') + k)} [{','.join(['*' + prev] * 9)}]")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    start = time.monotonic()
    result = run_cli(capsys, "train", tmp_path / "bomb.yaml", "-o", tmp_path / "out")
    assert time.monotonic() - start < 10
    assert_refused(result, "aliases")
    assert len(result[2]) < 400 and not (tmp_path / "out").exists()


def test_a_board_name_is_never_a_path():
    from xnorkit import boards

    for name in ("../../x", "pynq-z2/../../etc", "/etc/passwd", "PYNQ-Z2"):
        with pytest.raises(XnorkitError, match="unknown board"):
            boards.load(name)
    assert boards.load("pynq-z2").name == "pynq-z2"


MY_FPGA = """# a user's own board: a Zynq-7010-sized part
name: my-z7010
kind: fpga
description: my own Zynq-7010 board
family: xc7
part: xc7z010clg400-1
package: clg400
clock_mhz: 125
lut: 17600
ff: 35200
bram: 120
dsp: 80
toolchain: vivado
"""
MY_MCU = """name: my-m4
kind: mcu
description: my own Cortex-M4F board
cpu: cortex-m4f
part: MYPART
clock_mhz: 64
flash_bytes: {flash}
ram_bytes: 65536
"""


def test_a_users_board_file_drives_hw_and_firmware(capsys, trained_build, tmp_path):
    import shutil

    b = tmp_path / "b"
    shutil.copytree(trained_build / "build", b)
    (tmp_path / "fpga.yaml").write_text(MY_FPGA)
    code, out, err = run_cli(capsys, "hw", b, "--board-file", tmp_path / "fpga.yaml")
    assert code == 0, err
    assert "my-z7010: estimated" in out and "125 MHz" in out
    (tmp_path / "mcu.yaml").write_text(MY_MCU.format(flash=1 << 20))
    code, out, err = run_cli(capsys, "firmware", b, "--board-file", tmp_path / "mcu.yaml")
    assert code == 0, err
    assert "my-m4: flash" in out and "of 1,048,576 bytes" in out
    (tmp_path / "tiny.yaml").write_text(MY_MCU.format(flash=1024))
    assert_refused(run_cli(capsys, "firmware", b, "--board-file", tmp_path / "tiny.yaml", "-o", tmp_path / "fw"),
                   "my-m4")
    assert not (tmp_path / "fw").exists()


@pytest.mark.parametrize("command,text,words", [
    ("hw", MY_FPGA, "not both"),  # with --board as well
    ("hw", MY_FPGA.replace("name: my-z7010", "name: ../../outside"), "name: String should match pattern"),
    ("hw", MY_FPGA.replace("name: my-z7010", "name: pynq-z2"), "built-in board"),
    ("hw", MY_FPGA.replace("lut: 17600", "lut: -1"), "lut"),
    ("hw", MY_FPGA + "extra: 1\n", "extra"),
    ("hw", "a: &a [1, 2]\nb: *a\n", "aliases"),
    ("hw", "- a list\n", "mapping"),
    ("hw", "name: [unclosed\n", "not valid YAML"),
    ("hw", MY_MCU.format(flash=1024), "not an FPGA board"),
    ("firmware", MY_FPGA, "not a microcontroller board"),
    ("firmware", MY_MCU.format(flash=1 << 20) + "fpu: fpv9-dp\n", "fpu"),  # no such FPU
    ("firmware", MY_MCU.format(flash=1 << 20) + "ram_origin: -4\n", "ram_origin"),  # no such address
    ("synth", None, "does not exist"),
    ("synth", "", "name the board")])
def test_a_bad_board_file_is_one_line_and_writes_nothing(capsys, trained_build, tmp_path, command, text, words):
    import shutil

    b = tmp_path / "b"
    shutil.copytree(trained_build / "build", b)
    args = [command, b]
    if text:
        (tmp_path / "board.yaml").write_text(text)
    if text is None or text:
        args += ["--board-file", tmp_path / "board.yaml"]
    if words == "not both":
        args += ["--board", "pynq-z2"]
    assert_refused(run_cli(capsys, *args), words)
    assert sorted(p.name for p in b.iterdir()) == sorted(p.name for p in (trained_build / "build").iterdir())


def test_synth_replaces_only_a_synthesis_folder(capsys, trained_build, tmp_path):
    """A board's name names BUILD/synth/NAME, which synth rebuilds: a folder there that synth did not write
    is refused, not deleted; a gate-level netlist is named by a board name, never a path."""
    import shutil

    b = tmp_path / "b"
    shutil.copytree(trained_build / "build", b)
    (tmp_path / "fpga.yaml").write_text(MY_FPGA)
    (b / "synth" / "my-z7010").mkdir(parents=True)
    (b / "synth" / "my-z7010" / "notes.txt").write_text("mine")
    assert_refused(run_cli(capsys, "synth", b, "--board-file", tmp_path / "fpga.yaml"), "not an xnorkit synth")
    assert (b / "synth" / "my-z7010" / "notes.txt").read_text() == "mine"
    assert_refused(run_cli(capsys, "sim", b, "--gate-level", "../../x", "--count", "2"), "board's name")


def test_golden_is_unchanged_by_the_checks(trained_build):
    """The checks only refuse: a good build predicts as before."""
    x = np.load(trained_build / "x.npy")
    graph = build.load(trained_build / "build")
    assert np.array_equal(build.predict(trained_build / "build", "golden", x), golden.predict_int(graph, x))


def test_a_file_missing_from_the_install_is_one_line():
    """An incomplete install (a wheel without sim/harness.cpp once) names the file instead of a traceback."""
    from xnorkit import tools

    with pytest.raises(XnorkitError, match="this xnorkit install lacks xnorkit/sim/nope.cpp"):
        tools.package_text("xnorkit.sim", "nope.cpp")
    assert "module" in tools.package_text("xnorkit.hw", "rtl", "xk_mvtu.sv")


def test_a_layer_output_read_twice_is_refused_not_folded_twice(capsys, model, tmp_path):
    """Found by the fuzz suite: a sign reading a layer's output beside its batch-norm used to see the
    batch-norm folded in (one accumulator, folded in place), and disagreed with qonnx."""
    def edit(graph):
        bn = next(n for n in graph.node if n.op_type == "BatchNormalization")
        sign = next(n for n in graph.node if n.op_type == "BipolarQuant" and n.input[0] == bn.output[0])
        sign.input[0] = bn.input[0]

    path = _edit_onnx(model, tmp_path / "m.onnx", edit)
    assert_refused(run_cli(capsys, "compile", path, "-o", tmp_path / "b"), "is read by 2 nodes")


def test_after_an_interrupt_a_half_built_objects_finalizer_prints_nothing(monkeypatch, capsys):
    """An interrupt inside ZipFile's constructor leaves an object whose __del__ fails (`no attribute '_writing'`);
    once interrupted, such finalizer errors are dropped (the command's one line stands); before, they print."""
    import gc
    import io
    import sys
    import zipfile

    from xnorkit import outputs

    monkeypatch.setattr(sys, "unraisablehook", outputs._unraisable)
    for interrupted, printed in ((False, True), (True, False)):
        monkeypatch.setattr(outputs, "_interrupted", interrupted)
        half = zipfile.ZipFile.__new__(zipfile.ZipFile)  # as an interrupt in __init__ leaves it: a file, no state
        half.fp = io.BytesIO()
        del half
        gc.collect()
        assert ("_writing" in capsys.readouterr().err) == printed
