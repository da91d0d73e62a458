"""`xnorkit flow`: train, export, compile, then run every backend on the test split and check each one
against the golden model. Writes OUT/model.onnx, OUT/build/, OUT/report.json and OUT/report.md."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from xnorkit import build as build_mod
from xnorkit import compare, golden, outputs


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


def run_flow(config_path: Path | None, out: Path, data_dir: Path | None = None,
             console: Console | None = None) -> dict:
    from firmware import runner as fw_runner
    from quant_train import config as config_mod
    from quant_train import data as data_mod
    from quant_train import recipe
    from quant_train import train as train_mod
    from sim import runner as sim_runner

    console = console or Console()
    cfg = config_mod.load(config_path)
    out = Path(out)
    outputs.check_folder(out, ("flow",))  # a flow rewrites its own folder stage by stage
    out.mkdir(parents=True, exist_ok=True)
    outputs.write_file(out / outputs.MARKER, "flow\n")
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 2)

    data = data_mod.load(cfg.dataset, data_dir)
    x_test, y_test = data.x_test, data.y_test

    t0 = time.perf_counter()
    with _progress(console) as progress:
        model, metrics = recipe.run(cfg, data, stage_progress(progress))
    train_mod.save_run(model, metrics, cfg, data, out)
    brevitas_out = train_mod.evaluate(model, x_test)
    lap("train", t0)

    t0 = time.perf_counter()
    build = out / "build"
    graph = build_mod.compile_model(out / "model.onnx", build)
    golden_acc = golden.predict_int(graph, x_test)
    golden_float = build_mod.dequantize(graph, golden_acc)
    lap("compile_golden", t0)

    t0 = time.perf_counter()
    qonnx_float = build_mod.predict(build, "qonnx", x_test, dequantize_output=True)
    lap("qonnx", t0)

    t0 = time.perf_counter()
    design = build_mod.generate_hw(build, target_cycles=cfg.hw.target_cycles)
    x_int = golden.quantize_input(graph, x_test)
    with _progress(console) as progress:
        task = progress.add_task(f"rtl sim ({cfg.hw.simulator})", total=2, info="random stalls, scoreboard")
        stalled = sim_runner.simulate(build / "rtl", x_int, golden_acc, simulator=cfg.hw.simulator,
                                      stall_in=0.3, stall_out=0.3, seed=cfg.train.seed)
        progress.update(task, completed=1, info="back to back, cycles")
        clean = sim_runner.simulate(build / "rtl", x_int, golden_acc, simulator=cfg.hw.simulator, rebuild=False)
        progress.update(task, completed=2, info="done")
    lap("rtl", t0)

    t0 = time.perf_counter()
    fw_dir, footprint = build_mod.generate_firmware(build)
    n_out = graph.result_width()
    c_out = fw_runner.run_host(fw_dir, x_test, n_out)
    lap("c_host", t0)
    t0 = time.perf_counter()
    m4_out = fw_runner.run_cortex_m4(fw_dir, x_test, n_out)
    m4_size = fw_runner.size(fw_dir / "xk_cortex_m4.elf")
    lap("cortex_m4", t0)

    n = int(len(y_test))
    rtl_agree = min(build_mod.agreement(stalled.outputs, golden_acc, exact=True),
                    build_mod.agreement(clean.outputs, golden_acc, exact=True))
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
            "qonnx": build_mod.agreement(golden_float, qonnx_float, exact=False),
            "rtl": rtl_agree,
            "c": build_mod.agreement(c_out, golden_acc, exact=True),
            "cortex-m4": build_mod.agreement(m4_out, golden_acc, exact=True),
        },
        "max_relative_error": {
            "golden_vs_brevitas": compare.max_relative_error(golden_float, brevitas_out),
            "golden_vs_qonnx": compare.max_relative_error(golden_float, qonnx_float),
        },
        "cycles_per_inference": clean.steady_state_cycles,
        "cycles_analytical": design["initiation_interval"],
        "latency_cycles": clean.latency,
        "folding": design["folding"],
        "layers": design["layers"],
        "simulator": cfg.hw.simulator,
        "firmware": {"activation_bytes": footprint["arena"], "cortex_m4_size": m4_size},
        "config": cfg.to_dict(),
        "timings_s": timings,
    }
    report["timings_s"]["total"] = round(time.perf_counter() - started, 2)
    report["ok"] = all(v == n for k, v in report["agreement"].items())
    build_mod.save_json(out / "report.json", report)
    from xnorkit import report as report_mod

    report_mod.write([build], out, extra_markdown=render_markdown(report, out))
    console.print(summary_table(report))
    console.print(f"wrote {out / 'model.onnx'}, {build}/, {out / 'report.json'}, {out / 'report.md'}, "
                  f"{out / 'report.html'}")
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


def render_markdown(report: dict, out: Path) -> str:
    lines = [f"# xnorkit flow report: {report['dataset']}", "",
             f"{report['n_test']} test images. Every backend is compared with the golden model (integers "
             f"exactly; float references within 1e-5 of the output vector's largest magnitude).", "",
             "| stage | accuracy | agrees with golden |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in _rows(report)]
    lines += ["", "## Accelerator", "",
              f"Cycles per inference: {report['cycles_per_inference']:.1f} measured back to back, "
              f"{report['cycles_analytical']} analytical; latency {report['latency_cycles']} cycles.", "",
              "| layer | inputs x outputs | PE | SIMD | cycles/vector | accumulator bits |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {ly['name']} | {ly['mw']} x {ly['mh']} | {ly['pe']} | {ly['simd']} | {ly['cycles']} | "
              f"{ly['acc_bits']} |" for ly in report["layers"]]
    size = report["firmware"]["cortex_m4_size"]
    lines += ["", "## Firmware", "",
              f"Static activation buffers: {report['firmware']['activation_bytes']} bytes. Cortex-M4 image "
              f"(whole program with newlib): text {size['text']}, data {size['data']}, bss {size['bss']} bytes.",
              "", "## Time (s)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report["timings_s"].items()]
    return "\n".join(lines) + "\n"


def predict_cli(build: Path, backend: str, x_path: Path, y_path: Path, dequantize: bool, simulator: str) -> np.ndarray:
    import io

    outputs.check_file(y_path)  # before the work, which can take minutes on the RTL
    x = build_mod.read_inputs(x_path)
    y = build_mod.predict(build, backend, x, dequantize, simulator)
    y = y.astype(np.float32) if dequantize else y.astype(np.int64)
    data = io.BytesIO()
    np.save(data, y)
    outputs.write_file(y_path, data.getvalue())  # the name as given (np.save adds .npy to a name without it)
    return y
