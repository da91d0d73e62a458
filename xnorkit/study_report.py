"""The report of an `xnorkit explore` study: the Pareto front as a table and as charts (accuracy against each
cost, with the board's capacity drawn), the parameters' importances, every trial, and for each Pareto point the
command that rebuilds it. STUDY/report.md with its charts beside it, STUDY/report.html with them embedded."""

from __future__ import annotations

from pathlib import Path

import xnorkit
from xnorkit import outputs, report, space

COSTS = [name for name in space.OBJECTIVES if name != "accuracy"]


def _trial_row(t, study: Path) -> dict:
    figures = t.user_attrs.get("figures", {})
    return {"number": t.number, "state": t.state.name.lower(), "params": dict(t.params), "figures": figures,
            "folder": t.user_attrs.get("folder"),
            "values": list(t.values or []), "error": t.user_attrs.get("error"), "same_as": t.user_attrs.get("same_as"),
            # the study folder as the user named it: the command runs from where explore ran
            "command": f"xnorkit flow {_config_of(t, study)} -o out/trial{t.number}"}


def _config_of(t, study: Path) -> Path:
    folder = Path(t.user_attrs.get("folder", ""))
    return Path(study) / "trials" / folder.name / "config.yaml"


def summary(study_obj, study: Path) -> dict:
    """The study as data: its objectives, every trial, and the numbers of the Pareto trials."""
    record = study_obj.user_attrs.get("space", {})
    objectives = list(record.get("search", {}).get("objectives", {}).items())
    complete = [t for t in study_obj.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    return {"study": str(study), "objectives": objectives, "board": record.get("search", {}).get("board"),
            "trials": [_trial_row(t, study) for t in study_obj.get_trials(deepcopy=False)],
            "front": sorted(t.number for t in study_obj.best_trials) if complete else []}


def importances(study_obj, objectives: list) -> dict[str, dict[str, float]]:
    """fANOVA importance of each searched parameter for each objective (Optuna's evaluator); empty with fewer
    than two complete trials or a single parameter value."""
    import optuna

    complete = [t for t in study_obj.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(complete) < 2:
        return {}
    result = {}
    for i, (name, _) in enumerate(objectives):
        try:
            result[name] = optuna.importance.get_param_importances(
                study_obj, target=lambda t, i=i: t.values[i],
                evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
        except (RuntimeError, ValueError):  # every trial had the same parameters: nothing to attribute
            continue
    return result


def value_text(v) -> str:
    return f"{v:.2%}" if isinstance(v, float) and 0 <= v <= 1 else f"{v:,}" if isinstance(v, int) else str(v)


def markdown(data: dict, imp: dict, charts: dict[str, bytes]) -> str:
    names = [name for name, _ in data["objectives"]]
    params = sorted({k for t in data["trials"] for k in t["params"]})
    front = [t for t in data["trials"] if t["number"] in data["front"]]
    lines = [f"# xnorkit study: {data['study']}", "", f"xnorkit {xnorkit.__version__}. Objectives: "
             + ", ".join(f"{d} {n}" for n, d in data["objectives"])
             + (f"; board {data['board']}" if data["board"] else "") + ".", ""]
    states = [t["state"] for t in data["trials"]]
    lines += [f"{len(states)} trials: " + ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states))), ""]
    lines += ["## Pareto front", ""]
    lines += report._table(["trial", *params, *names, "rebuild"],
                           [[t["number"], *(t["params"].get(p, "") for p in params),
                             *(value_text(t["figures"].get(n, "")) for n in names), f"`{t['command']}`"]
                            for t in front])
    lines += [f"![{name}]({name})" for name in charts] + [""]
    if imp:
        lines += ["## Parameter importance (fANOVA)", ""]
        lines += report._table(["parameter", *imp], [[p, *(f"{imp[n].get(p, 0.0):.2f}" for n in imp)] for p in params])
    lines += ["## Every trial", ""]
    lines += report._table(["trial", "state", *params, *names, "reason"],
                           [[t["number"], t["state"], *(t["params"].get(p, "") for p in params),
                             *(value_text(t["figures"].get(n, "")) for n in names), _note(t)]
                            for t in data["trials"]])
    return "\n".join(lines).rstrip() + "\n"


def _note(t: dict) -> str:
    if t["same_as"] is not None:
        return f"the parameters of trial {t['same_as']}: its figures"
    return (t["error"] or "")[:160]


def _charts(data: dict) -> dict[str, bytes]:
    """front-COST.png: accuracy against each cost objective, the front joined, the board's capacity drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, _ in data["objectives"]]
    if "accuracy" not in names:
        return {}
    done = [t for t in data["trials"] if t["state"] == "complete"]
    if not done:
        return {}
    charts = {}
    for cost in (n for n in names if n in COSTS):
        fig, ax = plt.subplots(figsize=(5.5, 3.4))
        points = sorted((t["figures"][cost], 100 * t["figures"]["accuracy"], t["number"] in data["front"])
                        for t in done)
        ax.scatter([p[0] for p in points if not p[2]], [p[1] for p in points if not p[2]], color="#999",
                   label="trials")
        ax.scatter([p[0] for p in points if p[2]], [p[1] for p in points if p[2]], color="C0",
                   label="Pareto front (all objectives)")
        ax.step(*zip(*_staircase(points), strict=True), where="post", color="C0", linewidth=1,
                label=f"most accurate at each {cost}")
        _capacity(ax, cost, data["board"])
        ax.set_xlabel(f"{cost} ({space.OBJECTIVES[cost].split(' (')[0]})", fontsize=8)
        ax.set_ylabel("accuracy %")
        ax.legend(fontsize=7)
        charts[f"front-{cost}.png"] = report._png(fig)
        plt.close(fig)
    return charts


def _staircase(points: list[tuple]) -> list[tuple[float, float]]:
    """The two-objective front of (cost, accuracy) points sorted by cost: each point more accurate than every
    cheaper one."""
    best, stairs = float("-inf"), []
    for cost, accuracy, *_ in points:
        if accuracy > best:
            best = accuracy
            stairs.append((cost, accuracy))
    return [*stairs, (points[-1][0], best)]  # on to the costliest trial


def _capacity(ax, cost: str, board: str | None) -> None:
    if cost in space.BOARD_OBJECTIVES and board:
        from xnorkit import boards

        b = boards.load_kind(board, "fpga")
        ax.axvline(b.lut, color="C3", linestyle="--", label=f"{b.name}: {b.lut:,} LUTs")


def write(study: Path) -> tuple[Path, Path]:
    """STUDY/report.md (charts beside it) and STUDY/report.html, and STUDY/front.json (the data)."""
    from xnorkit import explore

    study_obj = explore.open_study(study, None, _storage_of(study))
    data = summary(study_obj, study)
    imp = importances(study_obj, data["objectives"])
    charts = _charts(data)
    md_text = markdown(data, imp, charts)
    for name, png in charts.items():
        outputs.write_file(study / name, png)
    from xnorkit import build

    build.save_json(study / "front.json", {**data, "importance": imp})
    return (outputs.write_file(study / "report.md", md_text),
            outputs.write_file(study / "report.html", report.html_page(md_text, charts)))


def _storage_of(study: Path) -> str | None:
    """The storage URL the study was run with (--storage), kept in STUDY/storage.txt, else the SQLite default."""
    path = Path(study) / "storage.txt"
    return path.read_text().strip() if path.exists() else None
