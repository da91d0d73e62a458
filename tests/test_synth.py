"""Open synthesis (hw/synth.py), gate-level simulation of its netlist, FPGA boards and the board-aware folding
(hw/fit.py). Small networks: Yosys and nextpnr run in WebAssembly, seconds each here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import random_graph, random_inputs, require_tool
from xnorkit import boards, build, golden, ir
from xnorkit.errors import XnorkitError
from xnorkit.hw import fit, folding, lowering, synth
from xnorkit.sim import runner


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    graph = random_graph([16, 32, 10], seed=0)
    ir.save(graph, out)
    build.generate_hw(out, target_cycles=16)
    return out, graph


def test_icebreaker_open_flow_and_gate_level_simulation(small_build):
    out, graph = small_build
    heard: list[str] = []
    result = synth.synthesize(out, "icebreaker", progress=heard.append)
    assert result.routed and result.fits() and result.fmax_mhz > result.clock_mhz
    # each step as it started, and the whole logs kept
    steps = [line.split(": ", 1)[1].rsplit(" (", 1)[0] for line in heard]
    assert {"SYNTH_ICE40 pass", "ABC9 pass", "packing", "placing", "routing", "timing analysis"} <= set(steps), steps
    assert steps.index("SYNTH_ICE40 pass") < steps.index("placing") < steps.index("routing")
    assert "Executing SYNTH_ICE40 pass" in (out / "synth" / "icebreaker" / "yosys.log").read_text()
    assert result.total.lut > 100 and result.total.ff > 100
    assert set(result.layers) >= {"u_l0", "u_l1"} and result.layers["u_l0"].lut > result.layers["u_l1"].lut
    assert sum(layer.lut for layer in result.layers.values()) <= result.total.lut
    work = out / "synth" / "icebreaker"
    assert (work / "design.bin").stat().st_size > 100_000  # a whole UP5K configuration image
    assert json.loads((work / "utilization.json").read_text())["fmax_mhz"] == result.fmax_mhz
    # the synthesized netlist, simulated with Yosys' iCE40 cell models: bit-exact against golden
    x = random_inputs(graph, 40)
    expected = golden.predict_from_int(graph, x)
    for stall in (0.0, 0.3):
        sim = runner.simulate_bulk(out / "rtl", x, expected, stall, stall, seed=2, gate_level=work)
        assert sim.mismatch is None, sim.mismatch
    assert "SB_LUT4" in (work / "netlist.v").read_text()


def test_xilinx_boards_get_yosys_counts(small_build):
    out, _ = small_build
    result = synth.synthesize(out, "arty-a7-35")
    assert not result.routed and result.top == "xnorkit_top"
    assert 0 < result.total.lut < 2000 and result.total.ff > 0
    with pytest.raises(XnorkitError, match="byte-wide"):
        runner.build_bulk(out / "rtl", gate_level=out / "synth" / "arty-a7-35")


def test_per_instance_synthesis_equals_the_kept_hierarchy(small_build, tmp_path):
    """`synthesize(per_instance=True)` (each instance of the top alone, for designs too large for one Yosys run):
    every stage and FIFO counts as in the whole design's kept hierarchy, the total is their sum, and the report
    states the method."""
    import shutil

    from xnorkit import report

    out, _ = small_build
    whole = synth.synthesize(out, "arty-a7-35")
    copy = tmp_path / "b"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("synth"))
    apart = synth.synthesize(copy, "arty-a7-35", per_instance=True)
    assert apart.method == "per instance" and set(apart.layers) == set(whole.layers)
    for name, cells in whole.layers.items():
        assert (apart.layers[name].lut, apart.layers[name].ff) == (cells.lut, cells.ff), name
    assert apart.total.lut == sum(u.lut for u in apart.layers.values()) >= whole.total.lut - 16
    md, _ = report.write([copy], copy)
    assert "Synthesized per instance (arty-a7-35)" in md.read_text()


def test_fpga_boards_are_validated():
    assert {"icebreaker", "ulx3s-25f", "arty-a7-35", "pynq-z2", "zcu104"} <= set(boards.names("fpga"))
    ice = boards.load("icebreaker")
    assert (ice.family, ice.lut, ice.bram, ice.toolchain) == ("ice40", 5280, 30, "open")
    assert boards.load("pynq-z2").processor == "zynq7"
    with pytest.raises(XnorkitError, match="not a microcontroller"):
        boards.load_kind("pynq-z2", "mcu")
    with pytest.raises(XnorkitError, match="not an FPGA"):
        boards.load_kind("rpi-pico", "fpga")
    with pytest.raises(Exception, match="family"):
        boards.FpgaBoard(name="x", kind="fpga", description="", part="x", clock_mhz=1, family="stratix", package="",
                         lut=1, ff=1, bram=0, dsp=0, toolchain="open")


def test_block_ram_shapes_and_weight_placement():
    assert fit.bram_blocks(16, 256, "ice40") == 1 and fit.bram_blocks(64, 256, "ice40") == 4
    assert fit.bram_blocks(256, 256, "ice40") == 16 and fit.bram_blocks(1, 4096, "ice40") == 2
    assert fit.bram_blocks(36, 512, "xc7") == 1 and fit.bram_blocks(512, 128, "xc7") == 15
    # 512 x 128 bits: as logic 512 LUT6 x 2 + mux, in block RAM 15 of 100 -> logic on an Arty
    graph = random_graph([512, 128, 10], seed=1)
    low = lowering.lower(graph, {"fc0": folding.Fold(1, 512), "fc1": folding.Fold(1, 1)})
    stage = next(s for s in low.stages if s.kind == "mvtu")
    assert (stage.memory().width, stage.memory().depth) == (512, 128)
    assert fit.choose_weight_memory(stage, boards.load("arty-a7-35")) == "logic"
    assert fit.choose_weight_memory(stage, boards.load("zcu104")) == "logic"


def test_the_board_solver_picks_the_fastest_folding_that_fits_and_refuses_with_numbers():
    graph = random_graph([64, 256, 256, 10], seed=0)
    small, large = boards.load("icebreaker"), boards.load("pynq-z2")
    fold_small, est_small = fit.solve(graph, small)
    fold_large, est_large = fit.solve(graph, large)
    assert fit.fits(est_small, small) and fit.fits(est_large, large)
    assert folding.initiation_interval(graph, fold_large) < folding.initiation_interval(graph, fold_small)
    faster = folding.solve(graph, folding.initiation_interval(graph, fold_small) // 2)
    assert not fit.fits(fit.estimate(graph, fit.place_weights(graph, faster, small), small), small)
    huge = random_graph([784, 2048, 2048, 10], seed=0)
    with pytest.raises(XnorkitError, match=r"does not fit icebreaker.*block RAMs"):
        fit.solve(huge, small)


def test_folding_json_carries_the_weight_memory():
    fold = folding.from_json({"a": {"pe": 2, "simd": 4, "weights": "block"}, "b": {"pe": 1, "simd": 1}})
    assert fold["a"].weights == "block" and fold["b"].weights == "auto"
    assert folding.to_json(fold) == {"a": {"pe": 2, "simd": 4, "weights": "block"}, "b": {"pe": 1, "simd": 1}}
    with pytest.raises(XnorkitError, match="weights must be one of"):
        folding.from_json({"a": {"pe": 1, "simd": 1, "weights": "ultra"}})


def test_fusesoc_core_filelist_and_a_lint_clean_shell(small_build):
    import subprocess

    import yaml

    from xnorkit import tools

    out, _ = small_build
    rtl = out / "rtl"
    design = json.loads((rtl / "design.json").read_text())
    assert (rtl / "filelist.f").read_text().split() == design["sources"]
    core = yaml.safe_load((rtl / "xnorkit.core").read_text())
    assert core["targets"]["default"]["toplevel"] == "xnorkit_top"
    assert core["targets"]["shell"]["toplevel"] == "xnorkit_shell"
    assert core["filesets"]["rtl"]["files"] == design["sources"]
    assert {next(iter(f)) for f in core["filesets"]["memories"]["files"]} == {p.name for p in rtl.glob("*.mem")}
    params = [f"-G{k}={v}" for k, v in design["shell"]["parameters"].items()]
    proc = subprocess.run([tools.require("verilator"), "--lint-only", "-Wall", "--top-module", "xnorkit_shell",
                           *params, *design["shell"]["sources"]], cwd=rtl, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_vivado_project_and_pynq_driver_for_a_zynq_board(small_build, tmp_path):
    import shutil
    import subprocess
    import sys
    import types

    from xnorkit import layout, packing

    out, graph = small_build
    synth.synthesize(out, "pynq-z2")
    project = out / "synth" / "pynq-z2" / "vivado"
    tcl = (project / "create_project.tcl").read_text()
    assert "-part xc7z020clg400-1" in tcl and "axi_dma" in tcl and "-reference xnorkit_axis" in tcl
    assert all((project / name).exists() for name in ("xnorkit_shell.sv", "xnorkit_top.sv", "xnorkit_l0_weights.mem",
                                                       "xnorkit_axis.v"))
    require_tool("tclsh")  # balanced braces, brackets and quotes in every command
    check = f'set f [open "{project / "create_project.tcl"}"]; set s [read $f]; puts [info complete $s]'
    assert subprocess.run([shutil.which("tclsh")], input=check, capture_output=True, text=True).stdout.strip() == "1"
    # the driver's packing equals the simulators' (pynq itself is not installed here: a stand-in module)
    sys.modules.setdefault("pynq", types.SimpleNamespace(Overlay=None, allocate=None))
    source = (project / "xnorkit_pynq.py").read_text()
    compile(source, "xnorkit_pynq.py", "exec")
    driver: dict = {}
    exec(source, driver)
    design = json.loads((out / "rtl" / "design.json").read_text())
    x = random_inputs(graph, 5).astype(int)
    info = design["input"]
    sent = driver["_beats_to_bytes"](x, info["elems_per_beat"], info["elem_bits"], driver["IN_WORDS"])
    ours = packing.stream_bytes(x, info["elems_per_beat"], info["elem_bits"])
    assert (sent[..., :ours.shape[-1]] == ours).all() and (sent[..., ours.shape[-1]:] == 0).all()
    assert (driver["_bytes_to_values"](sent, info["elems_per_beat"], info["elem_bits"], False) == x).all()
    # and its stream order is xnorkit.layout's, both ways, for a feature map
    maps = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    stream = {"layout": "hwc", "shape": [3, 4, 5]}
    assert (driver["_stream_order"](maps, stream) == layout.stream_order(maps, stream)).all()
    assert (layout.ir_order(layout.stream_order(maps, stream), stream) == maps.reshape(2, -1)).all()


def test_report_renders_in_headless_chromium(small_build, tmp_path):
    from tests.conftest import assert_tables_render, screenshot_report
    from xnorkit import report

    out, _ = small_build
    synth.synthesize(out, "icebreaker", place_route=False)  # this design's own counts (earlier tests made others)
    md, page = report.write([out], tmp_path / "report")
    text = md.read_text()
    assert "LUT / FF / BRAM (icebreaker)" in text and "| fc0 |" in text and "| icebreaker | 12 | yes |" in text
    html_text = page.read_text()
    assert html_text.count("data:image/png;base64,") == 3 and "http" not in html_text.split("<body>")[1]
    assert assert_tables_render(text, html_text) == 3  # layers, FPGA boards, microcontrollers
    pixels = screenshot_report(page, tmp_path)
    bar_blue = (np.abs(pixels - np.array([0x4C, 0x72, 0xB0])).sum(axis=-1) <= 6).sum()
    assert bar_blue > 500  # the pipeline-balance bars were drawn, so the embedded images decoded and rendered
