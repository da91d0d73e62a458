"""`xnorkit explore` on this machine: a 16-trial study on digits over weight kind, hidden sizes and target cycles
for the Arty A7-35 (maximize golden accuracy, minimize estimated LUTs, cycles and Cortex-M4 instructions,
every design must fit; each trial trains 300 epochs and profiles its firmware under QEMU), run
with 1 and with 2 Ray workers in the same run, each trial holding one CPU.

Printed: the Pareto front; trials per hour with 1 and with 2 workers (goal: 2 workers at least 1.7x the
throughput of 1); Ray's overhead per trial: the 1-worker study's wall time (the worker's imports and Optuna's
SQLite study included; Ray's start and stop, once a study, shown apart; the report at the end is not trial work
and is left out) against calling the trial function directly on the same configs one after another in a new
Python process (goal under 5% of a trial); and `predict --backend rtl` on MNIST's 10,000 test images through LFC
W1A1, serial against `--workers 2` (outputs equal, speed-up).

The peer is the serial run of the same code: Ray against no Ray, 2 workers against 1 (FINN has no search).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xnorkit import build, explore, golden, shard, trial  # noqa: E402
from xnorkit.quant_train import config, data, train  # noqa: E402

TRIALS = 16
SPEEDUP_GOAL = 1.7
OVERHEAD_GOAL = 0.05
SPACE = {
    "dataset": "digits",
    "train": {"epochs": 300, "seed": 0},
    "search": {
        # NSGA-II's first generation is drawn at random from the seed: with one generation of 16, both studies run
        # the same 16 trials whatever the number of workers, so their throughputs compare like for like
        "trials": TRIALS, "board": "arty-a7-35", "population": TRIALS, "seed": 0,
        "params": {"model.weights": ["binary", "ternary", "xnor"],
                   "model.hidden": [[32], [64], [128], [64, 32], [128, 64], [256, 128]],
                   "hw.target_cycles": {"low": 4, "high": 256, "log": True}},
        "objectives": {"accuracy": "maximize", "luts": "minimize", "cycles": "minimize",
                       "m4_instructions": "minimize"},
        "constraints": {"fits": True},
    },
}


def _study(tmp: Path, workers: int) -> tuple[dict, float]:
    """The study and its wall time without the report at its end (charts, importances: not the trials' work)."""
    space_file = tmp / "space.yaml"
    space_file.write_text(yaml.safe_dump(SPACE, sort_keys=False))
    t0 = time.perf_counter()
    summary = explore.run(space_file, tmp / f"study{workers}", workers=workers)
    return summary, time.perf_counter() - t0 - summary["seconds"]["report"]


def _ran(summary: dict) -> list[dict]:
    """The trials that ran (not those that took the figures of an earlier one with the same parameters)."""
    return [t for t in summary["trials"] if t["same_as"] is None]


def _direct(tmp: Path, summary: dict) -> float:
    """The configs of the trials that ran, through trial.run_trial one after another in a new Python process
    (what a sweep script without Ray does: it pays the imports once too)."""
    jobs = [[yaml.safe_load((Path(t["folder"]) / "config.yaml").read_text()), str(tmp / "direct" / str(t["number"]))]
            for t in _ran(summary)]
    (tmp / "direct.json").write_text(json.dumps(jobs))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--direct", str(tmp / "direct.json")], check=True)
    return time.perf_counter() - t0


def _run_direct(jobs_file: str) -> None:
    s = SPACE["search"]
    for cfg, folder in json.loads(Path(jobs_file).read_text()):
        trial.run_trial(cfg, folder, list(s["objectives"]), s["board"], s["constraints"])


def _front(summary: dict) -> None:
    names = [n for n, _ in summary["objectives"]]
    print(f"Pareto front ({len(summary['front'])} of {len(summary['trials'])} trials):")
    for t in summary["trials"]:
        if t["number"] in summary["front"]:
            params = ", ".join(f"{k}={v}" for k, v in sorted(t["params"].items()))
            figures = ", ".join(f"{n} {t['figures'][n]:.4g}" for n in names)
            print(f"  trial {t['number']:2d}: {figures}  ({params})")


def _same_figures(a: dict, b: dict) -> bool:
    """Trials with the same parameters in both studies have the same figures (training is seeded and
    single-threaded in every trial, wherever it runs)."""
    by_params = {json.dumps(t["params"], sort_keys=True): t["values"] for t in a["trials"] if t["values"]}
    pairs = [(by_params[k], t["values"]) for t in b["trials"]
             if t["values"] and (k := json.dumps(t["params"], sort_keys=True)) in by_params]
    return all(x == y for x, y in pairs) and len(pairs) > 0


def _sharded_predict(tmp: Path) -> dict:
    """LFC W1A1 (1 epoch on 10,000 MNIST images: this is about the simulator) at 4,096 cycles per inference."""
    mnist = data.load_mnist()
    cfg = config.Config(dataset="mnist", model=config.ModelConfig(kind="lfc", input_bits=8),
                        train=config.TrainConfig(epochs=1, batch_size=256, threads=2))
    subset = data.Dataset("mnist", mnist.x_train[:10000], mnist.y_train[:10000], mnist.x_test, mnist.y_test, 10,
                          mnist.image_shape)
    model, _ = train.train(cfg, subset)
    train.export_qonnx(model, (784,), tmp / "lfc.onnx")
    graph = build.compile_model(tmp / "lfc.onnx", tmp / "lfc")
    build.generate_hw(tmp / "lfc", target_cycles=4096)
    t0 = time.perf_counter()
    serial = build.predict(tmp / "lfc", "rtl", mnist.x_test)
    serial_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sharded = shard.predict(tmp / "lfc", "rtl", mnist.x_test, workers=2)
    sharded_s = time.perf_counter() - t0
    exact = bool(np.array_equal(serial, sharded) and np.array_equal(serial, golden.predict_int(graph, mnist.x_test)))
    print(f"predict --backend rtl, LFC W1A1 at 4,096 cycles, 10,000 MNIST test images: serial {serial_s:.1f} s "
          f"(Verilator build included), --workers 2 {sharded_s:.1f} s (a build per worker): speed-up "
          f"{serial_s / sharded_s:.2f}x; outputs {'identical to the serial run and golden' if exact else 'DIFFER'}")
    return {"predict_serial_s": round(serial_s, 1), "predict_workers2_s": round(sharded_s, 1),
            "predict_speedup": round(serial_s / sharded_s, 2), "predict_exact": exact}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data.load_digits()
        one, one_s = _study(tmp, 1)
        direct_s = _direct(tmp, one)
        two, two_s = _study(tmp, 2)
        _front(two)
        per_hour = {w: 3600 * TRIALS / s for w, s in ((1, one_s), (2, two_s))}
        speedup = per_hour[2] / per_hour[1]
        ran = len(_ran(one))
        # Ray's start and stop happen once a study, whatever its size: shown apart from the cost per trial
        start_stop = one["seconds"]["ray_start"] + one["seconds"].get("ray_stop", 0.0)
        overhead = (one_s - start_stop - direct_s) / ran
        share = overhead / (direct_s / ran)
        all_in = (one_s - direct_s) / direct_s
        print(f"{TRIALS} trials: 1 worker {one_s:.1f} s ({per_hour[1]:.0f} trials/hour), 2 workers {two_s:.1f} s "
              f"({per_hour[2]:.0f} trials/hour): {speedup:.2f}x (goal >= {SPEEDUP_GOAL}x)")
        print(f"the {ran} configs that ran, called directly: {direct_s:.1f} s, {direct_s / ran:.2f} s a trial; Ray's "
              f"overhead {overhead:.2f} s a trial, {share:.1%} (goal < {OVERHEAD_GOAL:.0%}), plus {start_stop:.1f} s "
              f"once a study to start and stop Ray ({all_in:.1%} of this study's trial time in all)")
        inside = {w: np.mean([t["figures"]["seconds"] for t in _ran(r)]) for w, r in ((1, one), (2, two))}
        # two trials at once each run slower where the cores share caches and memory bandwidth: 2 workers can
        # then give at most 2 * (a trial alone) / (a trial beside another), whatever runs them
        ceiling = 2 * inside[1] / inside[2]
        print(f"a trial inside its Ray task: {inside[1]:.2f} s with 1 worker, {inside[2]:.2f} s with 2 (the two "
              f"cores shared by two trainings and Ray's own processes): this machine's ceiling for 2 workers is "
              f"{ceiling:.2f}x, and the study reached {speedup / ceiling:.0%} of it")
        same = _same_figures(one, two)
        print(f"trials with the same parameters in both studies: {'the same figures' if same else 'DIFFERENT'}")
        predict = _sharded_predict(tmp)
    result = {"bench": "explore", "trials": TRIALS, "trials_run": ran, "front": len(two["front"]),
              "one_worker_s": round(one_s, 1), "two_workers_s": round(two_s, 1),
              "trials_per_hour_1": round(per_hour[1]), "trials_per_hour_2": round(per_hour[2]),
              "speedup": round(speedup, 2), "direct_s": round(direct_s, 1),
              "ray_overhead_per_trial_s": round(overhead, 2), "ray_overhead_share": round(share, 4),
              "ray_start_stop_s": round(start_stop, 1), "ray_overhead_all_in": round(all_in, 4),
              "trial_s_1": round(inside[1], 2), "trial_s_2": round(inside[2], 2),
              "two_worker_ceiling": round(ceiling, 2), "share_of_ceiling": round(speedup / ceiling, 3),
              "same_figures": same, **predict,
              "ok": bool(speedup >= SPEEDUP_GOAL and share < OVERHEAD_GOAL and same and predict["predict_exact"]
                         and predict["predict_speedup"] > 1)}
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--direct"]:
        _run_direct(sys.argv[2])
        sys.exit(0)
    sys.exit(main())
