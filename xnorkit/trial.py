"""One trial of `xnorkit explore`: train the config, compile, fold, generate the RTL and the C library, and
measure what the objectives ask for, with the same code and seed as `xnorkit flow` (so a trial's figures are the
flow's). Writes FOLDER/config.yaml, model.onnx, build/ and report.json; returns the figures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from xnorkit import build as build_mod
from xnorkit import golden, naming, outputs
from xnorkit.errors import XnorkitError


class Infeasible(Exception):
    """The trial's design breaks a constraint: it stops there, before the slow measurements."""


def run_trial(config: dict, folder: str | Path, objectives: list[str], board: str | None,
              constraints: dict, data_dir: str | None = None) -> dict:
    """The trial's figures (report.json): accuracy, cycles, LUTs, flash, MACs, and the objectives' values in
    `objectives` order; `state` is "complete", or "pruned" with the broken constraint in `reason`."""
    from xnorkit.quant_train import config as config_mod
    from xnorkit.quant_train import data as data_mod

    started = time.perf_counter()
    folder = Path(folder)
    cfg = config_mod.validate(config)
    folder.mkdir(parents=True, exist_ok=True)
    outputs.write_file(folder / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    data = data_mod.load(cfg.dataset, data_dir)
    figures = _train_compile(cfg, data, folder)
    try:
        figures |= _hardware(folder / "build", cfg, board, constraints)
        figures |= _firmware(folder / "build", data, objectives, constraints)
        if "synth_luts" in objectives:
            figures["synth_luts"] = _synth_luts(folder / "build", board)
        figures |= {"state": "complete", "values": [figures[name] for name in objectives]}
    except Infeasible as e:
        figures |= {"state": "pruned", "reason": str(e)}
    figures |= {"seconds": round(time.perf_counter() - started, 2), "host": os.uname().nodename, "pid": os.getpid()}
    build_mod.save_json(folder / "report.json", figures)
    return figures


def _train_compile(cfg, data, folder: Path) -> dict:
    from xnorkit import analysis
    from xnorkit.quant_train import recipe
    from xnorkit.quant_train import train as train_mod

    model, metrics = recipe.run(cfg, data)
    train_mod.save_run(model, metrics, cfg, data, folder)
    graph = build_mod.compile_model(folder / "model.onnx", folder / "build", name=naming.from_model(folder))
    golden_float = build_mod.dequantize(graph, golden.predict_int(graph, data.x_test))
    accuracy = float((golden_float.argmax(1) == data.y_test).mean())
    macs = sum(s.macs for s in analysis.layer_stats(graph))
    return {"accuracy": accuracy, "n_test": int(len(data.y_test)), "macs": int(macs)}


def _hardware(build: Path, cfg, board: str | None, constraints: dict) -> dict:
    """The RTL at the config's target cycles (as the flow builds it), and its estimate on `board`."""
    from xnorkit.hw import fit
    from xnorkit.hw import folding as fold_mod

    design = build_mod.generate_hw(build, target_cycles=cfg.hw.target_cycles)
    figures = {"cycles": int(design["initiation_interval"]), "folding": design["folding"]}
    _limit(constraints, "max_cycles", figures["cycles"], "cycles per inference")
    if board is None:
        return figures
    from xnorkit import boards

    target = boards.load_kind(board, "fpga")
    estimate = fit.estimate(build_mod.backend_graph(build), fold_mod.from_json(design["folding"]), target)
    figures |= {"luts": estimate.lut, "ffs": estimate.ff, "brams": estimate.bram, "board": target.name}
    _limit(constraints, "max_luts", estimate.lut, f"estimated LUTs on {target.name}")
    if constraints.get("fits") and not fit.fits(estimate, target):
        raise Infeasible(f"does not fit {target.name}: estimated {estimate.lut:,} LUTs, {estimate.ff:,} FFs, "
                         f"{estimate.bram} BRAMs; the board has {target.lut:,}, {target.ff:,}, {target.bram} "
                         f"(at most {target.utilization_limit:.0%} planned)")
    return figures


def _firmware(build: Path, data, objectives: list[str], constraints: dict) -> dict:
    try:
        fw_dir, footprint = build_mod.generate_firmware(build)
    except XnorkitError as e:  # does not fit the Cortex-M4 board
        raise Infeasible(str(e)) from None
    figures = {"flash_bytes": footprint["flash"], "ram_bytes": footprint["ram"]}
    _limit(constraints, "max_flash_bytes", figures["flash_bytes"], "bytes of flash")
    if "m4_instructions" in objectives:
        from xnorkit import flow

        profile = flow.m4_profile(build, fw_dir, data.x_test[:flow.PROFILED],
                                  build_mod.backend_graph(build).result_width())
        figures["m4_instructions"] = profile["per_inference"]
    return figures


def _synth_luts(build: Path, board: str) -> int:
    from xnorkit import api

    return int(api.synth(build, board, place_route=False).total.lut)


def failure(e: BaseException) -> dict:
    """A failed trial's figures: its reason as one line."""
    return {"state": "fail", "reason": f"{type(e).__name__}: {' '.join(str(e).split())[:500]}"}


def run_limited(args: dict, seconds: float) -> dict:
    """run_trial(**args) in a process group of its own, ended with everything it started (a simulator, QEMU,
    Yosys) after `seconds`: a failed trial with that reason."""
    with tempfile.TemporaryDirectory(prefix="xnorkit-trial-") as tmp:
        job, result = Path(tmp) / "job.json", Path(tmp) / "figures.json"
        job.write_text(json.dumps(args))
        proc = subprocess.Popen([sys.executable, "-m", "xnorkit.trial", str(job), str(result)],
                                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _, err = proc.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return {"state": "fail", "reason": f"ran out of time: stopped after {seconds:g} s (search.trial_timeout_s)"}
        if not result.exists():
            lines = err.decode(errors="replace").strip().splitlines() or [f"exit status {proc.returncode}"]
            return {"state": "fail", "reason": f"the trial's process ended: {lines[-1][:500]}"}
        return json.loads(result.read_text())


def _main(job: str, result: str) -> None:
    try:
        figures = run_trial(**json.loads(Path(job).read_text()))
    except Exception as e:  # the study records it and goes on
        figures = failure(e)
    Path(result).write_text(json.dumps(figures))


def _limit(constraints: dict, key: str, value: float, what: str) -> None:
    limit = constraints.get(key)
    if limit is not None and value > limit:
        raise Infeasible(f"{value:,} {what}, above {key} {limit:,}")


if __name__ == "__main__":  # run_limited's child: python -m xnorkit.trial JOB.json FIGURES.json
    _main(sys.argv[1], sys.argv[2])
