"""The command line as a user runs it: one process per command, exit codes, files."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import require_tool
from xnorkit import build, compare, golden


def xnorkit(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xnorkit", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=900)


@pytest.mark.parametrize("backend,tools", [("golden", []), ("c", ["gcc"]), ("rtl", ["verilator"]),
                                           ("cortex-m4", ["arm-none-eabi-gcc", "qemu-system-arm"])])
def test_predict_every_integer_backend_equals_golden(trained_build, tmp_path, backend, tools):
    for tool in tools:
        require_tool(tool)
    b = trained_build / "build"
    proc = xnorkit("predict", b, "--backend", backend, "--input", trained_build / "x.npy",
                   "--output", tmp_path / "y.npy")
    assert proc.returncode == 0, proc.stderr
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.int64
    graph = build.load(b)
    assert np.array_equal(y, golden.predict_int(graph, np.load(trained_build / "x.npy")))


def test_predict_dequantized_qonnx_matches_golden(trained_build, tmp_path):
    b = trained_build / "build"
    for backend in ("qonnx", "golden"):
        proc = xnorkit("predict", b, "--backend", backend, "--input", trained_build / "x.npy",
                       "--output", tmp_path / f"{backend}.npy", "--dequantize")
        assert proc.returncode == 0, proc.stderr
    ours, theirs = np.load(tmp_path / "golden.npy"), np.load(tmp_path / "qonnx.npy")
    assert ours.dtype == np.float32 and compare.float_rows_agree(ours, theirs).all()


@pytest.mark.parametrize("args,message", [
    (["--backend", "qonnx"], "pass --dequantize"),
    (["--backend", "fpga"], "'fpga' is not one of 'qonnx', 'golden', 'rtl', 'hls', 'c', 'cortex-m4'"),
])
def test_predict_errors_are_one_line_exit_2(trained_build, tmp_path, args, message):
    proc = xnorkit("predict", trained_build / "build", "--input", trained_build / "x.npy",
                   "--output", tmp_path / "y.npy", *args)
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_predict_wrong_input_shape(trained_build, tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((3, 10), dtype=np.float32))
    proc = xnorkit("predict", trained_build / "build", "--input", tmp_path / "bad.npy", "--output", tmp_path / "y.npy")
    assert proc.returncode == 2 and "the model takes (N, 64)" in proc.stderr


def test_hw_sim_firmware_commands(trained_build, tmp_path):
    require_tool("verilator")
    b = trained_build / "build"
    (tmp_path / "fold.json").write_text(json.dumps({m: {"pe": 4, "simd": 8} for m in ("Gemm_0", "Gemm_1", "Gemm_2")}
                                                   | {"Gemm_3": {"pe": 2, "simd": 4}}))
    proc = xnorkit("hw", b, "--fold", tmp_path / "fold.json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads((b / "rtl" / "design.json").read_text())
    assert info["folding"]["Gemm_0"] == {"pe": 4, "simd": 8} and info["initiation_interval"] == 64 * 32 // 32
    proc = xnorkit("sim", b, "--count", 12)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    said = " ".join(proc.stdout.split())  # rich wraps lines
    assert "12 inputs bit-exact" in said and "64.0 cycles per inference measured, 64 analytical" in said
    assert "with stalls: 12 of 12 outputs simulated" in said and "back to back: 12 of 12 outputs simulated" in said
    proc = xnorkit("sim", b, "--count", 40, "--bulk")
    said = " ".join(proc.stdout.split())
    assert proc.returncode == 0 and "40 inputs bit-exact against golden (verilator C++ harness" in said
    assert "64.0 cycles per inference measured, 64 analytical" in said
    proc = xnorkit("hw", b, "--target-fps", 5_000_000, "--clock-mhz", 200)  # 40 cycles per inference
    info = json.loads((b / "rtl" / "design.json").read_text())
    assert proc.returncode == 0 and info["initiation_interval"] <= 40
    proc = xnorkit("firmware", b)
    assert proc.returncode == 0 and (b / "firmware" / "model.h").exists()  # named after model.onnx
    proc = xnorkit("firmware", b, "--board", "rpi-pico", "-o", tmp_path / "pico")
    said = " ".join(proc.stdout.split())
    assert proc.returncode == 0 and (tmp_path / "pico" / "model.c").exists(), proc.stderr
    assert "rpi-pico: flash" in said and "of 2,097,152 bytes" in said
    proc = xnorkit("firmware", b, "--board", "no-such-board", "-o", tmp_path / "none")
    assert proc.returncode == 2 and "unknown board 'no-such-board'; known boards:" in proc.stderr
    assert not (tmp_path / "none").exists()
    proc = xnorkit("boards")
    assert proc.returncode == 0 and "stm32f4-discovery" in proc.stdout and "RP2040" in proc.stdout


def test_config_errors_name_the_key(tmp_path):
    (tmp_path / "c.yaml").write_text("model:\n  hiddn: [8]\n")
    proc = xnorkit("train", tmp_path / "c.yaml", "-o", tmp_path / "o")
    assert proc.returncode == 2 and "unknown key 'model.hiddn'" in proc.stderr
    (tmp_path / "c.yaml").write_text("train:\n  epochs: 0\n")
    proc = xnorkit("train", tmp_path / "c.yaml", "-o", tmp_path / "o")
    assert proc.returncode == 2 and "'train.epochs': Input should be greater than or equal to 1" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_flow_default_network_end_to_end(tmp_path):
    """The acceptance run: the embedded default on the whole digits test split."""
    for tool in ("verilator", "gcc", "arm-none-eabi-gcc", "qemu-system-arm"):
        require_tool(tool)
    proc = xnorkit("flow", "-o", "demo", cwd=tmp_path)  # a relative folder, as `make demo` passes
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    n = report["n_test"]
    assert n == 450
    assert set(report["agreement"]) >= {"brevitas_argmax", "qonnx", "rtl", "c", "cortex-m4"}
    assert all(v == n for v in report["agreement"].values())
    assert report["accuracy"]["golden"] >= 0.92
    assert report["accuracy"]["golden"] == report["accuracy"]["brevitas"]
    assert report["max_relative_error"]["golden_vs_brevitas"] <= 1e-5
    assert report["cycles_per_inference"] == report["cycles_analytical"]
    assert report["folding"] and report["timings_s"]["total"] < 180
    assert not (tmp_path / "demo" / "model.onnx.data").exists()
    for name in ("model.onnx", "report.md", "checkpoint.pt", "metrics.json", "build/ir.json",
                 "build/rtl/demo_top.sv", "build/firmware/demo.c"):
        assert (tmp_path / "demo" / name).exists(), name
    _check_flow_report(tmp_path, report)


def _check_flow_report(tmp_path, report: dict) -> None:
    """One document with the ladder's values, the training curve, the boards, the Cortex-M4 count, the version and
    the config; every table renders, and the page renders in Chromium."""
    import xnorkit
    from tests.conftest import assert_tables_render, screenshot_report

    m4 = report["firmware"]["cortex_m4_instructions"]
    assert m4["images"] == 20 and m4["per_inference"] == sum(c["instructions"] for c in m4["calls"]) > 1000
    md = (tmp_path / "demo" / "report.md").read_text()
    assert md.count("\n# ") == 0 and md.startswith("# xnorkit report: demo")
    golden = f"{report['accuracy']['golden']:.2%}"
    for shown in (f"| golden (integer IR) | {golden} | the reference |", f"| C on the Cortex-M4 (QEMU) | {golden} |",
                  "![Training, per epoch](training.png)", f"{m4['per_inference']:,} instructions per inference",
                  "| mps2-an386 | cortex-m4 | 25 |", "| pynq-z2 | 100 | not synthesized |",
                  "| microbit | cortex-m0 | 16 |",
                  f"xnorkit {xnorkit.__version__}.", "```yaml\ndataset: digits"):
        assert shown in md, shown
    page = tmp_path / "demo" / "report.html"
    html_text = page.read_text()
    assert assert_tables_render(md, html_text) == 6  # ladder, layers, FPGA, MCU, Cortex-M4 calls, time
    assert html_text.count("data:image/png;base64,") == 3  # training, pipeline balance, LUTs per layer
    pixels = screenshot_report(page, tmp_path)
    red = (np.abs(pixels - np.array([0xC4, 0x4E, 0x52])).sum(axis=-1) <= 6).sum()
    assert red > 200  # the training loss curve (and the interval line) drawn


def test_board_commands_and_their_one_line_refusals(trained_build, tmp_path):
    import shutil

    work = tmp_path / "build"
    shutil.copytree(trained_build / "build", work)
    proc = xnorkit("hw", work, "--board", "icebreaker")
    assert proc.returncode == 0 and "icebreaker: estimated" in proc.stdout, proc.stderr
    folding = json.loads((work / "rtl" / "design.json").read_text())["folding"]
    assert all(f["weights"] in ("block", "logic") for f in folding.values())
    for args, message in ((["synth", work, "--board", "rpi-pico"], "not an FPGA board"),
                          (["synth", work, "--board", "de10-nano"], "unknown board 'de10-nano'"),
                          (["hw", work, "--board", "icebreaker", "--target-fps", "100"], "--board picks the folding"),
                          (["hw", work, "--backend", "vhdl"], "'vhdl' is not one of 'rtl', 'hls', 'hls4ml'"),
                          (["firmware", work, "--board", "pynq-z2"], "not a microcontroller board"),
                          (["sim", work, "--gate-level", "icebreaker"], "run `xnorkit synth")):
        proc = xnorkit(*args)
        assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, (
            args, proc.stderr)
    boards_out = xnorkit("boards").stdout
    assert "icebreaker" in boards_out and "pynq-z2" in boards_out and "stm32f4-discovery" in boards_out


def test_version_short_help_and_the_choices_in_help():
    from xnorkit import __version__

    proc = xnorkit("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"xnorkit {__version__}"
    assert xnorkit("-h").returncode == 0 and "--install-completion" in xnorkit("-h").stdout
    for command, choices in ((["predict"], "qonnx|golden|rtl|hls|c|cortex-m4"), (["predict"], "verilator|icarus"),
                             (["hw"], "rtl|hls|hls4ml"), (["sim"], "verilator|icarus"), (["exits"], "digits|mnist"),
                             (["hw"], "arty-a7-35, icebreaker, pynq-z2"),
                             (["firmware"], "microbit, mps2-an385, mps2-an386")):
        helped = subprocess.run([sys.executable, "-m", "xnorkit", *command, "-h"], capture_output=True, text=True,
                                env={**os.environ, "COLUMNS": "250"})  # a wide help box: each choice list on one line
        assert helped.returncode == 0 and choices in helped.stdout, (command, helped.stdout)
