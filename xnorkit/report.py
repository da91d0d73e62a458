"""`xnorkit report BUILD [BUILD ...]`: one document, report.md (charts as PNG files beside it) and a
self-contained report.html (markdown-it-py, the charts embedded), of what a build's files say: the accuracy at
each stage of the ladder and the training curves when a flow or a training run wrote them, per-layer cycles and
resources (the estimate, and Yosys' counts for every board synthesized in BUILD/synth/), the pipeline balance,
every FPGA board's utilization and inferences per second, every microcontroller's flash and RAM, the
Cortex-M4 instructions a flow measured, the time each stage took, the xnorkit version and the config. The
figures are the ones the other commands wrote; what a board's YAML gives (its clock, its capacity) is applied to
them, nothing is measured here."""

from __future__ import annotations

import base64
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import xnorkit
from xnorkit import outputs, records
from xnorkit.errors import XnorkitError


@dataclass
class BuildFacts:
    name: str
    design: dict
    synth: dict[str, dict] = field(default_factory=dict)  # board -> utilization.json
    stale: list[str] = field(default_factory=list)  # boards synthesized from another design (another folding)
    flow: dict | None = None  # the flow's report.json
    metrics: dict | None = None  # the training run's metrics.json
    accuracy: float | None = None
    footprint: dict | None = None  # the C library's flash and RAM (firmware.emit_c.footprint)
    # per MCU board: the library `xnorkit firmware --board` writes for it (its table size, flash and RAM), None
    # where the network does not fit
    per_board: dict | None = None


class _Accuracy(records.Record):
    brevitas: records.Share
    golden: records.Share


class _FlowReport(records.Record):
    """A flow's report.json: the keys the report reads (the rest it shows as written, when present)."""

    accuracy: _Accuracy
    n_test: records.Positive
    agreement: dict[str, records.Count]


class _Epoch(records.Record):
    epoch: records.Positive
    loss: float
    train_accuracy: records.Share


class _Metrics(records.Record):
    test_accuracy: records.Share | None = None
    history: list[_Epoch] = []


def load(build: Path) -> BuildFacts:
    from xnorkit import build as build_mod
    from xnorkit.firmware import emit_c
    from xnorkit.hw import emit_sv, synth

    build = Path(build)
    design_path = build / "rtl" / "design.json"
    if not design_path.exists():
        raise XnorkitError(f"{build} has no generated design ({design_path}); run `xnorkit hw {build}` first")
    facts = BuildFacts(build.parent.name if build.name == "build" else build.name, emit_sv.load_design(build / "rtl"))
    digest = hashlib.sha256(design_path.read_bytes()).hexdigest()
    for util in sorted((build / "synth").glob("*/utilization.json")):
        result = synth.load_result(util.parent)
        if result["design_sha256"] == digest:
            facts.synth[util.parent.name] = result
        else:
            facts.stale.append(util.parent.name)
    for candidate in (build / "report.json", build.parent / "report.json"):
        if candidate.exists():
            facts.flow = records.read_json(candidate, _FlowReport, "run the flow again, or move the file away")
            facts.accuracy = facts.flow["accuracy"]["golden"]
            break
    metrics = build.parent / "metrics.json"
    if metrics.exists():
        facts.metrics = records.read_json(metrics, _Metrics, "train again, or move the file away")
        if facts.accuracy is None:
            facts.accuracy = facts.metrics.get("test_accuracy")
    if (build / "ir.json").exists():
        graph = build_mod.backend_graph(build)
        facts.footprint = emit_c.footprint(emit_c.lower(graph))
        facts.per_board = _per_board(graph)
    return facts


# ---- charts: one function each, None when the builds have no data for it -------------------------------------

