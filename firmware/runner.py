"""Build and run the generated C: on the host with gcc, on a Cortex-M4 (MPS2-AN386) under QEMU."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import numpy as np

from xnorkit import boards, tools
from xnorkit.errors import XnorkitError

WARNINGS = ["-Wall", "-Wextra", "-Werror", "-std=c99", "-pedantic"]
SOURCES = ["xk_model.c", "xk_kernels.c", "xk_runner.c"]
M4_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft", "-O2", "-ffunction-sections", "-fdata-sections"]
BOARD = "mps2-an386"  # the emulated Cortex-M4 board (boards/mps2_an386.yaml)


def _run(cmd: list[str], cwd: Path, what: str, timeout: float = 600) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise XnorkitError(f"{what} timed out after {timeout:.0f} s in {cwd}") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise XnorkitError(f"{what} failed (exit {proc.returncode}): {detail[0] if detail else 'no output'}")
    return proc


# the host's kernel paths (firmware/lib/xk_kernels.h): the portable reference, and what this ISA has
HOST_PATHS = {"reference": ["-DXK_PORTABLE"], "harley-seal": [],
              "popcnt64": ["-mpopcnt"] if platform.machine() in ("x86_64", "AMD64") else []}


def build_host(fw_dir: Path, path: str = "popcnt64") -> Path:
    """The library and batch runner for this machine, with one of the kernel paths of HOST_PATHS."""
    fw_dir = Path(fw_dir).resolve()
    gcc = tools.require("gcc")
    exe = fw_dir / f"xk_host_{path}"
    _run([gcc, "-O2", *HOST_PATHS[path], *WARNINGS, *SOURCES, "-lm", "-o", exe.name], fw_dir, "host C build")
    return exe


def build_cortex_m4(fw_dir: Path, profile: bool = False) -> Path:
    """The library and batch runner for the emulated Cortex-M4; `profile`: the instruction-counting runner."""
    fw_dir = Path(fw_dir).resolve()
    gcc = tools.require("arm-none-eabi-gcc")
    name = "xk_cortex_m4_profile" if profile else "xk_cortex_m4"
    sources = [*SOURCES[:-1], "xk_profile.c"] if profile else SOURCES
    _run([gcc, *M4_FLAGS, *WARNINGS, *(["-DXK_PROFILE"] if profile else []), "--specs=rdimon.specs", "-T",
          "link.ld", "-Wl,--gc-sections", "startup.c", *sources, "-lc", "-lrdimon", "-lm", "-lgcc",
          f"-Wl,-Map,{name}.map", "-o", f"{name}.elf"], fw_dir, "Cortex-M4 C build")
    return fw_dir / f"{name}.elf"


def _exchange(fw_dir: Path, inputs: np.ndarray, output_size: int, command: list[str], what: str) -> np.ndarray:
    fw_dir = Path(fw_dir).resolve()
    (fw_dir / "outputs.bin").unlink(missing_ok=True)
    np.ascontiguousarray(inputs, dtype="<f4").tofile(fw_dir / "inputs.bin")
    proc = _run(command, fw_dir, what)
    raw = np.fromfile(fw_dir / "outputs.bin", dtype="<i4") if (fw_dir / "outputs.bin").exists() else np.zeros(0)
    if raw.size != len(inputs) * output_size:
        raise XnorkitError(f"{what} wrote {raw.size} values, expected {len(inputs) * output_size}: "
                           f"{proc.stdout.strip()[-200:]}")
    return raw.reshape(len(inputs), output_size).astype(np.int64)


def run_host(fw_dir: Path, inputs: np.ndarray, output_size: int, path: str = "popcnt64") -> np.ndarray:
    exe = build_host(fw_dir, path)
    return _exchange(exe.parent, inputs.reshape(len(inputs), -1), output_size, [str(exe)], "host C run")


def _qemu(elf: Path, icount: bool = False) -> list[str]:
    qemu = tools.require("qemu-system-arm")
    machine = boards.load_kind(BOARD, "mcu")["qemu_machine"]
    return [qemu, "-M", machine, "-nographic", "-monitor", "none", "-serial", "none",
            "-semihosting-config", "enable=on,target=native", *(["-icount", "shift=0"] if icount else []),
            "-kernel", elf.name]


def run_cortex_m4(fw_dir: Path, inputs: np.ndarray, output_size: int) -> np.ndarray:
    elf = build_cortex_m4(fw_dir)
    return _exchange(elf.parent, inputs.reshape(len(inputs), -1), output_size, _qemu(elf),
                     "Cortex-M4 run under QEMU")


def profile_cortex_m4(fw_dir: Path, inputs: np.ndarray, output_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Outputs and instructions per kernel call (N, calls) on the emulated Cortex-M4: QEMU's instruction
    count (-icount shift=0: one instruction per virtual nanosecond) read through the board's timer, which
    ticks at its system clock: exact to one tick (1000 / clock_mhz instructions) per call."""
    elf = build_cortex_m4(fw_dir, profile=True)
    (elf.parent / "profile.bin").unlink(missing_ok=True)
    outputs = _exchange(elf.parent, inputs.reshape(len(inputs), -1), output_size, _qemu(elf, icount=True),
                        "Cortex-M4 profile run under QEMU")
    ticks = np.fromfile(elf.parent / "profile.bin", dtype="<u4").astype(np.int64).reshape(len(inputs), -1)
    per_tick = 1000 / boards.load_kind(BOARD, "mcu").clock_mhz
    return outputs, ticks * per_tick


def size(elf: Path) -> dict[str, int]:
    """text/data/bss of an ELF, from arm-none-eabi-size."""
    tool = tools.require("arm-none-eabi-size")
    elf = Path(elf).resolve()
    proc = _run([tool, str(elf)], elf.parent, "arm-none-eabi-size")
    text, data, bss = (int(v) for v in proc.stdout.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}
