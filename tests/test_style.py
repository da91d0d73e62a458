import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is part of the dev install"
    proc = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


CORE = ("errors", "inttype", "ir", "numerics", "packing", "layout", "frontend", "golden", "passes")
# the core may read ONNX (and qonnx's cleanup), never a backend, the trainer, the driver or a simulator
FORBIDDEN = ("xnorkit.hw", "xnorkit.firmware", "xnorkit.sim", "xnorkit.boards", "xnorkit.quant_train", "torch",
             "brevitas", "cocotb", "typer", "xnorkit.cli", "xnorkit.build", "xnorkit.flow", "xnorkit.report",
             "xnorkit.analysis")


def _imports(path: Path) -> set[str]:
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):  # every import, also those inside functions
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_the_compiler_core_imports_no_backend():
    """Imports run one way: the core (IR, numerics, packing, frontend, golden, passes) knows no backend."""
    for name in CORE:
        bad = sorted(m for m in _imports(ROOT / "xnorkit" / f"{name}.py")
                     if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
        assert not bad, f"xnorkit/{name}.py imports {bad}"
    proc = subprocess.run([sys.executable, "-c", "import sys; import xnorkit.frontend, xnorkit.golden, "
                           "xnorkit.passes, xnorkit.packing; print(' '.join(sorted(sys.modules)))"],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    loaded = proc.stdout.split()
    assert not [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]


def test_the_documented_ir_format_is_the_codes():
    import re

    from xnorkit import ir

    documented = re.search(r"`format_version` is (\d+)", (ROOT / "docs" / "ir.md").read_text())
    assert documented and int(documented[1]) == ir.FORMAT_VERSION
    numerics_doc = (ROOT / "docs" / "numerics.md").read_text()
    assert not re.search(r"format_version`, now \d", numerics_doc), "docs/numerics.md names a version of its own"
