"""cocotb testbench for the AXI4-Stream shell (xnorkit_shell around xnorkit_top) with cocotbext-axi's source and
sink: inputs go in as frames of one or more inferences each (the shell counts inputs and ignores TLAST), both
sides pause at random, and every packet the sink receives (bytes marked by TKEEP, ended by TLAST) is written
back in arrival order. sim.runner.simulate_shell writes the settings and reads the packets."""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge, SimTimeoutError, with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource


def _pauses(rng: random.Random, share: float):
    while True:
        yield rng.random() < share


async def _receive(sink: AxiStreamSink, count: int, packets: list[bytes]) -> None:
    for _ in range(count):
        frame = await sink.recv()
        packets.append(bytes(frame.tdata))


@cocotb.test()
async def shell_packets(dut) -> None:
    settings = json.loads(open(os.environ["XNORKIT_SIM_SETTINGS"]).read())
    words = np.load(settings["inputs"])  # (N, input bytes on the bus)
    rng = random.Random(settings["seed"])
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk, dut.rst_n, reset_active_level=False)
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst_n, reset_active_level=False)
    source.set_pause_generator(_pauses(rng, settings["stall_in"]))
    sink.set_pause_generator(_pauses(rng, settings["stall_out"]))
    dut.rst_n.value = 0
    for _ in range(4):
        await RisingEdge(dut.clk)
    dut.rst_n.value = 1
    # frames of 1 to max_frame inputs each: a DMA sets TLAST once per transfer, whatever it holds
    start = 0
    while start < len(words):
        count = rng.randint(1, settings["max_frame"])
        await source.send(AxiStreamFrame(words[start:start + count].tobytes()))
        start += count
    packets: list[bytes] = []
    try:
        await with_timeout(_receive(sink, len(words), packets), settings["max_cycles"] * 10, "ns")
    except SimTimeoutError:
        pass  # fewer packets than inputs: the caller reports it
    for _ in range(50):  # nothing more may come: no duplicated or split packet
        await RisingEdge(dut.clk)
    extra = sink.count()
    with open(settings["results"], "w") as f:
        json.dump({"packets": [p.hex() for p in packets], "extra": extra}, f)
