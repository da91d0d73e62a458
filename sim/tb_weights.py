"""cocotb testbench for a design with runtime-writable weights (`xnorkit hw --writable-weights`): after reset it
reads the ID registers over AXI4-Lite with cocotbext-axi's master, writes every register of the given weight
load (pairs of byte address and value, `xnorkit weights`), then streams the inputs through as
sim/tb_network.py does, its scoreboard comparing with the expected outputs (golden's for the new model)."""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from xnorkit.sim.tb_network import _Ports, _stream, start_and_reset


@cocotb.test()
async def load_weights_then_stream(dut) -> None:
    settings = json.loads(open(os.environ["XNORKIT_SIM_SETTINGS"]).read())
    ports = _Ports(dut, "")
    master = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst_n, reset_active_level=False)
    await start_and_reset(dut, [ports])
    writable = settings["design"]["writable"]
    identity = [await master.read_dword(0), await master.read_dword(4)]
    if identity != [writable["id"], len(writable["layers"])]:
        raise AssertionError(f"ID registers read {identity}, expected {[writable['id'], len(writable['layers'])]}")
    for address, value in np.load(settings["writes"]).tolist():
        await master.write_dword(int(address), int(value))
    report = await _stream(dut, ports, settings)
    if report:
        raise AssertionError(report)
