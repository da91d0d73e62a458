"""cocotb testbench for a generated accelerator top level (NAME_top), or for a top of your own that holds several
(sim.runner.simulate_system: each design's ports after a prefix, one coroutine per design, all at once).

For each design one coroutine runs the whole cycle loop: at each falling edge it drives the input stream (with random
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


class _Ports:
    """A design's stream ports in the top level: s_axis_* and m_axis_*, after `prefix` when several designs share
    one top (each its own streams, one clock and reset)."""

    def __init__(self, dut, prefix: str) -> None:
        for side in ("s", "m"):
            for signal in ("tdata", "tvalid", "tready"):
                setattr(self, f"{side}_{signal}", getattr(dut, f"{prefix}{side}_axis_{signal}"))


async def start_and_reset(dut, ports: list[_Ports]) -> None:
    """The clock started, the streams idle, rst_n held low for 4 cycles and released."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst_n.value = 0
    for p in ports:
        p.s_tvalid.value = 0
        p.s_tdata.value = 0
        p.m_tready.value = 0
    for _ in range(4):
        await RisingEdge(dut.clk)
    dut.rst_n.value = 1


@cocotb.test()
async def stream_network(dut) -> None:
    """Each stream of the settings (one design, or several in one top, each by its port prefix) driven at once."""
    settings = json.loads(open(os.environ["XNORKIT_SIM_SETTINGS"]).read())
    streams = settings.get("streams") or [{"prefix": "", **settings}]
    ports = [_Ports(dut, stream["prefix"]) for stream in streams]
    await start_and_reset(dut, ports)
    runs = [cocotb.start_soon(_stream(dut, p, stream)) for p, stream in zip(ports, streams, strict=True)]
    reports = [await run for run in runs]
    failed = [report for report in reports if report]
    if failed:
        raise AssertionError(failed[0])


async def _stream(dut, ports: _Ports, settings: dict) -> str | None:
    """One design's inputs in and outputs out with random stalls; its results written; the scoreboard's report."""
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
            return f"timeout: {len(received) // beats_per_output} of {n} outputs after {limit} cycles"
        offer = sent < len(queue) and rng.random() >= stall_in
        ports.s_tvalid.value = int(offer)
        ports.s_tdata.value = queue[sent] if offer else 0
        ports.m_tready.value = int(rng.random() >= stall_out)
        await ReadOnly()
        if offer and ports.s_tready.value:
            if sent % beats_per_input == 0:
                accepted_at.append(cycle)
            sent += 1
        if ports.m_tvalid.value and ports.m_tready.value:
            received.append(int(ports.m_tdata.value))
            if len(received) % beats_per_output == 0:
                completed_at.append(cycle)
                _report_progress(settings, len(completed_at), n)

    outputs = np.stack([
        np.concatenate([packing.unpack_fields(received[i * beats_per_output + b], out_info["elems_per_beat"],
                                              out_info["elem_bits"], out_info["signed"])
                        for b in range(beats_per_output)])
        for i in range(n)
    ])
    outputs = ir_order(outputs, out_info)  # a feature map arrives pixel by pixel; golden's order is (C, H, W)
    np.savez(settings["results"], outputs=outputs, accepted_at=np.array(accepted_at),
             completed_at=np.array(completed_at))
    return mismatch_report(outputs, expected)


def _report_progress(settings: dict, done: int, total: int) -> None:
    """Outputs so far into the settings' progress file (sim.runner reads it while the simulation runs), every 2%."""
    path = settings.get("progress")
    if path and (done == total or done % max(1, total // 50) == 0):
        with open(path + ".tmp", "w") as f:
            f.write(f"{done} {total}\n")
        os.replace(path + ".tmp", path)
