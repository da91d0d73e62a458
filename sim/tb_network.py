"""cocotb testbench for a generated accelerator top level (xnorkit_top).

One coroutine runs the whole cycle loop: at each falling edge it drives the input stream (with random
valid gaps) and the output ready (with random stalls), then, once signals settle (ReadOnly), it records
which handshakes the next rising edge will complete. Inputs (in stream order), expected outputs (in the
IR's order) and settings come from files named in environment variables (written by sim.runner); the
outputs (in the IR's order) and cycle times go back the same way. The scoreboard compares with the
golden model's integers exactly.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from xnorkit import packing
from xnorkit.layout import ir_order
from xnorkit.sim.runner import mismatch_report


def _beats(vector: np.ndarray, info: dict) -> list[int]:
    return packing.stream_words(vector, info["elems_per_beat"], info["elem_bits"])


@cocotb.test()
async def stream_network(dut) -> None:
    settings = json.loads(open(os.environ["XNORKIT_SIM_SETTINGS"]).read())
    design = settings["design"]
    vectors = np.load(settings["vectors"])
    inputs = vectors["inputs"]
    expected = vectors["expected"] if "expected" in vectors.files else None
    rng = random.Random(settings["seed"])
    stall_in, stall_out = settings["stall_in"], settings["stall_out"]
    in_info, out_info = design["input"], design["output"]

    queue = [beat for vec in inputs for beat in _beats(vec, in_info)]
    beats_per_input = in_info["beats"]
    beats_per_output = out_info["beats"]
    n = len(inputs)

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst_n.value = 0
    dut.s_axis_tvalid.value = 0
    dut.s_axis_tdata.value = 0
    dut.m_axis_tready.value = 0
    for _ in range(4):
        await RisingEdge(dut.clk)
    dut.rst_n.value = 1

    sent = 0
    received: list[int] = []
    accepted_at: list[int] = []   # cycle the first beat of each input was accepted
    completed_at: list[int] = []  # cycle the last beat of each output was delivered
    cycle = 0
    limit = settings["max_cycles"]
    while len(received) < n * beats_per_output:
        await FallingEdge(dut.clk)
        cycle += 1
        if cycle > limit:
            raise AssertionError(f"timeout: {len(received) // beats_per_output} of {n} outputs after {limit} cycles")
        offer = sent < len(queue) and rng.random() >= stall_in
        dut.s_axis_tvalid.value = int(offer)
        dut.s_axis_tdata.value = queue[sent] if offer else 0
        dut.m_axis_tready.value = int(rng.random() >= stall_out)
        await ReadOnly()
        if offer and dut.s_axis_tready.value:
            if sent % beats_per_input == 0:
                accepted_at.append(cycle)
            sent += 1
        if dut.m_axis_tvalid.value and dut.m_axis_tready.value:
            received.append(int(dut.m_axis_tdata.value))
            if len(received) % beats_per_output == 0:
                completed_at.append(cycle)

    outputs = np.stack([
        np.concatenate([packing.unpack_fields(received[i * beats_per_output + b], out_info["elems_per_beat"],
                                              out_info["elem_bits"], out_info["signed"])
                        for b in range(beats_per_output)])
        for i in range(n)
    ])
    outputs = ir_order(outputs, out_info)  # a feature map arrives pixel by pixel; golden's order is (C, H, W)
    np.savez(settings["results"], outputs=outputs, accepted_at=np.array(accepted_at),
             completed_at=np.array(completed_at))
    report = mismatch_report(outputs, expected)
    if report:
        raise AssertionError(report)
