"""Board definitions: one YAML file per board beside this module, or a user's own file given with
`--board-file PATH`, validated by `McuBoard` or `FpgaBoard` (chosen by `kind`; an unknown key or an impossible
value is a one-line error naming the file and the key)."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from xnorkit.errors import XnorkitError
from xnorkit.yamlfile import load_plain

CPUS = ("cortex-m0", "cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m4f", "cortex-m7", "cortex-m33", "cortex-m55")
FPUS = ("fpv4-sp-d16", "fpv5-sp-d16", "fpv5-d16", "auto")  # arm-none-eabi-gcc's -mfpu names (auto: the core's)
# FPGA families: the Yosys synthesis command, nextpnr (open place and route) where there is one, and the
# block RAM's shapes (width, depth) and LUT inputs the resource model needs
FAMILIES = ("ice40", "ecp5", "xc7", "xcup")


MAX_BOARD_FILE_BYTES = 64 << 10
SAFE_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # a board's name becomes a folder name (BUILD/synth/NAME)


class _Board(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=SAFE_NAME)
    description: str = Field(max_length=500)
    part: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    clock_mhz: float = Field(gt=0)

    def __getitem__(self, key: str):  # dict-style access for callers that read one field
        return getattr(self, key)


class McuBoard(_Board):
    """A microcontroller board: what the firmware generator needs to know to say whether a network fits."""

    kind: Literal["mcu"]
    cpu: Literal[CPUS]
    flash_bytes: int = Field(gt=0)
    ram_bytes: int = Field(gt=0)
    qemu_machine: str | None = None  # boards QEMU emulates: the firmware runs there in the tests
    fpu: Literal[FPUS] | None = None  # a hardware FPU: the float input step is built for it (hard-float ABI)
    # where the program goes (firmware/cortex_m4/link.ld.j2): flash at flash_origin; RAM at ram_origin, or with
    # no ram_origin in the same memory as the code (an MPS2 board's SSRAM)
    flash_origin: int = Field(0, ge=0, lt=2**32)
    ram_origin: int | None = Field(None, ge=0, lt=2**32)


class FpgaBoard(_Board):
    """An FPGA board: the part's resources (the folding solver's budget), its clock (the timing constraint)
    and how it is built: `open` runs Yosys and nextpnr to a placed and routed design, `yosys` synthesizes
    with Yosys for the resource counts and leaves place and route to the vendor project that
    `xnorkit synth` writes (`vivado`)."""

    kind: Literal["fpga"]
    family: Literal[FAMILIES]
    # nextpnr's --package for open flows; the vendor tool's part already names it
    package: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    lut: int = Field(gt=0)  # LUT4 on iCE40 and ECP5, LUT6 on Xilinx parts
    ff: int = Field(gt=0)
    bram: int = Field(ge=0)  # block RAMs: iCE40 EBR (4 Kbit), ECP5 DP16KD (18 Kbit), Xilinx RAMB18 (18 Kbit)
    dsp: int = Field(ge=0)
    toolchain: Literal["open", "vivado"]
    processor: Literal["none", "zynq7", "zynqmp"] = "none"  # a Zynq's ARM cores: DMA block design, PYNQ driver
    utilization_limit: float = Field(0.8, gt=0, le=1)  # the share of LUTs and BRAMs the solver may plan to use
    # the vendor board files' name (vendor:board:part0:version), set in the Vivado project where they are installed
    board_part: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+:part0:[0-9.]+$")


Board = McuBoard | FpgaBoard
_ADAPTER = TypeAdapter(Annotated[Board, Field(discriminator="kind")])


def names(kind: str | None = None) -> list[str]:
    files = resources.files("xnorkit.boards").iterdir()
    found = sorted(p.name.removesuffix(".yaml").replace("_", "-") for p in files if p.name.endswith(".yaml"))
    return [n for n in found if kind is None or load(n).kind == kind]


def load(name: str) -> Board:
    """A known board by name (only the files beside this module: a name is never a path)."""
    path = resources.files("xnorkit.boards").joinpath(name.replace("-", "_") + ".yaml")
    if not re.fullmatch(SAFE_NAME, name) or not path.is_file():
        raise XnorkitError(f"unknown board {name[:64]!r}; known boards: {', '.join(names())} (or give your own "
                           "with --board-file PATH)")
    return _validate(load_plain(Path(str(path)), "board file", MAX_BOARD_FILE_BYTES), path.name)


def load_file(path: str | Path) -> Board:
    """A user's own board file (`--board-file PATH`), held to the same schema. Its `name` only ever names the
    folder BUILD/synth/NAME, so it must be a safe name and not one of the built-in boards."""
    board = _validate(load_plain(path, "board file", MAX_BOARD_FILE_BYTES), Path(path).name)
    if board.name in names():
        raise XnorkitError(f"board file {Path(path).name}: name '{board.name}' is a built-in board; give your "
                           "board a name of its own")
    return board


def choose(name: str | None, file: str | Path | None, kind: str, default: str | None = None) -> Board | None:
    """The board a command was given: `--board NAME` (a built-in one) or `--board-file PATH`, not both; else
    `default` (a name), else None."""
    if name is not None and file is not None:
        raise XnorkitError("give --board NAME or --board-file PATH, not both")
    if file is not None:
        return load_kind(load_file(file), kind)
    name = name if name is not None else default
    return None if name is None else load_kind(name, kind)


def _validate(data: object, filename: str) -> Board:
    if not isinstance(data, dict):
        raise XnorkitError(f"board file {filename[:100]} is not a YAML mapping of keys to values")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"] if p not in ("mcu", "fpga")) or "(top level)"
        raise XnorkitError(f"board file {filename[:100]}: {key[:80]}: {err['msg'][:200]}") from None


def load_kind(board: str | Board, kind: str) -> Board:
    """The board (a built-in one by name, or one already loaded), refusing a board of the other kind with the
    boards that would do."""
    board = load(board) if isinstance(board, str) else board
    if board.kind != kind:
        what = "microcontroller" if kind == "mcu" else "FPGA"
        article = "a" if kind == "mcu" else "an"
        raise XnorkitError(f"board '{board.name}' is not {article} {what} board; {what} boards: "
                           f"{', '.join(names(kind))}")
    return board
