"""bench/all.py (the runner that writes bench/results.json) and scripts/bench_docs.py (the docs' tables made
from it): every table of measured figures in README.md and docs/ equals bench/results.json, and every
bench's recorded run met its goal."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_all = _module(ROOT / "bench" / "all.py", "bench_all")
bench_docs = _module(ROOT / "scripts" / "bench_docs.py", "bench_docs")


def test_docs_tables_equal_bench_results():
    """The committed docs carry exactly what bench/results.json gives (run `make docs` after `make bench`)."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_docs.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_every_recorded_run_names_its_bench_commit_and_verdict():
    """Each entry of bench/results.json is a bench that exists, measured on a clean commit, with its verdict as
    the bench gave it. Whether every goal is met is `make bench`'s exit status and shows in the docs (a missed
    goal reads **no**); a bench without an entry shows as not measured (`bench/all.py --stale` runs it)."""
    results = json.loads(bench_all.RESULTS.read_text())
    assert set(results) <= set(bench_all.bench_names())
    for name, entry in results.items():
        assert entry["result"]["bench"] == name
        assert entry["ok"] is (entry["result"]["ok"] is True and entry["returncode"] == 0)
        assert len(entry["commit"]) == 40 and not entry["dirty"], f"{name} was not measured on a commit"
        assert entry["date"][:4].isdigit()


def test_every_doc_table_block_is_known_and_every_table_is_used():
    used = set()
    for path in bench_docs.DOCS:
        used |= {m.group("name") for m in bench_docs.BLOCK.finditer(path.read_text())}
    assert used == set(bench_docs.TABLES)


def test_readme_describes_every_bench():
    readme = (ROOT / "README.md").read_text()
    assert [n for n in bench_all.bench_names() if f"`{n}.py`" not in readme] == []


# --- the generator ---------------------------------------------------------------------------------------

def _entry(result: dict, ok: bool = True) -> dict:
    return {"result": result, "ok": ok, "returncode": 0 if ok else 1, "commit": "a" * 40, "dirty": False,
            "date": "2026-12-06T10:00:00+00:00", "wall_seconds": 12.0}


def test_rewrite_replaces_only_the_block_and_names_the_commit():
    entries = {"hls_cpp": _entry({"bench": "hls_cpp", "runs": [
        {"network": "net", "folding": "slow", "inputs": 450, "agree": 450, "seconds": 0.5}], "ok": True})}
    text = "before\n<!-- bench-table: hls-cpp -->\n| stale | 1 |\n<!-- /bench-table -->\nafter\n"
    out = bench_docs.rewrite(text, entries)
    assert out.startswith("before\n<!-- bench-table: hls-cpp -->\n| network | folding |")
    assert "| net | slow | 450 of 450 | 0.5 s |" in out and "stale" not in out
    assert "`hls_cpp` at aaaaaaaaaa on 2026-12-06 (ok)" in out
    assert out.endswith("<!-- /bench-table -->\nafter\n")
    assert bench_docs.rewrite(out, entries) == out


def test_a_table_without_its_result_says_so_and_an_unknown_table_is_an_error():
    text = "<!-- bench-table: hls-cpp -->\n| old | 1 |\n<!-- /bench-table -->\n"
    assert bench_docs.rewrite(text, {}) == ("<!-- bench-table: hls-cpp -->\nNot measured: bench/results.json has no "
                                            "result for `hls_cpp`; run `make bench BENCH=hls_cpp`.\n"
                                            "<!-- /bench-table -->\n")
    with pytest.raises(bench_docs.UnknownTable, match="no table named 'nope'"):
        bench_docs.rewrite("<!-- bench-table: nope -->\n<!-- /bench-table -->\n", {})


def test_a_failed_goal_shows_in_the_summary():
    entries = {"group_lasso_digits": _entry({"bench": "group_lasso_digits", "neurons_removed": 0.2031,
                                              "accuracy_loss_points": 0.22, "ok": False}, ok=False)}
    row = bench_docs.summary(bench_docs.Results(entries))[2 + bench_all.bench_names().index("group_lasso_digits")]
    assert row == ("| `group_lasso_digits` | 20.3% of neurons removed at 0.22 pt | **no** | aaaaaaaaaa | "
                   "2026-12-06 | 12 |")


