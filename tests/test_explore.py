"""`xnorkit explore`: Optuna's study in SQLite, trials as Ray tasks on a local Ray, a killed run, and a two-node
Ray cluster (ray.cluster_utils). The trials are small digits MLPs trained for 3 epochs (a few seconds each)."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from tests.conftest import assert_refused, assert_tables_render, run_cli
from xnorkit import explore, outputs, space
from xnorkit.errors import XnorkitError

SPACE = {
    "dataset": "digits",
    "model": {"hidden": [32]},
    "train": {"epochs": 3, "seed": 0},
    "search": {
        "trials": 4, "board": "arty-a7-35", "population": 4, "seed": 0,
        "params": {"model.weights": ["binary", "ternary"], "model.hidden": [[16], [32], [24, 16]],
                   "hw.target_cycles": {"low": 8, "high": 64, "log": True}},
        "objectives": {"accuracy": "maximize", "luts": "minimize", "cycles": "minimize"},
        "constraints": {"fits": True, "max_flash_bytes": 262144},
    },
}


def _space(folder: Path, **search) -> Path:
    data = json.loads(json.dumps(SPACE))
    data["search"] |= search
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _trials(study: Path) -> list:
    return explore.open_study(study, None).get_trials(deepcopy=False)


def _complete_so_far(study: Path) -> int:
    try:  # the database appears before the study is in it
        return sum(t.state.name == "COMPLETE" for t in _trials(study))
    except XnorkitError:
        return 0


def _xnorkit(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "xnorkit", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A 4-trial study run on a local Ray with 2 workers, SQLite in the study folder."""
    folder = tmp_path_factory.mktemp("explore")
    explore.run(_space(folder), folder / "study", trials=4, workers=2)
    return folder / "study"


def test_study_runs_every_trial_and_reports_the_front(study):
    trials = _trials(study)
    assert len(trials) == 4 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    for t in trials:  # each trial's artifacts in its folder, its figures in the database
        folder = study / "trials" / str(t.number)
        if "same_as" not in t.user_attrs:
            assert {"config.yaml", "model.onnx", "report.json", "build"} <= {p.name for p in folder.iterdir()}
        assert t.values == [t.user_attrs["figures"][k] for k in ("accuracy", "luts", "cycles")]
        assert 0.5 < t.values[0] <= 1 and t.values[2] <= 64
    front = json.loads((study / "front.json").read_text())
    assert front["front"] and set(front["front"]) <= {t.number for t in trials}
    md, page = (study / "report.md").read_text(), (study / "report.html").read_text()
    assert assert_tables_render(md, page) == 3  # the front, the importances, every trial
    assert (study / "front-luts.png").stat().st_size > 1000 and "xnorkit flow " in md