def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def _charts(builds: list[BuildFacts]) -> dict[str, bytes]:
    """File name -> PNG of each chart the builds have data for."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts = {}
    for name, chart in (("training.png", _training_chart), ("balance.png", _balance_chart),
                        ("luts.png", _luts_chart), ("utilization.png", _utilization_chart),
                        ("pareto.png", _pareto_chart)):
        fig = chart(plt, builds)
        if fig is not None:
            charts[name] = _png(fig)
            plt.close(fig)
    return charts


def _training_chart(plt, builds: list[BuildFacts]):
    history = (builds[0].metrics or {}).get("history") or []
    if not history:
        return None
    epochs = [h["epoch"] for h in history]
    fig, loss_ax = plt.subplots(figsize=(8, 3))
    loss_ax.plot(epochs, [h["loss"] for h in history], "o-", color="#c44e52", label="training loss")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    acc_ax = loss_ax.twinx()
    acc_ax.plot(epochs, [100 * h["train_accuracy"] for h in history], "s-", color="#4c72b0",
                label="training accuracy %")
    acc_ax.set_ylabel("training accuracy %")
    fig.legend(loc="center right")
    loss_ax.set_title("Training, per epoch")
    return fig


def _balance_chart(plt, builds: list[BuildFacts]):
    design = builds[0].design
    fig, ax = plt.subplots(figsize=(8, 3.2))
    bars = ax.bar([ly["name"] for ly in design["layers"]], [ly["cycles"] for ly in design["layers"]],
                  color="#4c72b0")
    ax.bar_label(bars, fmt="{:,.0f}", fontsize=7)
    ax.axhline(design["initiation_interval"], color="#c44e52", linestyle="--", label="initiation interval")
    ax.set_ylabel("cycles per inference")
    ax.set_title("Pipeline balance: cycles per stage")
    ax.tick_params(axis="x", rotation=45)
    ax.legend()
    return fig


def _luts_chart(plt, builds: list[BuildFacts]):
    main = builds[0]
    layers = main.design["layers"]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    width = 0.8 / (1 + len(main.synth))
    xs = range(len(layers))
    ax.bar([x - 0.4 + width / 2 for x in xs], [ly["lut"] for ly in layers], width, label="estimate (LUT6)")
    for i, (board, util) in enumerate(main.synth.items(), start=1):
        values = [util["layers"].get(f"u_l{k}", {}).get("lut", 0) for k in range(len(layers))]
        ax.bar([x - 0.4 + width * (i + 0.5) for x in xs], values, width, label=f"Yosys, {board}")
    ax.set_xticks(list(xs), [ly["name"] for ly in layers], rotation=45)
    ax.set_ylabel("LUTs")
    ax.set_title("LUTs per layer")
    ax.legend()
    return fig


def _utilization_chart(plt, builds: list[BuildFacts]):
    synth = builds[0].synth
    if not synth:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.9 * len(synth)))
    for row, util in enumerate(synth.values()):
        for k, kind in enumerate(("lut", "ff", "bram", "dsp")):
            share = 100 * util["total"][kind] / max(1, util["capacity"][kind])
            ax.barh(row + 0.2 * k - 0.3, share, 0.18, color=f"C{k}", label=kind.upper() if row == 0 else None)
    ax.set_yticks(range(len(synth)), list(synth))
    ax.axvline(100, color="black", linewidth=0.8)
    ax.set_xlabel("% of the part")
    ax.set_title("Board utilization (Yosys)")
    ax.legend(loc="lower right")
    return fig


def _pareto_chart(plt, builds: list[BuildFacts]):
    points = [(b, board, util) for b in builds if b.accuracy is not None for board, util in b.synth.items()]
    if len(builds) < 2 or not points:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    for b, board, util in points:
        label = f"{b.name} / {board}"
        left.scatter(util["total"]["lut"], 100 * b.accuracy, label=label)
        right.scatter(b.design["latency_estimate"], 100 * b.accuracy, label=label)
    left.set_xlabel("LUTs (Yosys)")
    right.set_xlabel("latency (cycles)")
    left.set_ylabel("test accuracy %")
    left.legend(fontsize=7)
    fig.suptitle("Accuracy versus LUTs and latency")
    return fig


# ---- the document ---------------------------------------------------------------------------------------------

def _table(header: list[str], rows: list[list]) -> list[str]:
    """A Markdown table: one delimiter cell per header cell, every row as wide (so that it renders as a table)."""
    def line(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    assert all(len(r) == len(header) for r in rows), "a table row of another width"
    return [line(header), "|" + "---|" * len(header), *(line(r) for r in rows), ""]


def _accuracy(b: BuildFacts) -> list[str]:
    """The accuracy ladder: each stage's test accuracy, and how each backend agrees with golden."""
    flow = b.flow
    if flow is None:
        return (["## Accuracy", "", f"Test accuracy (training run): {100 * b.accuracy:.2f}%.", ""]
                if b.accuracy is not None else [])
    n, acc, agree = flow["n_test"], flow["accuracy"], flow["agreement"]
    exact = {"rtl": "RTL (cocotb)", "c": "C on the host (gcc)", "cortex-m4": "C on the Cortex-M4 (QEMU)"}
    rows = [["Brevitas (float QAT model)", f"{acc['brevitas']:.2%}",
             f"argmax {agree.get('brevitas_argmax', '?')} of {n}"],
            ["golden (integer IR)", f"{acc['golden']:.2%}", "the reference"]]
    if "qonnx" in agree:
        rows.append(["qonnx executor", f"{acc['golden']:.2%}" if agree["qonnx"] == n else "",
                     f"{agree['qonnx']} of {n} within 1e-5"])
    rows += [[label, f"{acc['golden']:.2%}" if agree[key] == n else "differs", f"{agree[key]} of {n} exact"]
             for key, label in exact.items() if key in agree]
    return ["## Accuracy", "", f"{n} test images of {flow.get('dataset', 'the dataset')}; every backend is compared "
            "with the golden model (integers exactly, float references within 1e-5 of the largest output).", "",
            *_table(["stage", "test accuracy", "agrees with golden"], rows)]


