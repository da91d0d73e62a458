"""The configured recipe: every stage from its config section, composed, on digits; refusals are one line."""

import json

import numpy as np
import pytest
import torch

from xnorkit import build, golden, outputs
from xnorkit.errors import XnorkitError
from xnorkit.ir import MatMul
from xnorkit.quant_train import config, data, recipe, train


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


def _cfg(text_model: dict, **sections) -> config.Config:
    return config.validate({"model": text_model, "train": {"epochs": 2, "batch_size": 64, "lr": 0.01}, **sections})


def test_prune_and_share_compile_with_their_zeros(tmp_path, digits):
    cfg = _cfg({"hidden": [32, 32], "weights": "int4", "a_bits": 4},
               prune={"density": 0.25, "steps": 2, "epochs": 1}, share={"bits": 3, "epochs": 1})
    model, metrics = recipe.run(cfg, digits)
    assert set(metrics["stages"]) == {"trained", "pruned", "shared"}
    assert all(abs(d - 0.25) < 0.01 for d in metrics["density"].values())
    assert metrics["compression_ratio"] > 10 and metrics["test_accuracy"] > 0.5
    train.save_run(model, metrics, cfg, digits, tmp_path)
    graph = build.compile_model(tmp_path / "model.onnx", tmp_path / "b")
    for node in graph.nodes:
        if isinstance(node, MatMul):
            assert (node.weights != 0).mean() <= 0.25 + 1e-9
            for row in node.weights:  # 3-bit codebooks; the per-channel int4 scale then maps them row by row
                assert len(np.unique(row[row != 0])) <= 8
    assert json.loads((tmp_path / "metrics.json").read_text())["stages"]["pruned"] > 0.5


def test_correlation_pruning(digits):
    cfg = _cfg({"hidden": [32], "weights": "ternary", "a_bits": 2},
               prune={"method": "correlation", "density": 0.5, "steps": 1, "epochs": 1})
    _, metrics = recipe.run(cfg, digits)
    assert all(d <= 0.5 + 1e-9 for d in metrics["density"].values())


def test_distillation_from_a_float_teacher_with_hints(digits):
    cfg = _cfg({"hidden": [32, 32, 32]},
               distill={"teacher": "float:tfc", "kind": "noisy", "noise": 0.1, "teacher_epochs": 2, "hints": True,
                        "hint_epochs": 1})
    _, metrics = recipe.run(cfg, digits)
    assert metrics["stages"]["teacher"] > 0.8 and metrics["hint_loss"] > 0 and metrics["test_accuracy"] > 0.6


def test_a_float_teacher_with_dropout(digits):
    cfg = _cfg({"hidden": [16]}, distill={"teacher": "float:tfc", "teacher_epochs": 1, "teacher_dropout": 0.3})
    teacher = recipe.load_teacher(cfg, digits)
    assert [m.p for m in teacher.modules() if isinstance(m, torch.nn.Dropout)] == [0.3, 0.3, 0.3]
    with pytest.raises(XnorkitError, match="teacher_dropout"):
        _cfg({"hidden": [16]}, distill={"teacher": "float:tfc", "teacher_dropout": 1.0})


def test_distillation_from_an_earlier_run(tmp_path, digits):
    teacher_cfg = _cfg({"hidden": [64, 64], "weights": "int4", "a_bits": 4}, prune={"density": 0.5, "steps": 1,
                                                                                   "epochs": 1})
    model, metrics = recipe.run(teacher_cfg, digits)
    train.save_run(model, metrics, teacher_cfg, digits, tmp_path / "teacher")
    cfg = _cfg({"hidden": [16]}, distill={"teacher": str(tmp_path / "teacher"), "kind": "mimic", "alpha": 0.5})
    _, student = recipe.run(cfg, digits)
    assert student["stages"]["teacher"] == metrics["test_accuracy"]  # the same model, reloaded with its masks


@pytest.mark.parametrize("model,groups,key", [
    ({"hidden": [32, 32]}, "neurons", "neurons_removed"),
    ({"hidden": [32], "weights": "int4", "a_bits": 2}, "inputs", "inputs_removed"),
    ({"kind": "resnet", "weights": "int4", "a_bits": 4}, "blocks", "blocks_kept"),
    ({"kind": "lenet5", "weights": "int4", "a_bits": 4}, "filters", None)])
