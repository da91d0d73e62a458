"""Build and run the generated C: on the host with gcc, on the Cortex-M boards QEMU emulates (QEMU_BOARDS)."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import numpy as np

from xnorkit import boards, tools
from xnorkit.errors import XnorkitError
from xnorkit.firmware import emit_c

WARNINGS = ["-Wall", "-Wextra", "-Werror", "-std=c99", "-pedantic"]
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


# the board QEMU runs for each core: Cortex-M0 (no DSP, no popcount), M3, M4 with its FPU, M7, M33, M55 (Helium)
QEMU_BOARDS = {"cortex-m0": "microbit", "cortex-m3": "mps2-an385", "cortex-m4": "mps2-an386",
               "cortex-m7": "mps2-an500", "cortex-m33": "mps2-an505", "cortex-m55": "mps3-an547"}


def arm_flags(board, hard_float: bool | None = None) -> list[str]:
    """arm-none-eabi-gcc's flags for a board's core: the hard-float ABI on its FPU (`hard_float` None: where
    the board has one), else software floating point."""
    cpu = "cortex-m4" if board.cpu == "cortex-m4f" else board.cpu
    hard = board.fpu is not None if hard_float is None else hard_float
    if hard and board.fpu is None:
        raise XnorkitError(f"{board.name} has no FPU (its board file names none): build it with soft floats")
    floats = ["-mfloat-abi=hard", f"-mfpu={board.fpu}"] if hard else ["-mfloat-abi=soft"]
    return [f"-mcpu={cpu}", "-mthumb", *floats, "-O2", "-ffunction-sections", "-fdata-sections"]


# newlib-nano (its stdio and reentrancy data take a few hundred bytes of RAM, not 3 KB) over semihosting, started
# by startup.c rather than newlib's start files (see there)
SPECS = ["--specs=nano.specs", "--specs=rdimon.specs", "-nostartfiles"]
# RAM the batch runners take beside the library on an emulated board (newlib-nano's data and heap, stdio's FILE
# records, the input vector): emit_c.fit(..., reserve_ram=HARNESS_RAM_BYTES) leaves it free on a small part
HARNESS_RAM_BYTES = 3072
M4_FLAGS = arm_flags(boards.load_kind(BOARD, "mcu"))  # the emulated Cortex-M4's, with its FPU


def build_cortex_m(fw_dir: Path, board: str = BOARD, profile: bool = False, integer: bool = False,
                   hard_float: bool | None = None) -> Path:
    """The library and batch runner for an emulated board's core in FW/build/ (its own linker script there);
    `profile`: the instruction-counting runner; `integer`: the runner feeds already-quantized inputs to
    NAME_infer_int; `hard_float` as arm_flags takes it."""
    gcc = tools.require("arm-none-eabi-gcc")
    target = boards.load_kind(board, "mcu")
    work = _build_dir(fw_dir)
    flags, suffix = _int_flags(integer)
    soft = "_soft" if target.fpu is not None and hard_float is False else ""
    name = f"xk_{target.cpu.replace('-', '_')}" + ("_profile" if profile else "") + suffix + soft
    link = work / f"link_{target.name}.ld"
    link.write_text(emit_c.link_script(target))
    sources = _sources(fw_dir, "xk_profile.c" if profile else "xk_runner.c")
    _run([gcc, *arm_flags(target, hard_float), *WARNINGS, *flags, *(["-DXK_PROFILE"] if profile else []),
          *SPECS, "-T", link.name, "-Wl,--gc-sections", "-I..", "../startup.c", *sources, "-lc",
          "-lrdimon", "-lm", "-lgcc", f"-Wl,-Map,{name}.map", "-o", f"{name}.elf"], work,
         f"{target.cpu} C build for {target.name}")
    return work / f"{name}.elf"


def build_cortex_m4(fw_dir: Path, profile: bool = False, integer: bool = False) -> Path:
    """build_cortex_m for the emulated Cortex-M4 (MPS2-AN386)."""
    return build_cortex_m(fw_dir, BOARD, profile, integer)


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


def _qemu(elf: Path, board: str = BOARD, icount: bool = False) -> list[str]:
    qemu = tools.require("qemu-system-arm")
    machine = boards.load_kind(board, "mcu")["qemu_machine"]
    if machine is None:
        raise XnorkitError(f"QEMU does not emulate {board}; run the firmware on one of "
                           f"{', '.join(QEMU_BOARDS.values())}")
    return [qemu, "-M", machine, "-nographic", "-monitor", "none", "-serial", "none",
            "-semihosting-config", "enable=on,target=native", *(["-icount", "shift=0"] if icount else []),
            "-kernel", elf.name]


def run_cortex_m(fw_dir: Path, inputs: np.ndarray, output_size: int, board: str = BOARD, integer: bool = False,
                 hard_float: bool | None = None) -> np.ndarray:
    """An emulated board's outputs, for float inputs or with `integer` already-quantized ones."""
    elf = build_cortex_m(fw_dir, board, integer=integer, hard_float=hard_float)
    return _exchange(elf.parent, inputs.reshape(len(inputs), -1), output_size, _qemu(elf, board),
                     f"{board} run under QEMU", integer)


def run_cortex_m4(fw_dir: Path, inputs: np.ndarray, output_size: int, integer: bool = False) -> np.ndarray:
    """The emulated Cortex-M4's outputs, for float inputs or with `integer` already-quantized ones."""
    return run_cortex_m(fw_dir, inputs, output_size, BOARD, integer)


def profile_cortex_m(fw_dir: Path, inputs: np.ndarray, output_size: int, board: str = BOARD, integer: bool = False,
                     hard_float: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Outputs and instructions per kernel call (N, calls) on an emulated board: QEMU's instruction count
    (-icount shift=0: one instruction per virtual nanosecond) read through SysTick, which ticks at the board's
    clock: exact to one tick (1000 / clock_mhz instructions) per call. `integer`: already-quantized inputs
    through NAME_infer_int."""
    elf = build_cortex_m(fw_dir, board, profile=True, integer=integer, hard_float=hard_float)
    (elf.parent / "profile.bin").unlink(missing_ok=True)
    outputs = _exchange(elf.parent, inputs.reshape(len(inputs), -1), output_size, _qemu(elf, board, icount=True),
                        f"{board} profile run under QEMU", integer)
    ticks = np.fromfile(elf.parent / "profile.bin", dtype="<u4").astype(np.int64).reshape(len(inputs), -1)
    return outputs, ticks * (1000 / boards.load_kind(board, "mcu").clock_mhz)


def profile_cortex_m4(fw_dir: Path, inputs: np.ndarray, output_size: int,
                      integer: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """profile_cortex_m on the emulated Cortex-M4 (MPS2-AN386)."""
    return profile_cortex_m(fw_dir, inputs, output_size, BOARD, integer)


def size(elf: Path) -> dict[str, int]:
    """text/data/bss of an ELF, from arm-none-eabi-size."""
    tool = tools.require("arm-none-eabi-size")
    elf = Path(elf).resolve()
    proc = _run([tool, str(elf)], elf.parent, "arm-none-eabi-size")
    text, data, bss = (int(v) for v in proc.stdout.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}