def _training(b: BuildFacts, charts: dict[str, bytes]) -> list[str]:
    history = (b.metrics or {}).get("history") or []
    if not history:
        return []
    last = history[-1]
    return ["## Training", "", f"{len(history)} epochs; the last: training loss {last['loss']:.4f}, training "
            f"accuracy {100 * last['train_accuracy']:.2f}% (on the batches as they were trained).", "",
            *(["![Training, per epoch](training.png)", ""] if "training.png" in charts else [])]


def _accelerator(b: BuildFacts, charts: dict[str, bytes]) -> list[str]:
    d = b.design
    boards = list(b.synth)
    rows = []
    for k, ly in enumerate(d["layers"]):
        size = f"{ly['mw']:,} x {ly['mh']:,}" if "mw" in ly else ""
        measured = [b.synth[board]["layers"].get(f"u_l{k}") for board in boards]
        rows.append([ly["name"], ly["kind"], size, ly.get("pe", ""), ly.get("simd", ""), f"{ly['cycles']:,}",
                     f"{ly['lut']:,}", *(f"{m['lut']:,} / {m['ff']:,} / {m['bram']}" if m else "" for m in measured)])
    lines = ["## Accelerator", "",
             f"`{d['top']}`: {len(d['layers'])} stages, {d['initiation_interval']:,} cycles per inference (the "
             f"slowest stage), latency estimate {d['latency_estimate']:,} cycles. First-order estimate: "
             f"{d['resources']['lut']:,} LUT6, {d['resources']['ff']:,} FFs, {d['resources']['memory_bits']:,} "
             "memory bits.", ""]
    if b.flow and "cycles_per_inference" in b.flow:
        lines += [f"Simulated: {b.flow['cycles_per_inference']:.1f} cycles per inference back to back, latency "
                  f"{b.flow['latency_cycles']:,} cycles.", ""]
    lines += _table(["stage", "kind", "inputs x outputs", "PE", "SIMD", "cycles", "LUT (estimate)",
                     *(f"LUT / FF / BRAM ({board})" for board in boards)], rows)
    lines += [f"![{title}]({name})" for name, title in (("balance.png", "Pipeline balance"),
                                                         ("luts.png", "LUTs per layer")) if name in charts]
    return [*lines, ""]


