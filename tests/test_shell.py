"""The AXI4-Stream shell (hw/rtl/xnorkit_shell.sv.j2) as a DMA sees it: packets ended by TLAST with TKEEP on the last
word, under cocotbext-axi with random backpressure (sim/tb_shell.py), and the PYNQ driver and Verilog wrapper
that `xnorkit hw --board pynq-z2 --vendor-project` writes, the driver run against a model of the AXI DMA."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

from tests.conftest import random_graph, require_tool, run_cli
from xnorkit import build, golden, ir, layout, packing
from xnorkit.sim import runner


@pytest.fixture(scope="module")
def shell_build(tmp_path_factory):
    """A fully parallel MLP: one inference per cycle, so backpressure, not the network, sets the pace."""
    out = tmp_path_factory.mktemp("shell")
    graph = random_graph([16, 32, 10], seed=0)
    ir.save(graph, out)
    build.generate_hw(out, target_cycles=1)
    return out, graph


def _expected_packets(design: dict, outputs: np.ndarray, bus_bytes: int) -> list[bytes]:
    info = design["output"]
    beats = packing.stream_bytes(layout.stream_order(outputs, info), info["elems_per_beat"], info["elem_bits"])
    return [bytes(p) for p in packing.bus_packets(beats, bus_bytes)]


def _check_packets(shell_build, count: int, bus_bytes: int) -> None:
    require_tool("verilator")
    out, graph = shell_build
    design = json.loads((out / "rtl" / "design.json").read_text())
    x = golden.random_int_inputs(graph, count, seed=3)
    packets, extra = runner.simulate_shell(out / "rtl", x, bus_bytes=bus_bytes, stall_in=0.3, stall_out=0.3,
                                           seed=5)
    expected = _expected_packets(design, golden.predict_from_int(graph, x), bus_bytes)
    assert len(packets) == count and extra == 0  # none lost, merged or split
    wrong = [i for i, (got, want) in enumerate(zip(packets, expected, strict=True)) if got != want]
    assert not wrong, f"packet {wrong[0]}: {packets[wrong[0]].hex()} != {expected[wrong[0]].hex()}"


def test_every_inference_is_one_packet_under_random_backpressure(shell_build):
    """10,000 inferences through the 64-bit shell (a 9-byte result: a full word and a last word with one byte
    kept), inputs in frames of 1 to 4 inferences, 30% pauses on both sides: one packet per inference, in order,
    each byte golden's."""
    _check_packets(shell_build, 10_000, 8)


@pytest.mark.slow
def test_byte_wide_shell_packets(shell_build):
    """The iCE40 width: nine one-byte words per packet."""
    _check_packets(shell_build, 300, 1)


class _AxiDmaModel:
    """Xilinx AXI DMA in simple (register) mode as PYNQ drives it, around a model of the shell: MM2S sends a
    buffer's bytes; the shell answers each input with one packet (the bytes TKEEP marks, ended by TLAST,
    packing.bus_packets of golden's outputs); an S2MM transfer writes one packet and ends at its TLAST, and a
    packet longer than the transfer is the DMA's internal error."""

    def __init__(self, graph, design: dict, bus_bytes: int) -> None:
        self.graph, self.design, self.bus_bytes = graph, design, bus_bytes
        self.packets: list[bytes] = []
        self.recv_transfers = 0
        dma = self

        class Send:
            def transfer(self, buffer) -> None:
                dma.packets.extend(dma._shell(np.asarray(buffer)))

            def wait(self) -> None:
                pass

        class Recv:
            def transfer(self, buffer, start: int = 0, nbytes: int = 0) -> None:
                nbytes = nbytes or buffer.nbytes - start
                packet = dma.packets.pop(0)
                if len(packet) > nbytes:
                    raise RuntimeError("DMA S2MM internal error: a packet longer than the transfer")
                buffer[start:start + len(packet)] = np.frombuffer(packet, np.uint8)
                dma.recv_transfers += 1

            def wait(self) -> None:
                pass

        self.sendchannel, self.recvchannel = Send(), Recv()

    def _shell(self, sent: np.ndarray) -> list[bytes]:
        info = self.design["input"]
        beat_bytes = -(-info["elems_per_beat"] * info["elem_bits"] // 8)
        words = -(-beat_bytes // self.bus_bytes) * self.bus_bytes
        beats = sent.reshape(-1, info["beats"], words)[..., :beat_bytes]
        x = packing.unstream_bytes(beats, info["elems_per_beat"], info["elem_bits"], False)
        outputs = golden.predict_from_int(self.graph, layout.ir_order(x, info))
        return _expected_packets(self.design, outputs, self.bus_bytes)


def test_pynq_driver_runs_against_the_dma_model(shell_build, capsys):
    """`xnorkit hw --board pynq-z2 --vendor-project` writes the project without synthesis; its driver, run with
    a stand-in pynq whose DMA is the model above, gets golden's outputs, one S2MM transfer per inference; the
    Verilog wrapper is lint-clean around the shell."""
    import subprocess

    from xnorkit import tools

    out, graph = shell_build
    code, stdout, _ = run_cli(capsys, "hw", str(out), "--board", "pynq-z2", "--vendor-project")
    assert code == 0, stdout
    project = out / "synth" / "pynq-z2" / "vivado"
    assert not (out / "synth" / "pynq-z2" / "utilization.json").exists()  # no synthesis ran
    tcl = (project / "create_project.tcl").read_text()
    assert "-reference xnorkit_axis" in tcl and "tul.com.tw:pynq-z2:part0" in tcl
    design = json.loads((out / "rtl" / "design.json").read_text())
    x = golden.random_int_inputs(graph, 40, seed=2)
    dma = _AxiDmaModel(graph, design, 8)
    pynq = types.SimpleNamespace(Overlay=lambda bitfile: types.SimpleNamespace(dma=dma),
                                 allocate=lambda shape, dtype: np.zeros(shape, dtype))
    saved = sys.modules.get("pynq")
    sys.modules["pynq"] = pynq
    try:
        driver: dict = {}
        exec((project / "xnorkit_pynq.py").read_text(), driver)
        got = driver["XnorkitAccelerator"]().run(x)
    finally:
        sys.modules.pop("pynq")
        if saved is not None:
            sys.modules["pynq"] = saved
    assert np.array_equal(got, golden.predict_from_int(graph, x)) and dma.recv_transfers == 40
    require_tool("verilator")
    sources = [*design["shell"]["sources"], "xnorkit_axis.v"]
    proc = subprocess.run([tools.require("verilator"), "--lint-only", "-Wall", "--top-module", "xnorkit_axis",
                           *sources], cwd=project, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
