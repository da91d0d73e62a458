"""Vendor project files for Xilinx boards, generated beside the Yosys run (`xnorkit synth` on a board whose
toolchain is `vivado`) from the templates in hw/vendor/, checked for syntax here, run by the user where
Vivado is installed:

- `create_project.tcl`: the project at the board's part, the sources and weight files, the clock constraint
  (`constraints.xdc`), the network as top for a plain implementation run;
- on Zynq boards (`processor: zynq7 | zynqmp`) additionally a block design: the processing system, an AXI
  DMA (64-bit streams) and the network in `xnorkit_shell` with BUS_BYTES = 8 between the DMA's streams, the
  PL clock at the board's clock, a bitstream and the hardware handoff (.hwh) for PYNQ;
- `xnorkit_pynq.py`: a PYNQ driver that packs integer inputs into the shell's 64-bit words exactly as
  docs/numerics.md says, runs the DMA and unpacks the outputs.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from xnorkit import naming, tools
from xnorkit.boards import FpgaBoard
from xnorkit.hw import emit_sv, popcount_x7

DMA_BYTES = 8  # the AXI DMA's stream width on the Zynq HP ports used here
WRAPPER = "xnorkit_axis"  # the Verilog module a block design references, with the design's name (emit_sv.named)


def _words(bits: int) -> int:
    return -(-bits // (8 * DMA_BYTES))


# what differs between the Zynq-7000 and Zynq UltraScale+ block designs: the PS IP, its PL clock and high-performance
# port settings, the PS master that reaches the DMA's registers and the slave port the DMA writes through
_PROCESSORS = {
    "zynq7": dict(ip="processing_system7", clock="PCW_FPGA0_PERIPHERAL_FREQMHZ", hp_enable="PCW_USE_S_AXI_HP0",
                  master="M_AXI_GP0", slave="S_AXI_HP0"),
    "zynqmp": dict(ip="zynq_ultra_ps_e", clock="PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ", hp_enable="PSU__USE__S_AXI_GP2",
                   master="M_AXI_HPM0_FPD", slave="S_AXI_HP0_FPD"),
}


def _render(template: str, **context) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    return env.from_string(tools.package_text("xnorkit.hw", "vendor", template)).render(context)


def project_tcl(design: dict, board: FpgaBoard, sources: list[str], mems: list[str]) -> str:
    """create_project.tcl (hw/vendor/create_project.tcl.j2): a plain implementation run, or on a Zynq the block
    design around the byte-wide shell."""
    return _render("create_project.tcl.j2", board=board, sources=sources, mems=mems, top=design["top"],
                   xilinx_primitives=board.family in popcount_x7.FAMILIES, ps=_PROCESSORS.get(board.processor),
                   mhz=f"{board.clock_mhz:g}", bus_bits=8 * DMA_BYTES, wrapper=wrapper_name(design),
                   writable="writable" in design)


def wrapper_name(design: dict) -> str:
    return emit_sv.named(WRAPPER, design.get("name", naming.DEFAULT))


def axis_wrapper(design: dict) -> str:
    """NAME_axis.v (hw/vendor/xnorkit_axis.v.j2): the shell at the DMA's width with design.json's parameters, in
    Verilog with the interface attributes Vivado infers the AXI4-Stream, clock and reset interfaces from."""
    shell = design["shell"]
    return _render("xnorkit_axis.v.j2", module=wrapper_name(design), shell=shell["top"], bus_bytes=DMA_BYTES,
                   in_w=shell["parameters"]["IN_W"], out_w=shell["parameters"]["OUT_W"],
                   out_beats=shell["parameters"]["OUT_BEATS"],
                   axil_addr_w=(design.get("writable") or {}).get("addr_bits", 0))


def constraints(design: dict, board: FpgaBoard) -> str:
    period = 1000.0 / board.clock_mhz
    if board.processor != "none":  # the PS drives the PL clock; Vivado derives the constraint from it
        return f"# PL clock {board.clock_mhz:g} MHz ({period:.3f} ns) comes from the processing system\n"
    return f"create_clock -period {period:.3f} -name clk [get_ports clk]\n"


def pynq_driver(design: dict) -> str:
    """xnorkit_pynq.py (hw/vendor/xnorkit_pynq.py.j2): runs on the board without xnorkit, so it carries its own
    packing and stream order; tests/test_synth.py holds them to xnorkit.packing and xnorkit.layout."""
    info_in, info_out = design["input"], design["output"]
    writable = design.get("writable")
    return _render("xnorkit_pynq.py.j2", input=info_in, output=info_out, input_repr=repr(info_in),
                   output_repr=repr(info_out), bus_bytes=DMA_BYTES,
                   writable=writable, writable_id=f"0x{writable['id']:08X}" if writable else "",
                   in_words=_words(info_in["elems_per_beat"] * info_in["elem_bits"]),
                   out_words=_words(info_out["elems_per_beat"] * info_out["elem_bits"]))


def write_project(rtl: Path, work: Path, design: dict, board: FpgaBoard) -> Path:
    """WORK/vivado/: the sources and weight files of RTL, the project script, constraints and driver."""
    import shutil

    out = work / "vivado"
    out.mkdir(exist_ok=True)
    sources = design["shell"]["sources"] if board.processor != "none" else design["sources"]
    mems = sorted(p.name for p in rtl.glob("*.mem"))
    for name in [*sources, *mems]:
        shutil.copy(rtl / name, out / name)
    if board.processor != "none":
        (out / f"{wrapper_name(design)}.v").write_text(axis_wrapper(design))
        sources = [*sources, f"{wrapper_name(design)}.v"]
    (out / "create_project.tcl").write_text(project_tcl(design, board, sources, mems))
    (out / "constraints.xdc").write_text(constraints(design, board))
    if board.processor != "none":
        (out / "xnorkit_pynq.py").write_text(pynq_driver(design))
    return out
