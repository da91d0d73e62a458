"""FINN's CNV topology end to end (quant_train.zoo.finn_cnv: 3 x 32 x 32, six unpadded 3x3 convolutions of 64 to
256 channels, two max-pools, 512-512-10 fully connected), W1A1 and W2A2, exported by Brevitas and compiled from
its QONNX: folded by the solver for PYNQ-Z2 and ZCU104, the RTL (Verilator) and the HLS C++ (g++) equal to golden
on 100 seeded inputs. The weights are untrained (CIFAR-10 is not among the datasets here), their batch-norm
statistics measured on random images. Synthesis per instance: bench/cnv.py."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require_tool
from xnorkit import boards, build, golden
from xnorkit.hw import emit_hls, emit_sv, fit
from xnorkit.hw import folding as fold_mod
from xnorkit.outputs import write_tree

CASES = {"w1a1": (1, 1), "w2a2": (2, 2)}


@pytest.fixture(scope="module", params=list(CASES))
def cnv(request, tmp_path_factory):
    from xnorkit.quant_train import train, zoo

    w_bits, a_bits = CASES[request.param]
    root = tmp_path_factory.mktemp(f"cnv_{request.param}")
    train.export_qonnx(zoo.finn_cnv(w_bits, a_bits), (3, 32, 32), root / "cnv.onnx")
    graph = build.compile_model(root / "cnv.onnx", root / "build")
    x = np.random.default_rng(7).random((100, 3, 32, 32)).astype(np.float32)
    x_int = golden.quantize_input(graph, x)
    return root / "build", graph, x_int, golden.predict_from_int(graph, x_int)


# the slowest folding the solver may pick per board (cycles per frame): the first layer, 900 positions of 9
# three-channel taps, bounds W1A1 at 8,100 cycles on both; W2A2's 2-bit weights (3 Mbit) fill the Zynq-7020's
# block RAM, so the solver folds it further there
INTERVALS = {"w1a1": {"pynq-z2": 8192, "zcu104": 8192}, "w2a2": {"pynq-z2": 131072, "zcu104": 16384}}


def test_cnv_folds_for_pynq_z2_and_zcu104(cnv):
    build_dir, graph, _, expected = cnv
    assert len(set(expected.argmax(1))) > 1  # the untrained network still tells inputs apart
    for name, bound in INTERVALS[build_dir.parent.name.split("_")[1][:4]].items():
        board = boards.load(name)
        folding, estimate = fit.solve(graph, board)
        assert fold_mod.initiation_interval(graph, folding) <= bound and fit.fits(estimate, board)


def test_cnv_rtl_is_bit_exact(cnv):
    from xnorkit.sim import runner

    require_tool("verilator")
    build_dir, graph, x_int, expected = cnv
    folding, _ = fit.solve(graph, boards.load("pynq-z2"))
    write_tree(build_dir / "rtl", emit_sv.emit(graph, folding))
    result = runner.simulate_bulk(build_dir / "rtl", x_int, expected, 0.1, 0.1, seed=3)
    assert result.mismatch is None and np.array_equal(result.outputs, expected)


def test_cnv_hls_is_bit_exact(cnv):
    from xnorkit.sim import hls

    require_tool("g++")
    build_dir, graph, x_int, expected = cnv
    folding, _ = fit.solve(graph, boards.load("zcu104"))
    write_tree(build_dir / "hls", emit_hls.emit(graph, folding))
    assert np.array_equal(hls.run(build_dir / "hls", x_int, expected.shape[1]), expected)
