"""Run a generated design under cocotb (Verilator by default, Icarus as second simulator)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xnorkit import tools
from xnorkit.errors import XnorkitError

SIMULATORS = ("verilator", "icarus")


@dataclass(frozen=True)
class SimResult:
    outputs: np.ndarray        # (N, out_features) int64, as the RTL produced them
    accepted_at: np.ndarray    # cycle each input's first beat was accepted
    completed_at: np.ndarray   # cycle each output's last beat was delivered
    mismatch: str | None       # the scoreboard's report, None when every output equals the expected

    @property
    def steady_state_cycles(self) -> float:
        """Cycles per inference between consecutive outputs, back to back (first output excluded)."""
        if len(self.completed_at) < 2:
            return float("nan")
        return float(np.diff(self.completed_at).mean())

    @property
    def latency(self) -> int:
        return int(self.completed_at[0] - self.accepted_at[0])


def simulate(rtl_dir: Path, inputs: np.ndarray, expected: np.ndarray | None = None, simulator: str = "verilator",
             stall_in: float = 0.0, stall_out: float = 0.0, seed: int = 0, waves: bool = False,
             rebuild: bool = True) -> SimResult:
    """Stream integer `inputs` (N, features) through the design in `rtl_dir` and collect its outputs.
    With `expected`, the testbench's scoreboard checks every output (SimResult.mismatch). `rebuild=False`
    reuses the simulator build of an earlier call on the same design."""
    if simulator not in SIMULATORS:
        raise XnorkitError(f"unknown simulator '{simulator}'; choose {' or '.join(SIMULATORS)}")
    tools.require("verilator" if simulator == "verilator" else "iverilog")
    from cocotb_tools.runner import get_results, get_runner

    rtl_dir = Path(rtl_dir).resolve()
    design = json.loads((rtl_dir / "design.json").read_text())
    work = rtl_dir.parent / "sim_build" / simulator
    work.mkdir(parents=True, exist_ok=True)
    np.savez(work / "vectors.npz", inputs=np.asarray(inputs, dtype=np.int64),
             **({} if expected is None else {"expected": np.asarray(expected, dtype=np.int64)}))
    results = work / "results.npz"
    results.unlink(missing_ok=True)
    per_input = max(layer["cycles"] for layer in design["layers"]) + sum(layer["cycles"] for layer in design["layers"])
    slowdown = 1.0 / max(1e-3, (1 - stall_in) * (1 - stall_out))
    settings = {
        "design": design, "vectors": str(work / "vectors.npz"), "results": str(results), "seed": seed,
        "stall_in": stall_in, "stall_out": stall_out,
        "max_cycles": int(1000 + 4 * slowdown * per_input * (len(inputs) + 2)),
    }
    (work / "settings.json").write_text(json.dumps(settings))

    runner = get_runner(simulator)
    build_args = ["-O3", "--x-assign", "fast", "--x-initial", "fast"] if simulator == "verilator" else []
    if waves and simulator == "verilator":
        build_args.append("--trace-fst")
    if rebuild or not (work / "results.xml").exists():
        fixes = tools.verilator_make_fixes() if simulator == "verilator" else {}
        saved = {k: os.environ.get(k) for k in fixes}
        os.environ.update(fixes)
        try:
            runner.build(
                sources=[rtl_dir / s for s in design["sources"]], hdl_toplevel=design["top"], build_dir=work,
                build_args=build_args, waves=waves, timescale=("1ns", "1ps"), always=True,
                log_file=work / "build.log",
            )
        except Exception:
            log = work / "build.log"
            text = log.read_text(errors="replace") if log.exists() else ""
            first = next((ln.strip() for ln in text.splitlines() if "error" in ln.lower()), "see the build log")
            raise XnorkitError(f"{simulator} build of {rtl_dir} failed: {first} ({log})") from None
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    env = {"XNORKIT_SIM_SETTINGS": str(work / "settings.json"), "PYTHONPATH": os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")) if p)}
    xml = work / "results.xml"
    xml.unlink(missing_ok=True)
    try:
        runner.test(test_module="sim.tb_network", hdl_toplevel=design["top"], hdl_toplevel_lang="verilog",
                    build_dir=work, test_dir=rtl_dir, extra_env=env, waves=waves, results_xml=str(xml),
                    log_file=work / "sim.log")
    except SystemExit:
        pass  # cocotb's runner exits on a failed test; the scoreboard's report is read below
    failed = get_results(xml)[1] if xml.exists() else 1
    log = (work / "sim.log").read_text(errors="replace") if (work / "sim.log").exists() else ""
    if not results.exists():
        line = next((ln.strip() for ln in log.splitlines() if "AssertionError" in ln or "Error" in ln), "no results")
        raise XnorkitError(f"simulation of {rtl_dir} failed ({line}); see {work / 'sim.log'}")
    mismatch = None
    if failed:
        mismatch = next((ln.split("AssertionError:", 1)[1].strip() for ln in log.splitlines()
                         if "AssertionError:" in ln), "the scoreboard reported a mismatch")
    with np.load(results) as r:
        result = SimResult(r["outputs"], r["accepted_at"], r["completed_at"], mismatch)
    if waves:
        for f in list(work.glob("*.fst")) + list(work.glob("*.vcd")) + list(rtl_dir.glob("*.vcd")):
            shutil.copy(f, rtl_dir.parent / f.name)
    return result