def test_structured_sparsity_stage(digits, model, groups, key):
    cfg = _cfg(model, sparsity={"groups": groups, "weight": 1e-3, "threshold": 0.3, "epochs": 1})
    _, metrics = recipe.run(cfg, digits)
    assert "sparse" in metrics["stages"]
    if key:
        assert key in metrics


@pytest.mark.parametrize("model,sections,message", [
    ({"hidden": [8], "weights": "xnor"}, {"prune": {"density": 0.5}}, "prune: XNOR-Net weights are"),
    ({"hidden": [8], "weights": "xnor"}, {"share": {}}, "share: binary weights are already one bit"),
    ({"hidden": [8]}, {"sparsity": {"groups": "filters"}}, "needs a convolutional model"),
    ({"kind": "lenet5"}, {"sparsity": {"groups": "blocks"}}, "needs model.kind resnet"),
    ({"hidden": [8], "weights": "int4"}, {"prune": {"density": {"net.9.0": 0.5}}}, "no weight layer named net.9.0"),
    ({"hidden": [8]}, {"distill": {"teacher": "float:alexnet"}}, "float teachers are the zoo's MLPs"),
    ({"hidden": [8]}, {"distill": {"teacher": "/nonexistent"}}, "checkpoint.pt does not exist"),
])
def test_impossible_recipes_are_one_line(digits, model, sections, message):
    cfg = config.validate({"model": model, "train": {"epochs": 1}, **sections})
    with pytest.raises(XnorkitError, match=message) as e:
        recipe.run(cfg, digits)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("text,message", [
    ("prune:\n  density: 0\n", "'prune.density': must be fractions"),
    ("prune:\n  densty: 0.5\n", "unknown key 'prune.densty'"),
    ("prune:\n  block: [4]\n", "'prune.block'"),
    ("prune:\n  block: [4, 0]\n", "'prune.block"),
    ("share:\n  bits: 9\n", "'share.bits': must be 1 .. 8 bits"),
    ("sparsity:\n  groups: rows\n", "'sparsity.groups'"),
    ("distill:\n  kind: hinton\n", "'distill.teacher'"),
])
def test_bad_recipe_sections(tmp_path, text, message):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(XnorkitError, match=message):
        config.load(tmp_path / "c.yaml")


def test_block_pruned_binary_network_skips_its_zero_tiles_in_rtl(tmp_path, digits):
    """prune.block at the folding's PE x SIMD: whole tiles go, the generated units skip them (fewer cycles and
    weight bits than every fold) and stay bit-exact against golden in simulation."""
    from tests.conftest import require_tool
    from xnorkit.hw import emit_sv
    from xnorkit.hw.folding import Fold
    from xnorkit.sim import runner

    cfg = _cfg({"hidden": [32, 32]},  # the 10-output layer stays whole (4 does not divide 10)
               prune={"density": {"net.1.0": 0.25, "net.2.0": 0.25}, "steps": 1, "epochs": 1, "block": [4, 8]})
    model, metrics = recipe.run(cfg, digits)
    train.save_run(model, metrics, cfg, digits, tmp_path)
    graph = build.compile_model(tmp_path / "model.onnx", tmp_path / "b")
    folding = {n.name: Fold(4, 8) if n.out_features % 4 == 0 else Fold(n.out_features, 8) for n in graph.matmuls()}
    hidden = graph.matmuls()[1]
    assert (hidden.weights != 0).mean() == 0.25
    design = emit_sv.design_info(graph, folding)
    unit = next(layer for layer in design["layers"] if layer["name"] == hidden.name)
    assert unit["cycles"] < 4 * 8 and unit["weight_bits"] < unit["dense_weight_bits"] / 2
    require_tool("verilator")
    outputs.write_tree(tmp_path / "rtl", emit_sv.emit(graph, folding))
    x_int = golden.quantize_input(graph, digits.x_test)
    sim = runner.simulate_bulk(tmp_path / "rtl", x_int, golden.predict_from_int(graph, x_int))
    assert sim.mismatch is None and sim.steady_state_cycles == design["initiation_interval"]
    # the HLS C++ (which computes every fold) of the same folding keeps the zeros: bit-exact too
    require_tool("g++")
    assert build.generate_hls(tmp_path / "b", folding)[1] == 64
