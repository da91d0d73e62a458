"""`xnorkit flow`: train, export, compile, then run every backend on the test split and check each one
against the golden model. Writes OUT/model.onnx, OUT/build/, OUT/report.json and OUT/report.md."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from xnorkit import build as build_mod
from xnorkit import compare, golden, naming, outputs


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), console=console, transient=False)


def stage_progress(progress: Progress):
    """A recipe progress callback: one bar per stage (teacher, train, sparsity, prune k/n, share)."""
    tasks: dict[str, int] = {}

    def update(stage: str, epoch: int, epochs: int, loss: float) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=epochs, info="")
        progress.update(tasks[stage], completed=epoch, info=f"loss {loss:.3f}")

    return update


class _Timer:
    """Seconds per stage of the flow, and in all."""

    def __init__(self) -> None:
        self.started = self.t0 = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name], self.t0 = round(now - self.t0, 2), now


def run_flow(config_path: Path | None, out: Path, data_dir: Path | None = None,
             console: Console | None = None) -> dict:
    """Train, export, compile, then every backend on the test split against golden; report.json and the report."""
    from xnorkit.quant_train import config as config_mod
    from xnorkit.quant_train import data as data_mod

    console = console or Console()
    cfg = config_mod.load(config_path)
    out = Path(out)
    outputs.check_folder(out, ("flow",))  # a flow rewrites its own folder stage by stage
    out.mkdir(parents=True, exist_ok=True)
    outputs.write_file(out / outputs.MARKER, "flow\n")
    timer = _Timer()
    data = data_mod.load(cfg.dataset, data_dir)
    timer.t0 = time.perf_counter()  # the training stage starts with the data loaded
    results = _train_and_compile(cfg, data, out, console, timer)
    results |= _hardware(cfg, out / "build", data.x_test, results, console, timer)
    results |= _firmware(out / "build", data.x_test, results["graph"], timer)
    report = _report(cfg, data, results, timer)
    build_mod.save_json(out / "report.json", report)
    from xnorkit import report as report_mod

    report_mod.write([out / "build"], out)
    console.print(summary_table(report))
    console.print(f"wrote {out / 'model.onnx'}, {out / 'build'}/, {out / 'report.json'}, {out / 'report.md'}, "
                  f"{out / 'report.html'}")
    return report


def _train_and_compile(cfg, data, out: Path, console: Console, timer: _Timer) -> dict:
    from xnorkit.quant_train import recipe
    from xnorkit.quant_train import train as train_mod

    with _progress(console) as progress:
        model, metrics = recipe.run(cfg, data, stage_progress(progress))
    train_mod.save_run(model, metrics, cfg, data, out)
    brevitas_out = train_mod.evaluate(model, data.x_test)
    timer.lap("train")
    # named after the output folder (`flow -o out/lfc`: lfc_top, lfc_infer), every flow's model file is model.onnx
    graph = build_mod.compile_model(out / "model.onnx", out / "build", name=naming.from_model(out))
    golden_acc = golden.predict_int(graph, data.x_test)
    golden_float = build_mod.dequantize(graph, golden_acc)
    timer.lap("compile_golden")
    qonnx_float = build_mod.predict(out / "build", "qonnx", data.x_test, dequantize_output=True)
    timer.lap("qonnx")
    return {"graph": graph, "brevitas": brevitas_out, "golden_acc": golden_acc, "golden_float": golden_float,
            "qonnx": qonnx_float}


def _hardware(cfg, build: Path, x_test: np.ndarray, results: dict, console: Console, timer: _Timer) -> dict:
    """The RTL at the config's target, simulated with random stalls and back to back."""
    from xnorkit.sim import runner as sim_runner

    graph, golden_acc = results["graph"], results["golden_acc"]
    design = build_mod.generate_hw(build, target_cycles=cfg.hw.target_cycles)
    x_int = golden.quantize_input(graph, x_test)
    with _progress(console) as progress:
        n = len(x_int)  # each run's outputs as the testbench reports them
        task = progress.add_task(f"rtl sim ({cfg.hw.simulator})", total=2 * n, info="random stalls, scoreboard")
        stalled = sim_runner.simulate(build / "rtl", x_int, golden_acc, simulator=cfg.hw.simulator,
                                      stall_in=0.3, stall_out=0.3, seed=cfg.train.seed,
                                      progress=lambda done, _: progress.update(task, completed=done))
        progress.update(task, completed=n, info="back to back, cycles")
        clean = sim_runner.simulate(build / "rtl", x_int, golden_acc, simulator=cfg.hw.simulator, rebuild=False,
                                    progress=lambda done, _: progress.update(task, completed=n + done))
        progress.update(task, completed=2 * n, info="done")
    timer.lap("rtl")
    return {"design": design, "rtl_stalled": stalled, "rtl_clean": clean}
def _firmware(build: Path, x_test: np.ndarray, graph, timer: _Timer) -> dict:
    """The C library on the host and on the Cortex-M4 under QEMU."""
    from xnorkit.firmware import runner as fw_runner

    fw_dir, footprint = build_mod.generate_firmware(build)
    c_out = fw_runner.run_host(fw_dir, x_test, graph.result_width())
    timer.lap("c_host")
    m4_out = fw_runner.run_cortex_m4(fw_dir, x_test, graph.result_width())
    m4_size = fw_runner.size(fw_dir / "build" / "xk_cortex_m4.elf")
    timer.lap("cortex_m4")
    return {"c": c_out, "cortex-m4": m4_out, "m4_size": m4_size, "footprint": footprint,
            "m4_profile": m4_profile(build, fw_dir, x_test[:PROFILED], graph.result_width())}