def test_a_trial_equals_a_serial_flow_of_its_config(study, tmp_path):
    number = next(t.number for t in _trials(study) if "same_as" not in t.user_attrs)
    folder = study / "trials" / str(number)
    proc = subprocess.run([sys.executable, "-m", "xnorkit", "flow", folder / "config.yaml", "-o", tmp_path / "f"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    flow = json.loads((tmp_path / "f" / "report.json").read_text())
    trial = json.loads((folder / "report.json").read_text())
    assert trial["accuracy"] == flow["accuracy"]["golden"]
    assert trial["cycles"] == flow["cycles_analytical"] and trial["folding"] == flow["folding"]
    assert trial["flash_bytes"] == flow["firmware"]["footprint"]["flash"]
    ours, theirs = np.load(folder / "build" / "ir.npz"), np.load(tmp_path / "f" / "build" / "ir.npz")
    assert sorted(ours.files) == sorted(theirs.files)
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours.files)  # the same network, bit for bit


def test_rerunning_resumes_without_repeating_finished_trials(study, capsys):
    before = {t.number: (t.values, (study / "trials" / str(t.number) / "report.json").stat().st_mtime_ns)
              for t in _trials(study)}
    code, out, err = run_cli(capsys, "explore", study.parent / "space.yaml", "-o", study, "--workers", "2")
    assert code == 0, err
    assert "Pareto front" in out
    after = _trials(study)
    assert len(after) == 4  # the study already holds its 4 trials: nothing ran
    code, out, err = run_cli(capsys, "explore", study.parent / "space.yaml", "-o", study, "--workers", "2",
                             "--trials", "6")
    assert code == 0, err
    after = _trials(study)
    assert len(after) == 6 and all(t.state == optuna.trial.TrialState.COMPLETE for t in after)
    for number, (values, mtime) in before.items():
        assert after[number].values == values
        assert (study / "trials" / str(number) / "report.json").stat().st_mtime_ns == mtime
    code, out, err = run_cli(capsys, "report", study)
    assert code == 0, err
    assert "6 trials" in (study / "report.md").read_text()


def test_sigterm_keeps_finished_trials_and_the_next_run_continues(tmp_path):
    space_file = _space(tmp_path, trials=5)
    study = tmp_path / "study"
    proc = _xnorkit("explore", space_file, "-o", study, "--workers", "1")
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if _complete_so_far(study) >= 2:
                break
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    kept = {t.number: t.values for t in _trials(study) if t.state.name == "COMPLETE"}
    assert len(kept) >= 2
    assert all((study / "trials" / str(n) / "report.json").exists() for n in kept)
    assert all(t.user_attrs["error"] == explore.INTERRUPTED for t in _trials(study) if t.state.name == "FAIL")
    again = _xnorkit("explore", space_file, "-o", study, "--workers", "2")
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    trials = _trials(study)
    assert explore.finished(explore.open_study(study, None)) == 5
    assert {t.number: t.values for t in trials if t.number in kept} == kept  # not run again


def test_trials_run_on_both_nodes_of_a_ray_cluster(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        explore.run(_space(tmp_path, trials=2), tmp_path / "study", address=cluster.address)
        nodes = {t.user_attrs["figures"]["node"] for t in _trials(tmp_path / "study")}
        assert nodes == {n["NodeID"] for n in ray.nodes() if n["Alive"]} and len(nodes) == 2
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.parametrize("change,words", [
    ({"objectives": {"speed": "maximize"}}, ["unknown objective 'speed'"]),
    ({"board": None}, ["search.board"]),
    ({"params": {"model.weights": ["binary", "int9"]}}, ["model.weights", "int9"]),
    ({"params": {"hw.target_cycles": {"low": 64, "high": 8}}}, ["low must be below high"]),
    ({"board": "nrf52840-dk"}, ["nrf52840-dk"]),
    # hostile or malformed: a key inside a list, an empty choice list, params that are not a mapping
    ({"params": {"model.hidden.width": [1, 2]}}, ["model.hidden.width", "not a section"]),
    ({"params": {"model.weights": []}}, ["search.params.model.weights"]),
    ({"params": ["model.weights"]}, ["search.params"]),
    ({"trial_timeout_s": -5}, ["search.trial_timeout_s"]),
])
def test_a_bad_search_space_is_one_line_before_any_trial(tmp_path, capsys, change, words):
    study = tmp_path / "study"
    result = run_cli(capsys, "explore", _space(tmp_path, **change), "-o", study)
    assert_refused(result, *words)
    assert not (study / "study.db").exists()


def test_a_config_without_search_and_a_study_of_another_space_are_refused(tmp_path, capsys):
    plain = tmp_path / "plain.yaml"
    plain.write_text("dataset: digits\n")
    assert_refused(run_cli(capsys, "explore", plain, "-o", tmp_path / "s"), "no 'search:' section")
    space_file = _space(tmp_path)
    (tmp_path / "s2").mkdir()
    (tmp_path / "s2" / outputs.MARKER).write_text("explore\n")
    explore.open_study(tmp_path / "s2", space.load(space_file))  # a study made from this space
    other = _space(tmp_path, seed=7)
    assert_refused(run_cli(capsys, "explore", other, "-o", tmp_path / "s2"), "another search space")


def test_a_failing_trial_is_recorded_with_its_reason_and_the_study_goes_on(tmp_path):
    # a teacher folder that does not exist: training fails in the trial, not in the driver
    data = {**SPACE, "distill": {"teacher": str(tmp_path / "missing")}}
    data["search"] = {**SPACE["search"], "trials": 2, "params": {"model.hidden": [[16], [32]]}}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    explore.run(path, tmp_path / "study", workers=2)
    trials = _trials(tmp_path / "study")
    assert len(trials) == 2 and all(t.state.name == "FAIL" for t in trials)
    assert all("missing" in t.user_attrs["error"] for t in trials)
    assert "missing" in (tmp_path / "study" / "report.md").read_text()


def test_space_suggests_lists_as_json_and_builds_nested_configs():
    s = space.Space({"model": {"hidden": [8]}}, space.Search.model_validate(SPACE["search"]))
    cfg = s.config({"model.hidden": "[24, 16]", "hw.target_cycles": 20, "model.weights": "ternary"})
    assert cfg == {"model": {"hidden": [24, 16], "weights": "ternary"}, "hw": {"target_cycles": 20}}


@pytest.mark.parametrize("backend", ["rtl", "cortex-m4"])
def test_predict_sharded_over_ray_equals_the_serial_run(study, tmp_path, capsys, backend):
    from xnorkit.quant_train import data

    build = study / "trials" / "0" / "build"
    np.save(tmp_path / "x.npy", data.load_digits().x_test[:301])  # shards of 151 and 150
    ys = []
    for extra in ([], ["--workers", "2"]):
        y = tmp_path / f"y{len(ys)}.npy"
        code, _, err = run_cli(capsys, "predict", build, "--backend", backend, "--input", tmp_path / "x.npy",
                               "--output", y, *extra)
        assert code == 0, err
        ys.append(np.load(y))
    assert ys[0].shape == (301, 10) and np.array_equal(ys[0], ys[1])


def test_predict_refuses_to_shard_a_backend_that_runs_in_process(study, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((4, 64), np.float32))
    assert_refused(run_cli(capsys, "predict", study / "trials" / "0" / "build", "--input", tmp_path / "x.npy",
                           "--output", tmp_path / "y.npy", "--workers", "2"), "golden backend runs in this process")


def test_the_documented_example_space_loads():
    s = space.load(Path(__file__).parents[1] / "docs" / "examples" / "explore-digits.yaml")
    assert s.objectives == ["accuracy", "luts", "cycles"] and s.search.board == "arty-a7-35"


def _args(tmp_path: Path, epochs: int, name: str) -> dict:
    cfg = {"dataset": "digits", "model": {"hidden": [16]}, "train": {"epochs": epochs, "threads": 1}}
    return {"config": cfg, "folder": str(tmp_path / name), "objectives": ["accuracy", "cycles"], "board": None,
            "constraints": {}}


def test_a_time_limited_trial_runs_in_its_own_process_and_is_stopped_whole(tmp_path):
    from xnorkit import trial

    limited = trial.run_limited(_args(tmp_path, 3, "a"), 300)
    direct = trial.run_trial(**_args(tmp_path, 3, "b"))
    assert limited["state"] == "complete" and limited["values"] == direct["values"]
    started = time.monotonic()
    stopped = trial.run_limited(_args(tmp_path, 100000, "c"), 4)
    assert time.monotonic() - started < 30
    assert stopped == {"state": "fail", "reason": "ran out of time: stopped after 4 s (search.trial_timeout_s)"}
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "xnorkit.trial" not in ps  # the process group is gone


def test_a_study_records_trials_that_ran_out_of_time(tmp_path):
    explore.run(_space(tmp_path, trials=2, trial_timeout_s=0.5), tmp_path / "study", workers=2)
    trials = _trials(tmp_path / "study")
    assert [t.state.name for t in trials] == ["FAIL", "FAIL"]
    assert all("ran out of time" in t.user_attrs["error"] for t in trials)


def test_a_storage_that_cannot_be_opened_is_one_line(tmp_path, capsys):
    result = run_cli(capsys, "explore", _space(tmp_path), "-o", tmp_path / "s", "--storage", "nosuchdb://x/y")
    assert_refused(result, "cannot open the study storage nosuchdb://x/y")
    assert not (tmp_path / "s" / "storage.txt").exists()


def test_predict_sharded_on_a_model_exported_by_plain_brevitas(tmp_path, capsys):
    """A model xnorkit did not train: brevitas.export.export_qonnx of finn-examples' normalized-input style
    (per-feature prologue, weights in an external .onnx.data file), compiled; its C library sharded over Ray
    equals the serial run, and its integer API (NAME_infer_int) equals golden on the quantizer's integers."""
    from tests import export_styles as styles
    from xnorkit import build, golden
    from xnorkit.firmware import emit_c, runner

    model, x = styles.normalized_sign(3)
    styles.export(model, x, tmp_path / "m.onnx")
    graph = build.compile_model(tmp_path / "m.onnx", tmp_path / "build")
    np.save(tmp_path / "x.npy", x)
    ys = []
    for extra in ([], ["--workers", "2"]):
        code, _, err = run_cli(capsys, "predict", tmp_path / "build", "--backend", "c", "--input",
                               tmp_path / "x.npy", "--output", tmp_path / f"y{len(ys)}.npy", *extra)
        assert code == 0, err
        ys.append(np.load(tmp_path / f"y{len(ys)}.npy"))
    assert np.array_equal(ys[0], ys[1]) and np.array_equal(ys[0], golden.predict_int(graph, x))
    outputs.write_tree(tmp_path / "fw", emit_c.emit(graph))
    x_int = golden.quantize_input(graph, x)
    expected = golden.predict_from_int(graph, x_int).reshape(len(x), -1)
    assert np.array_equal(runner.run_host(tmp_path / "fw", x_int, expected.shape[1], integer=True), expected)