def _fpga_boards(b: BuildFacts, charts: dict[str, bytes]) -> list[str]:
    """Every FPGA board: what Yosys counted where the design was synthesized for it, and the inferences per
    second at its clock (and at the Fmax nextpnr reached)."""
    from xnorkit import boards

    ii = b.design["initiation_interval"]
    rows = []
    for name in boards.names("fpga"):
        board, u = boards.load(name), b.synth.get(name)
        rate = f"{board.clock_mhz * 1e6 / ii:,.0f}"
        if u is None:
            rows.append([name, f"{board.clock_mhz:g}", "not synthesized", "", "", "", "", rate])
            continue
        t, c = u["total"], u["capacity"]
        fmax = u.get("fmax_mhz")
        rows.append([name, f"{board.clock_mhz:g}" + (f" (Fmax {fmax:g})" if fmax else ""),
                     "yes" if u["fits"] else "NO", f"{t['lut']:,} of {c['lut']:,}", f"{t['ff']:,} of {c['ff']:,}",
                     f"{t['bram']} of {c['bram']}", f"{t['dsp']} of {c['dsp']}", rate])
    lines = ["## FPGA boards", "", "LUT, FF, block RAM and DSP as Yosys counted them (`xnorkit synth`); inferences "
             f"per second at the board's clock, {ii:,} cycles per inference.", "",
             *_table(["board", "clock (MHz)", "fits", "LUT", "FF", "BRAM", "DSP", "inferences/s"], rows)]
    per_instance = [name for name, u in b.synth.items() if u.get("method") == "per instance"]
    if per_instance:
        lines += [f"Synthesized per instance ({', '.join(per_instance)}): each stage, FIFO and width converter of "
                  "the top alone (`xnorkit synth --per-instance`), the totals their sums; Yosys optimizes nothing "
                  "across their boundaries, as with the whole design's kept hierarchy.", ""]
    if "utilization.png" in charts:
        lines += ["![Board utilization](utilization.png)", ""]
    if b.stale:
        lines += [f"Left out: the synthesis results for {', '.join(b.stale)}, made from another design (another "
                  "folding); run `xnorkit synth` again.", ""]
    return lines


def _per_board(graph) -> dict:
    """emit_c.fit on every MCU board: the integer-input table size and footprint, None where nothing fits."""
    from xnorkit import boards
    from xnorkit.errors import XnorkitError
    from xnorkit.firmware import emit_c

    fits, known = {}, {}
    for name in boards.names("mcu"):
        try:
            lut_bits, need = emit_c.fit(graph, boards.load(name), known=known)
            fits[name] = {**need, "lut_bits": lut_bits}
        except XnorkitError:
            fits[name] = None
    return fits


def _microcontrollers(b: BuildFacts) -> list[str]:
    """Every MCU board: the C library's flash and RAM against it; with the flow's Cortex-M4 count, inferences per
    second at its clock."""
    from xnorkit import boards

    need = b.footprint
    if need is None:
        return []
    m4 = ((b.flow or {}).get("firmware") or {}).get("cortex_m4_instructions")
    rows = []
    for name in boards.names("mcu"):
        board, own = boards.load(name), (b.per_board or {}).get(name)
        here = own or need  # the board's own library; where none fits, the default one's needs
        tables = "" if own is None else {8: "8 inputs", 4: "4 inputs", 0: "bit planes"}[own["lut_bits"]]
        same_core = board.cpu.startswith("cortex-m4")  # the M4F runs the same integer instructions
        rate = f"{board.clock_mhz * 1e6 / m4['per_inference']:,.0f}" if m4 and same_core and own else ""
        rows.append([name, board.cpu, f"{board.clock_mhz:g}", f"{here['flash']:,} of {board.flash_bytes:,}",
                     f"{here['ram']:,} of {board.ram_bytes:,}", tables, "yes" if own else "NO", rate])
    lines = ["## Microcontrollers", "",
             f"The C library (`xnorkit firmware`): weights {need['weights']:,} bytes, flash {need['flash']:,} "
             f"bytes (weights and code), RAM {need['ram']:,} bytes (activations {need['arena']:,} and stack "
             f"{need['stack']:,}).", "",
             "Per board, the library `xnorkit firmware --board` writes: its integer-input layers take the "
             "subset-sum tables the board's RAM holds (8 or 4 inputs a table, else bit planes).", "",
             *_table(["board", "core", "clock (MHz)", "flash (bytes)", "RAM (bytes)", "integer-input tables", "fits",
                      "inferences/s (Cortex-M4, 1 instruction per cycle)"], rows)]
    if m4:
        lines += [f"Cortex-M4 (QEMU mps2-an386, instructions counted with -icount, mean of {m4['images']} test "
                  f"images): {m4['per_inference']:,} instructions per inference.", "",
                  *_table(["call", "IR node", "instructions"],
                          [[c["kernel"], c["node"], f"{c['instructions']:,}"] for c in m4["calls"]])]
    return lines