PROFILED = 20  # test images whose Cortex-M4 instructions the flow counts


def m4_profile(build: Path, fw_dir: Path, x: np.ndarray, width: int) -> dict:
    """Cortex-M4 instructions per inference (QEMU -icount, firmware.runner.profile_cortex_m4), the mean over `x`,
    in all and per call of NAME_infer (the kernel and the IR node it runs)."""
    from xnorkit.firmware import emit_c
    from xnorkit.firmware import runner as fw_runner

    _, instructions = fw_runner.profile_cortex_m4(fw_dir, x, width)
    calls = emit_c.lower(build_mod.backend_graph(build)).calls
    return {"images": len(x), "per_inference": round(float(instructions.sum(axis=1).mean())),
            "calls": [{"kernel": re.search(r"xk_\w+", text).group(0), "node": comment,
                       "instructions": round(float(count))}
                      for (text, _, comment), count in zip(calls, instructions.mean(axis=0), strict=True)]}


def _report(cfg, data, r: dict, timer: _Timer) -> dict:
    """report.json: accuracy, each backend's agreement with golden, cycles, the design and the firmware."""
    y_test, n = data.y_test, int(len(data.y_test))
    golden_acc, golden_float, brevitas_out = r["golden_acc"], r["golden_float"], r["brevitas"]
    exact = [build_mod.agreement(r[k].outputs, golden_acc, exact=True) for k in ("rtl_stalled", "rtl_clean")]
    clean, design = r["rtl_clean"], r["design"]
    report = {
        "dataset": data.name,
        "n_test": n,
        "accuracy": {
            "brevitas": float((brevitas_out.argmax(1) == y_test).mean()),
            "golden": float((golden_float.argmax(1) == y_test).mean()),
        },
        "agreement": {
            "brevitas_argmax": int((brevitas_out.argmax(1) == golden_float.argmax(1)).sum()),
            "brevitas_float": build_mod.agreement(golden_float, brevitas_out, exact=False),
            "qonnx": build_mod.agreement(golden_float, r["qonnx"], exact=False),
            "rtl": min(exact),
            "c": build_mod.agreement(r["c"], golden_acc, exact=True),
            "cortex-m4": build_mod.agreement(r["cortex-m4"], golden_acc, exact=True),
        },
        "max_relative_error": {
            "golden_vs_brevitas": compare.max_relative_error(golden_float, brevitas_out),
            "golden_vs_qonnx": compare.max_relative_error(golden_float, r["qonnx"]),
        },
        "cycles_per_inference": clean.steady_state_cycles,
        "cycles_analytical": design["initiation_interval"],
        "latency_cycles": clean.latency,
        "folding": design["folding"],
        "layers": design["layers"],
        "simulator": cfg.hw.simulator,
        "firmware": {"activation_bytes": r["footprint"]["arena"], "cortex_m4_size": r["m4_size"],
                     "footprint": r["footprint"], "cortex_m4_instructions": r["m4_profile"]},
        "config": cfg.to_dict(),
        "timings_s": {**timer.seconds, "total": round(time.perf_counter() - timer.started, 2)},
    }
    report["ok"] = all(v == n for v in report["agreement"].values())
    return report


def _rows(report: dict) -> list[tuple[str, str, str]]:
    n = report["n_test"]
    acc = report["accuracy"]
    agree = report["agreement"]
    return [
        ("Brevitas (float QAT model)", f"{acc['brevitas']:.2%}", f"argmax {agree['brevitas_argmax']}/{n}, "
                                                                 f"outputs {agree['brevitas_float']}/{n}"),
        ("golden (integer IR)", f"{acc['golden']:.2%}", "reference"),
        ("qonnx executor", "", f"{agree['qonnx']}/{n} within 1e-5"),
        (f"RTL ({report['simulator']}, cocotb)", "", f"{agree['rtl']}/{n} exact"),
        ("C on host (gcc)", "", f"{agree['c']}/{n} exact"),
        ("C on Cortex-M4 (QEMU)", "", f"{agree['cortex-m4']}/{n} exact"),
    ]


def summary_table(report: dict) -> Table:
    table = Table(title=f"xnorkit flow: {report['dataset']}, {report['n_test']} test images")
    table.add_column("stage")
    table.add_column("accuracy", justify="right")
    table.add_column("agrees with golden")
    for row in _rows(report):
        table.add_row(*row)
    table.caption = (f"RTL: {report['cycles_per_inference']:.1f} cycles/inference measured, "
                     f"{report['cycles_analytical']} analytical, latency {report['latency_cycles']} cycles; "
                     f"total {report['timings_s']['total']:.0f} s")
    return table


def predict_cli(build: Path, backend: str, x_path: Path, y_path: Path, dequantize: bool, simulator: str,
                shards: dict | None = None) -> np.ndarray:
    """`xnorkit predict`; `shards` ({"workers", "address"}) splits the inputs over Ray tasks (xnorkit.shard)."""
    import io

    outputs.check_file(y_path)  # before the work, which can take minutes on the RTL
    x = build_mod.read_inputs(x_path)
    if shards:
        from xnorkit import shard

        y = shard.predict(build, backend, x, dequantize, simulator, **shards)
    else:
        y = build_mod.predict(build, backend, x, dequantize, simulator)
    y = y.astype(np.float32) if dequantize else y.astype(np.int64)
    data = io.BytesIO()
    np.save(data, y)
    outputs.write_file(y_path, data.getvalue())  # the name as given (np.save adds .npy to a name without it)
    return y
