"""Build and run the generated C: on the host with gcc, on a Cortex-M4 (MPS2-AN386) under QEMU."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import numpy as np

from xnorkit import boards, tools
from xnorkit.errors import XnorkitError
from xnorkit.firmware import emit_c

WARNINGS = ["-Wall", "-Wextra", "-Werror", "-std=c99", "-pedantic"]
M4_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft", "-O2", "-ffunction-sections", "-fdata-sections"]
BOARD = "mps2-an386"  # the emulated Cortex-M4 board (boards/mps2_an386.yaml)


def _sources(fw_dir: Path, runner: str = "xk_runner.c") -> list[str]:
    """The library (NAME.c, the kernels included) and a batch runner, as paths from the build folder."""
    return [f"../{emit_c.library_name(fw_dir)}.c", f"../{runner}"]


def _build_dir(fw_dir: Path) -> Path:
    """FW/build/: executables, maps and the data files they read and write, apart from the library's files."""
    work = Path(fw_dir).resolve() / emit_c.BUILD
    work.mkdir(exist_ok=True)
    return work


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


def _int_flags(integer: bool) -> tuple[list[str], str]:
    """The runner's flag and the executable's suffix for the integer API (NAME_infer_int)."""
    return (["-DXK_INT_INPUT"], "_int") if integer else ([], "")


def build_host(fw_dir: Path, path: str = "popcnt64", integer: bool = False) -> Path:
    """The library and batch runner for this machine, with one of the kernel paths of HOST_PATHS, in FW/build/;
    `integer`: the runner feeds already-quantized inputs to NAME_infer_int."""
    gcc = tools.require("gcc")
    work = _build_dir(fw_dir)
    flags, suffix = _int_flags(integer)
    exe = work / f"xk_host_{path}{suffix}"
    _run([gcc, "-O2", *HOST_PATHS[path], *flags, *WARNINGS, "-I..", *_sources(fw_dir), "-lm", "-o", exe.name], work,
         "host C build")
    return exe


def build_cortex_m4(fw_dir: Path, profile: bool = False, integer: bool = False) -> Path:
    """The library and batch runner for the emulated Cortex-M4 in FW/build/; `profile`: the instruction-counting
    runner; `integer`: the runner feeds already-quantized inputs to NAME_infer_int."""
    gcc = tools.require("arm-none-eabi-gcc")
    work = _build_dir(fw_dir)
    flags, suffix = _int_flags(integer)
    name = ("xk_cortex_m4_profile" if profile else "xk_cortex_m4") + suffix
    sources = _sources(fw_dir, "xk_profile.c" if profile else "xk_runner.c")
    _run([gcc, *M4_FLAGS, *WARNINGS, *flags, *(["-DXK_PROFILE"] if profile else []), "--specs=rdimon.specs", "-T",
          "../link.ld", "-Wl,--gc-sections", "-I..", "../startup.c", *sources, "-lc", "-lrdimon", "-lm", "-lgcc",
          f"-Wl,-Map,{name}.map", "-o", f"{name}.elf"], work, "Cortex-M4 C build")
    return work / f"{name}.elf"


def _exchange(fw_dir: Path, inputs: np.ndarray, output_size: int, command: list[str], what: str,
              integer: bool = False) -> np.ndarray:
    fw_dir = Path(fw_dir).resolve()
    (fw_dir / "outputs.bin").unlink(missing_ok=True)
    np.ascontiguousarray(inputs, dtype="<i4" if integer else "<f4").tofile(fw_dir / "inputs.bin")
    proc = _run(command, fw_dir, what)
    raw = np.fromfile(fw_dir / "outputs.bin", dtype="<i4") if (fw_dir / "outputs.bin").exists() else np.zeros(0)
    if raw.size != len(inputs) * output_size:
        raise XnorkitError(f"{what} wrote {raw.size} values, expected {len(inputs) * output_size}: "
                           f"{proc.stdout.strip()[-200:]}")
    return raw.reshape(len(inputs), output_size).astype(np.int64)


def run_host(fw_dir: Path, inputs: np.ndarray, output_size: int, path: str = "popcnt64",
             integer: bool = False) -> np.ndarray:
    """The host build's outputs for float `inputs`, or with `integer` for already-quantized ones (NAME_infer_int)."""
    exe = build_host(fw_dir, path, integer)
    return _exchange(exe.parent, inputs.reshape(len(inputs), -1), output_size, [str(exe)], "host C run", integer)


def _qemu(elf: Path, icount: bool = False) -> list[str]:
    qemu = tools.require("qemu-system-arm")
    machine = boards.load_kind(BOARD, "mcu")["qemu_machine"]
    return [qemu, "-M", machine, "-nographic", "-monitor", "none", "-serial", "none",
            "-semihosting-config", "enable=on,target=native", *(["-icount", "shift=0"] if icount else []),
            "-kernel", elf.name]


def run_cortex_m4(fw_dir: Path, inputs: np.ndarray, output_size: int, integer: bool = False) -> np.ndarray:
    """The emulated Cortex-M4's outputs, for float inputs or with `integer` already-quantized ones."""
    elf = build_cortex_m4(fw_dir, integer=integer)
    return _exchange(elf.parent, inputs.reshape(len(inputs), -1), output_size, _qemu(elf),
                     "Cortex-M4 run under QEMU", integer)


def profile_cortex_m4(fw_dir: Path, inputs: np.ndarray, output_size: int,
                      integer: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Outputs and instructions per kernel call (N, calls) on the emulated Cortex-M4: QEMU's instruction
    count (-icount shift=0: one instruction per virtual nanosecond) read through the board's timer, which
    ticks at its system clock: exact to one tick (1000 / clock_mhz instructions) per call. `integer`:
    already-quantized inputs through NAME_infer_int."""
    elf = build_cortex_m4(fw_dir, profile=True, integer=integer)
    (elf.parent / "profile.bin").unlink(missing_ok=True)
    outputs = _exchange(elf.parent, inputs.reshape(len(inputs), -1), output_size, _qemu(elf, icount=True),
                        "Cortex-M4 profile run under QEMU", integer)
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