def _flow_facts(b: BuildFacts) -> list[str]:
    """The time each stage of the flow took, and the config it ran."""
    import yaml

    flow = b.flow or {}
    lines = []
    if "timings_s" in flow:
        lines += ["## Time", "", *_table(["stage", "seconds"], [[k, v] for k, v in flow["timings_s"].items()])]
    if "config" in flow:
        lines += ["## Configuration", "", "```yaml", yaml.safe_dump(flow["config"], sort_keys=False).rstrip(),
                  "```", ""]
    return lines


def markdown(builds: list[BuildFacts], charts: dict[str, bytes] | None = None) -> str:
    """The report as one Markdown document: each build's sections, then the comparison of builds."""
    charts = charts or {}
    names = ", ".join(b.name for b in builds)
    lines = [f"# xnorkit report: {names}", "", f"xnorkit {xnorkit.__version__}.", ""]
    for i, b in enumerate(builds):
        shown = charts if i == 0 else {}  # the per-build charts are the first build's
        if len(builds) > 1:
            lines += [f"# {b.name}", ""]
        lines += [*_accuracy(b), *_training(b, shown), *_accelerator(b, shown), *_fpga_boards(b, shown),
                  *_microcontrollers(b), *_flow_facts(b)]
    if "pareto.png" in charts:
        lines += ["# Comparison", "", "![Accuracy versus LUTs and latency](pareto.png)", ""]
    return "\n".join(lines).rstrip() + "\n"


_STYLE = ("body{font-family:sans-serif;max-width:64em;margin:2em auto;padding:0 1em}table{border-collapse:collapse;"
          "margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}td:first-child,"
          "th:first-child{text-align:left}img{max-width:100%}pre{background:#f6f8fa;padding:0.5em}")


def html_page(md_text: str, charts: dict[str, bytes]) -> str:
    """The Markdown rendered by markdown-it-py (CommonMark and GFM tables), each chart embedded as PNG data."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(md_text)
    for name, png in charts.items():
        body = body.replace(f'src="{name}"', f'src="data:image/png;base64,{base64.b64encode(png).decode()}"')
    title = re.sub(r"[<>&\"]", "", md_text.splitlines()[0].lstrip("# "))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{_STYLE}</style></head><body>\n{body}</body></html>\n")


def write(builds: list[Path], out: Path) -> tuple[Path, Path]:
    """OUT/report.md with its charts beside it, and OUT/report.html with them embedded."""
    facts = [load(b) for b in builds]
    charts = _charts(facts)
    md_text = markdown(facts, charts)
    out = Path(out)
    outputs.check_folder(out, ("report", "build", "flow"))
    out.mkdir(parents=True, exist_ok=True)
    if outputs.kind_of(out) is None:
        outputs.write_file(out / outputs.MARKER, "report\n")
    for name, png in charts.items():
        outputs.write_file(out / name, png)
    return outputs.write_file(out / "report.md", md_text), outputs.write_file(out / "report.html",
                                                                            html_page(md_text, charts))
