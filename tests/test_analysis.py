"""`xnorkit inspect` and `xnorkit diff`."""

import json

import numpy as np

from tests.conftest import random_graph
from tests.test_cli import xnorkit
from xnorkit import analysis, build, golden, ir
from xnorkit.ir import Threshold


def test_layer_stats_count_macs_and_memory():
    g = random_graph([16, 32, 8], seed=0)
    rows = {r.name: r for r in analysis.layer_stats(g)}
    assert rows["fc0"].macs == 16 * 32 and not rows["fc0"].binary
    assert rows["fc1"].macs == 32 * 8 and rows["fc1"].binary
    acc_bits = g.tensor_types["acc0"].bits
    assert rows["sign0"].memory_bits == 32 * acc_bits
    assert rows["fc0"].bits == "uint5 x bipolar -> " + g.tensor_types["acc0"].name()
    assert rows["fc0"].density == 1.0 and rows["fc0"].weights == 512


def test_inspect_json(trained_build):
    proc = xnorkit("inspect", trained_build / "build", "--json")
    assert proc.returncode == 0, proc.stderr
    layers = json.loads(proc.stdout)["layers"]
    assert [row["op"] for row in layers][:3] == ["Quantize", "MatMul", "Threshold"]
    assert layers[1]["macs"] == 64 * 32


def test_diff_agrees_on_a_clean_build(trained_build):
    proc = xnorkit("diff", trained_build / "build", "--input", trained_build / "x.npy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all 5 tensors agree on 40 inputs" in " ".join(proc.stdout.split())


def test_diff_pinpoints_an_injected_threshold_off_by_one(trained_build, tmp_path):
    """Move one threshold by one where some input sits exactly on it: diff must name that node."""
    import shutil

    from xnorkit.quant_train.data import load_digits

    b = tmp_path / "build"
    shutil.copytree(trained_build / "build", b)
    graph = build.load(b)
    x = load_digits().x_test
    values = golden.run(graph, x, keep_all=True)
    target = [n for n in graph.nodes if isinstance(n, Threshold)][1]
    hits = (values[target.input] == target.thresholds[None, :, 0]).sum(axis=0)
    channel = int(np.argmax(hits))
    assert hits[channel] > 0
    target.thresholds[channel, 0] += 1
    ir.save(graph, b)
    np.save(tmp_path / "x.npy", x)
    proc = xnorkit("diff", b, "--input", tmp_path / "x.npy")
    said = " ".join(proc.stdout.split())
    assert proc.returncode == 1, said
    assert f"tensor '{target.output}' of node '{target.name}' (Threshold): {hits[channel]} of" in said
    assert "largest difference 1" in said
