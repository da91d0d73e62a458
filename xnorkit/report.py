"""`xnorkit report BUILD [BUILD ...]`: report.md and a self-contained report.html (plots embedded as PNG
data) of what a build's files say: per-layer cycles and resources (the estimate, and Yosys' counts for every
board synthesized in BUILD/synth/), the pipeline balance, board utilization, the accuracy of each stage of
the ladder when a flow wrote report.json beside the build, and with several builds an accuracy versus LUTs
and latency Pareto chart. Nothing is recomputed: the figures are the ones the other commands wrote."""

from __future__ import annotations

import base64
import hashlib
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

from xnorkit import outputs, records
from xnorkit.errors import XnorkitError


@dataclass
class BuildFacts:
    name: str
    design: dict
    synth: dict[str, dict] = field(default_factory=dict)  # board -> utilization.json
    stale: list[str] = field(default_factory=list)  # boards synthesized from another design (another folding)
    flow: dict | None = None  # the flow's report.json
    accuracy: float | None = None


class _Accuracy(records.Record):
    brevitas: records.Share
    golden: records.Share


class _FlowReport(records.Record):
    """A flow's report.json: the keys the report reads."""

    accuracy: _Accuracy
    n_test: records.Positive
    agreement: dict[str, records.Count]


class _Metrics(records.Record):
    test_accuracy: records.Share | None = None


def load(build: Path) -> BuildFacts:
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
    else:
        metrics = build.parent / "metrics.json"
        if metrics.exists():
            facts.accuracy = records.read_json(metrics, _Metrics, "train again, or move the file away") \
                .get("test_accuracy")
    return facts


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _plots(builds: list[BuildFacts]) -> list[tuple[str, str]]:
    """(title, base64 PNG) per figure that the builds have data for (one function per chart)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = []
    for title, chart in (("Pipeline balance", _balance_chart), ("LUTs per layer", _luts_chart),
                         ("Board utilization", _utilization_chart), ("Accuracy ladder", _ladder_chart),
                         ("Pareto", _pareto_chart)):
        fig = chart(plt, builds)
        if fig is not None:
            plots.append((title, _png(fig)))
            plt.close(fig)
    return plots


def _balance_chart(plt, builds: list[BuildFacts]):
    design = builds[0].design
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.bar([ly["name"] for ly in design["layers"]], [ly["cycles"] for ly in design["layers"]], color="#4c72b0")
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
        per_layer = util["layers"]
        values = [per_layer.get(f"u_l{k}", {}).get("lut", 0) for k in range(len(layers))]
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


def _ladder_chart(plt, builds: list[BuildFacts]):
    flow = builds[0].flow
    if not flow:
        return None
    ladder = {"Brevitas": flow["accuracy"]["brevitas"], "golden": flow["accuracy"]["golden"]}
    for stage, agree in flow["agreement"].items():
        if stage in ("rtl", "c", "cortex-m4"):  # exact backends: golden's accuracy when they agree on all
            ladder[stage] = flow["accuracy"]["golden"] if agree == flow["n_test"] else float("nan")
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(list(ladder), [100 * v for v in ladder.values()], color="#55a868")
    ax.set_ylim(min(100 * v for v in ladder.values() if v == v) - 5, 100)
    ax.set_ylabel("test accuracy %")
    ax.set_title("Accuracy at each stage of the ladder")
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


def markdown(builds: list[BuildFacts]) -> str:
    lines = ["# xnorkit report", ""]
    for b in builds:
        d = b.design
        lines += [f"## {b.name}", "",
                  f"{len(d['layers'])} stages, {d['initiation_interval']:,} cycles per inference (slowest stage), "
                  f"latency estimate {d['latency_estimate']:,} cycles. Estimate: {d['resources']['lut']:,} LUT6, "
                  f"{d['resources']['ff']:,} FFs, {d['resources']['memory_bits']:,} memory bits."
                  + (f" Test accuracy (golden): {100 * b.accuracy:.2f}%." if b.accuracy is not None else ""), "",
                  "| stage | kind | cycles | PE | SIMD | LUT (estimate) | "
                  + " | ".join(f"LUT / FF / BRAM ({board})" for board in b.synth) + " |",
                  "|---|---|---|---|---|---|" + "---|" * len(b.synth)]
        for k, ly in enumerate(d["layers"]):
            measured = [b.synth[board]["layers"].get(f"u_l{k}") for board in b.synth]
            cells = [f"{m['lut']:,} / {m['ff']:,} / {m['bram']}" if m else "" for m in measured]
            lines.append(f"| {ly['name']} | {ly['kind']} | {ly['cycles']:,} | {ly.get('pe', '')} | "
                         f"{ly.get('simd', '')} | {ly['lut']:,} | " + " | ".join(cells) + " |")
        if b.synth:
            lines += ["", "| board | fits | LUT | FF | BRAM | DSP | Fmax (MHz) | inferences/s |",
                      "|---|---|---|---|---|---|---|---|"]
            for board, u in b.synth.items():
                t, c = u["total"], u["capacity"]
                fmax = u.get("fmax_mhz")
                clock = fmax or u["clock_mhz"]
                rate = f"{clock * 1e6 / d['initiation_interval']:,.0f} at {'Fmax' if fmax else 'the board clock'}"
                lines.append(f"| {board} | {'yes' if u['fits'] else 'NO'} | {t['lut']:,} / {c['lut']:,} | "
                             f"{t['ff']:,} / {c['ff']:,} | {t['bram']} / {c['bram']} | {t['dsp']} / {c['dsp']} | "
                             f"{fmax or '(not routed)'} | {rate} |")
        if b.stale:
            lines += ["", f"Left out: the synthesis results for {', '.join(b.stale)}, made from another design "
                          f"(another folding); run `xnorkit synth` again."]
        lines.append("")
    return "\n".join(lines) + "\n"


def _html(md_text: str, plots: list[tuple[str, str]]) -> str:
    body = []
    in_table = False
    for line in md_text.splitlines():
        if line.startswith("|"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            tag = "th" if not in_table else "td"
            body.append(("<table>" if not in_table else "") + "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells)
                        + "</tr>")
            in_table = True
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line:
            body.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        body.append("</table>")
    figures = "".join(f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{png}">'
                      f"<figcaption>{html.escape(t)}</figcaption></figure>" for t, png in plots)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>xnorkit report</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}figure{margin:1em 0}"
            "img{max-width:100%}</style></head><body>\n" + "\n".join(body) + "\n" + figures + "\n</body></html>\n")


def write(builds: list[Path], out: Path, extra_markdown: str = "") -> tuple[Path, Path]:
    facts = [load(b) for b in builds]
    md_text = extra_markdown + markdown(facts)
    out = Path(out)
    outputs.check_folder(out, ("report", "build", "flow"))
    html = _html(md_text, _plots(facts))
    out.mkdir(parents=True, exist_ok=True)
    if outputs.kind_of(out) is None:
        outputs.write_file(out / outputs.MARKER, "report\n")
    return outputs.write_file(out / "report.md", md_text), outputs.write_file(out / "report.html", html)
