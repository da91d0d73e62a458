"""The Python API (xnorkit/api.py, docs/python-api.md), `xnorkit verify` and its CI workflows (docs/ci.md), and
the one line a missing extra gets."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import require_tool
from tests.test_cli import xnorkit

ROOT = Path(__file__).resolve().parents[1]


def _code_blocks(doc: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (ROOT / "docs" / doc).read_text(), re.S)


def test_the_documented_example_runs_as_written(trained_build, tmp_path):
    """docs/python-api.md's end-to-end example, in a folder holding model.onnx and x.npy."""
    require_tool("gcc")
    require_tool("verilator")
    shutil.copy(trained_build / "model.onnx", tmp_path / "model.onnx")
    shutil.copy(trained_build / "x.npy", tmp_path / "x.npy")
    [example] = _code_blocks("python-api.md", "python")
    proc = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "cycles per inference" in proc.stdout and "rtl: all 40 inputs equal golden" in proc.stdout
    assert "c: all 40 inputs equal golden" in proc.stdout


def test_a_missing_extra_is_one_line_naming_it(monkeypatch, tmp_path):
    import importlib.util

    from xnorkit import api, tools
    from xnorkit.errors import XnorkitError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    with pytest.raises(XnorkitError, match=r"\[report\] extra installs: pip install 'xnorkit\[report\]'"):
        api.write_report(tmp_path)
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert set(tools.EXTRAS.values()) <= set(pyproject["project"]["optional-dependencies"])  # each one exists


def _verify_xml(path: Path) -> dict[str, ET.Element]:
    return {case.get("name"): case for case in ET.parse(path).getroot().iter("testcase")}


def test_verify_refuses_an_unknown_backend(trained_build):
    proc = xnorkit("verify", trained_build / "build", "--input", trained_build / "x.npy", "--backends", "rtl,vhdl")
    assert proc.returncode == 2 and "--backends: vhdl; choose among rtl, hls, c, cortex-m4" in proc.stderr


def test_the_ci_workflows_parse_and_run_verify():
    workflows = _code_blocks("ci.md", "yaml")
    assert len(workflows) == 2
    github, gitlab = (yaml.safe_load(w) for w in workflows)
    steps = github["jobs"]["verify"]["steps"]
    assert any("xnorkit verify" in s.get("run", "") and "--junit" in s.get("run", "") for s in steps)
    job = gitlab["xnorkit-verify"]
    assert any("xnorkit verify" in line and "--junit" in line for line in job["script"])
    assert job["artifacts"]["reports"]["junit"] == "verify.xml"
    # the commands they run are the CLI's: each parses (--help) with the options given
    for line in job["script"]:
        if line.startswith("xnorkit "):
            words = line.split()
            assert xnorkit(words[1], "--help").returncode == 0, line


def test_the_api_returns_the_figures_the_cli_prints(trained_build, tmp_path):
    import xnorkit

    b = tmp_path / "b"
    compiled = xnorkit.compile(trained_build / "model.onnx", b)
    assert compiled.describe()[0] and compiled.graph.input_shape
    hw = xnorkit.generate_hw(b, board="icebreaker")
    assert hw.board == "icebreaker" and hw.estimate["lut"] > 0 and hw.folding
    assert hw.inferences_per_second == pytest.approx(hw.clock_mhz * 1e6 / hw.initiation_interval)
    fw = xnorkit.generate_firmware(b, board="rpi-pico", out=tmp_path / "fw")
    assert fw.folder == tmp_path / "fw" and fw.footprint["flash"] > fw.footprint["weights"] > 0
    x = np.load(trained_build / "x.npy")
    assert xnorkit.predict(b, x).shape == (len(x), 10)


def test_verify_passes_a_good_build_and_names_the_backend_and_input_of_a_corrupted_one(tmp_path):
    """A FINN BNN-PYNQ style TFC (W1A2) exported with plain brevitas.export (its default exporter): every backend
    equals golden; then one bit flipped in a .mem file is named (backend, first input); then the inputs users get
    wrong, each one line."""
    from tests import export_styles as styles

    for tool in ("gcc", "g++", "verilator", "arm-none-eabi-gcc", "qemu-system-arm"):
        require_tool(tool)
    model, x = styles.bnn_pynq_tfc(1, a_bits=2, w_bits=1)
    styles.export(model, x, tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", x)
    b = tmp_path / "b"
    assert xnorkit("compile", tmp_path / "m.onnx", "-o", b).returncode == 0
    proc = xnorkit("verify", b, "--input", tmp_path / "x.npy", "--backends", "rtl,hls,c,cortex-m4",
                   "--junit", tmp_path / "good.xml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cases = _verify_xml(tmp_path / "good.xml")
    assert list(cases) == ["rtl", "hls", "c", "cortex-m4"] and not any(len(c) for c in cases.values())
    # one bit of the output layer's weights flipped: every output accumulator it feeds moves by 2
    last = max(b.glob("rtl/m_l*_weights.mem"), key=lambda p: int(p.name[3:].split("_")[0]))  # model m.onnx: "m"
    words = last.read_text().split()
    words[0] = format(int(words[0], 16) ^ 1, f"0{len(words[0])}x")
    last.write_text("\n".join(words) + "\n")
    proc = xnorkit("verify", b, "--input", tmp_path / "x.npy", "--backends", "rtl,c", "--junit", tmp_path / "bad.xml")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    cases = _verify_xml(tmp_path / "bad.xml")
    [failure] = cases["rtl"].findall("failure")
    assert re.search(r"the first is input \d+", failure.get("message")) and not len(cases["c"])
    assert "FAIL  rtl:" in proc.stdout
    np.save(tmp_path / "wrong.npy", x.reshape(len(x), -1)[:, :100])
    (tmp_path / "text.npy").write_text("not an array")
    for args, message in ((["--input", tmp_path / "wrong.npy"], "shape"),
                          (["--input", tmp_path / "text.npy"], "text.npy"),
                          (["--input", tmp_path / "x.npy", "--junit", tmp_path / "no" / "v.xml"], "no"),
                          (["--input", tmp_path / "x.npy", "--backends", ""], "none given")):
        proc = xnorkit("verify", b, *args)
        assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, (
            args, proc.stderr)