def test_the_summary_lists_every_bench_measured_or_not():
    lines = bench_docs.summary(bench_docs.Results({}))
    assert len(lines) == 2 + len(bench_all.bench_names())
    first = bench_all.bench_names()[0]
    assert lines[2] == f"| `{first}` | not measured: `make bench BENCH={first}` |  |  |  |  |"


def test_tables_have_as_many_delimiter_cells_as_header_cells():
    lines = bench_docs.table(["a", "b", "c"], [[1, 2, 3]])
    assert lines[1].count("---") == 3 and lines[2] == "| 1 | 2 | 3 |"


# --- the runner -------------------------------------------------------------------------------------------

def test_closing_line_is_the_last_json_object_naming_the_bench():
    output = '{"bench": "x", "ok": false}\nnoise {\n{"bench": "other", "ok": true}\n{"bench": "x", "ok": true}\n'
    assert bench_all.closing_line(output, "x") == {"bench": "x", "ok": True}
    assert bench_all.closing_line("{not json\n", "x") is None


def test_run_bench_records_result_commit_and_log(tmp_path, monkeypatch):
    (tmp_path / "fake.py").write_text('print("working")\nprint(\'{"bench": "fake", "figure": 3, "ok": true}\')\n')
    (tmp_path / "broken.py").write_text('print(\'{"bench": "broken", "ok": true}\')\nraise SystemExit(1)\n')
    monkeypatch.setattr(bench_all, "BENCH_DIR", tmp_path)
    monkeypatch.setattr(bench_all, "LOGS", tmp_path / "logs")
    entry = bench_all.run_bench("fake", "c" * 40, False)
    assert entry["result"] == {"bench": "fake", "figure": 3, "ok": True} and entry["ok"] is True
    assert entry["commit"] == "c" * 40 and entry["returncode"] == 0 and entry["date"].startswith("20")
    assert (tmp_path / "logs" / "fake.log").read_text().startswith("working\n")
    assert bench_all.run_bench("broken", "c" * 40, False)["ok"] is False  # an exit code other than 0 fails
    assert bench_all.bench_names() == ["broken", "fake"]


def test_save_results_keeps_other_entries_sorted(tmp_path):
    path = tmp_path / "results.json"
    bench_all.save_results({"b": {"ok": True}, "a": {"ok": False}}, path)
    assert list(bench_all.load_results(path)) == ["a", "b"]


def test_unknown_bench_name_is_one_line_and_exit_2():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "all.py"), "no_such_bench"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "no bench named no_such_bench" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_only_code_moves_figures():
    assert bench_all.moves_figures("xnorkit/golden.py") and bench_all.moves_figures("bench/rtl_mnist.py")
    assert not any(map(bench_all.moves_figures, ("docs/numerics.md", "bench/results.json", "bench/all.py")))


@pytest.mark.parametrize(("changed", "dirty"), [("bench/results.json\nREADME.md", False), ("", False),
                                               ("bench/results.json\nxnorkit/ir.py", True)])
def test_only_changed_code_makes_a_run_dirty(monkeypatch, changed, dirty):
    calls = []
    monkeypatch.setattr(bench_all, "git", lambda *args: calls.append(args) or changed)
    assert bench_all.code_is_dirty() is dirty
    assert calls[0][:3] == ("diff", "--name-only", "HEAD")


def test_stale_names_are_the_missing_dirty_and_unknown_entries():
    head = bench_all.git("rev-parse", "HEAD")
    names = bench_all.bench_names()
    results = {name: {"commit": head, "dirty": False} for name in names}
    assert bench_all.stale_names(results) == []
    results[names[0]]["dirty"] = True
    results[names[1]]["commit"] = "f" * 40  # a commit this clone does not have
    del results[names[2]]
    assert bench_all.stale_names(results) == names[:3]


def test_a_broken_results_file_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    broken = tmp_path / "results.json"
    broken.write_text("{broken")
    monkeypatch.setattr(bench_docs, "RESULTS", broken)
    monkeypatch.setattr(bench_all, "RESULTS", broken)
    assert bench_docs.main(["--check"]) == 2
    assert bench_all.main(["--list"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("is not valid JSON" in line for line in err)
