"""Runs every benchmark, or the named ones, and records in bench/results.json, per bench, its closing JSON
line, the commit it ran on and the date. The tables of measured figures in README.md and docs/ are made
from that file (scripts/bench_docs.py, `make docs`), so no figure outlives the code it describes.

    python bench/all.py                      # every bench, one after the other
    python bench/all.py rtl_mnist golden_lfc # a subset; the other entries of results.json are kept
    python bench/all.py --stale              # the benches whose code changed since their recorded run
    python bench/all.py --list

The benches run one at a time (several of them time themselves on this machine's two cores). Each one's
whole output goes to the console and to out/bench/NAME.log. Exit code: 0 when every bench that ran ended
with ok true, 1 otherwise, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results.json"
LOGS = ROOT / "out" / "bench"
# what a bench's figures can depend on: a change here since its recorded commit makes the entry stale
CODE_PATHS = ("xnorkit", "quant_train", "hw", "sim", "firmware", "boards", "bench", "pyproject.toml")
# files whose changes move no figure (the record and this runner): they make no entry dirty or stale
NOT_CODE = ("bench/results.json", "bench/all.py")


def bench_names() -> list[str]:
    """Every bench: bench/NAME.py except helpers (a leading underscore) and this runner."""
    return sorted(p.stem for p in BENCH_DIR.glob("*.py") if not p.stem.startswith("_") and p.stem != "all")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def moves_figures(path: str) -> bool:
    """Whether a change to this repository path can move a bench's figures (Markdown and NOT_CODE cannot)."""
    return path not in NOT_CODE and not path.endswith(".md")


def code_is_dirty() -> bool:
    """Whether tracked code differs from HEAD (Markdown and results.json excepted): a figure measured then
    describes no commit."""
    # names only: `git status --porcelain` lines lose their leading blank to git()'s strip, which once cut
    # " M bench/results.json" to "ench/results.json" and marked clean runs dirty
    changed = git("diff", "--name-only", "HEAD", "--", *CODE_PATHS).splitlines()
    return any(moves_figures(path) for path in changed)


def load_results(path: Path | None = None) -> dict[str, dict]:
    path = path or RESULTS
    return json.loads(path.read_text()) if path.exists() else {}


def save_results(results: dict[str, dict], path: Path | None = None) -> None:
    """Write atomically: an interrupted run leaves the previous file whole."""
    path = path or RESULTS
    text = json.dumps(dict(sorted(results.items())), indent=2) + "\n"
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


def closing_line(output: str, name: str) -> dict | None:
    """The bench's closing JSON line: the last line that parses as an object naming this bench."""
    for line in reversed(output.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                parsed = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(parsed, dict) and parsed.get("bench") == name:
                return parsed
    return None


def run_bench(name: str, commit: str, dirty: bool) -> dict:
    """Run bench/NAME.py, echoing its output and saving it to out/bench/NAME.log; return its entry."""
    LOGS.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    lines = []
    with subprocess.Popen([sys.executable, str(BENCH_DIR / f"{name}.py")], cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc, \
            open(LOGS / f"{name}.log", "w") as log:
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
            lines.append(line)
    result = closing_line("".join(lines), name)
    return {"result": result, "ok": bool(result and result.get("ok") is True and proc.returncode == 0),
            "returncode": proc.returncode, "commit": commit, "dirty": dirty,
            "date": started.isoformat(timespec="seconds"), "wall_seconds": round(time.perf_counter() - t0, 1)}


def stale_names(results: dict[str, dict]) -> list[str]:
    """The benches never run, or whose code changed since the commit their entry was measured on."""
    stale = []
    for name in bench_names():
        entry = results.get(name)
        if entry is None or entry.get("dirty"):
            stale.append(name)
            continue
        try:
            changed = git("diff", "--name-only", entry["commit"], "HEAD", "--", *CODE_PATHS).splitlines()
        except subprocess.CalledProcessError:  # a commit this clone does not have
            stale.append(name)
            continue
        if any(moves_figures(path) for path in changed):
            stale.append(name)
    return stale


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help="benches to run (default: all)")
    parser.add_argument("--stale", action="store_true", help="run the benches whose code changed since their run")
    parser.add_argument("--list", action="store_true", help="list the benches and their recorded state")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(bench_names()))
    if unknown:
        parser.exit(2, f"bench/all.py: no bench named {', '.join(unknown)}; the benches are: "
                       f"{', '.join(bench_names())}\n")
    return args


def print_list(results: dict[str, dict]) -> None:
    stale = set(stale_names(results))
    for name in bench_names():
        entry = results.get(name)
        state = "never run" if entry is None else (
            f"{'ok' if entry['ok'] else 'FAILED'} at {entry['commit'][:10]} on {entry['date'][:10]}"
            f"{' (stale)' if name in stale else ''}")
        print(f"{name:30s} {state}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        results = load_results()
    except json.JSONDecodeError as err:
        print(f"bench/all.py: {RESULTS} is not valid JSON ({err}); restore it with git or delete it",
              file=sys.stderr)
        return 2
    if args.list:
        print_list(results)
        return 0
    names = args.names or (stale_names(results) if args.stale else bench_names())
    try:
        commit, dirty = git("rev-parse", "HEAD"), code_is_dirty()
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: the figures describe no commit
        commit, dirty = "unknown", True
    if dirty:
        print("bench/all.py: the code differs from HEAD; entries are marked dirty until re-run on a commit",
              file=sys.stderr)
    for name in names:
        print(f"=== bench/{name}.py", flush=True)
        results[name] = run_bench(name, commit, dirty)
        save_results(results)  # after each bench: an interrupted run keeps what finished
        print(f"=== {name}: {'ok' if results[name]['ok'] else 'FAILED'} in {results[name]['wall_seconds']} s",
              flush=True)
    failed = [name for name in names if not results[name]["ok"]]
    print(f"{len(names) - len(failed)} of {len(names)} benches ok" + (f"; failed: {', '.join(failed)}" if failed
                                                                      else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
