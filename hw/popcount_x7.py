"""XNOR-popcount for Xilinx 7-series (and parts Vivado retargets from it) built from LUT6_2 and CARRY4
primitives: a compressor tree that Yosys and Vivado place as written, at about half the LUTs of the
`$countones(~(x ^ w))` that synthesis infers.

Why primitives: a LUT6_2 gives two functions of five inputs for the price of one LUT, and the carry chain
adds for free; synthesis uses neither for a popcount (Yosys maps it to one-LUT-per-bit adders). Three
building blocks, each checked exhaustively by `evaluate` (the Python reference of the netlist):

- xnor full adder (one LUT6_2): two XNOR products (x0, w0, x1, w1) plus one bit already counted, giving the sum
  (weight 1) and carry (weight 2). Chained, each LUT absorbs two products: the XNOR costs nothing extra.
- (7;3) counter (two LUTs and a carry chain): seven bits of one column to three. The low position's LUT6 is
  the parity of six bits, its carry-chain data input the sixth bit itself and the carry-in the seventh; the
  next position's LUT6_2 gives bit 1 and "at least 4" of the first five. The chain then adds them exactly.
- (6,0,7;5) counter (four LUTs, one whole CARRY4): the same for a second group of up to six bits two columns
  up, riding the same chain.

The tree is scheduled once here in Python (a bit heap, compressed column by column until two rows are left,
which a carry-chain adder sums), and written out as a flat netlist, so the module is what gets synthesized.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product


def _table(fn, inputs: int) -> int:
    """Truth table of fn over `inputs` bits (bit i of the row index is input Ii), as an integer."""
    value = 0
    for row in range(1 << inputs):
        if fn(*[(row >> i) & 1 for i in range(inputs)]):
            value |= 1 << row
    return value


def lut6_2_init(o6, o5, inputs: int) -> int:
    """INIT of a LUT6_2 used as two functions of I0..I4 (I5 tied high): O6 is the upper half, O5 the lower."""
    assert inputs <= 5

    def widen(fn):
        return lambda *bits: fn(*bits[:inputs])

    return (_table(widen(o6), 5) << 32) | _table(widen(o5), 5)


def lut6_init(fn, inputs: int) -> int:
    return _table(lambda *bits: fn(*bits[:inputs]), 6)


@dataclass
class Lut:
    init: int
    inputs: list[str]  # I0.. in order; missing ones tie to 0
    o6: str
    o5: str | None = None  # a LUT6_2 when set (I5 tied high)


@dataclass
class Carry4:
    s: list[str]  # four select (propagate) nets, "1'b0" where unused
    di: list[str]
    cyinit: str
    o: list[str | None]  # nets for O[3:0] actually used
    co: list[str | None]


@dataclass
class Netlist:
    n: int
    luts: list[Lut] = field(default_factory=list)
    carries: list[Carry4] = field(default_factory=list)
    rows: tuple[list[str | None], list[str | None]] = ((), ())  # final two rows, index = column
    wires: int = 0

    def wire(self) -> str:
        self.wires += 1
        return f"n{self.wires}"


ZERO = "1'b0"


def _xnor_adder(net: Netlist, x0: str, w0: str, x1: str, w1: str, carried: str | None) -> tuple[str, str]:
    """Sum and carry of XNOR(x0, w0) + XNOR(x1, w1) (+ carried)."""
    def total(a, b, c, d, e=0):
        return (1 - (a ^ b)) + (1 - (c ^ d)) + e

    inputs = [x0, w0, x1, w1] + ([carried] if carried else [])
    count = len(inputs)
    init = lut6_2_init(lambda *v: total(*v) & 1, lambda *v: total(*v) >> 1, count)
    s, c = net.wire(), net.wire()
    net.luts.append(Lut(init, inputs, s, c))
    return s, c


def _counter(net: Netlist, low: list[str], high: list[str]) -> list[str]:
    """(len(high), 0, len(low); 5) counter on one carry chain: `low` (up to 7 bits) at column j, `high` (up to 6)
    at column j+2. Returns the nets of columns j.. (3 when high is empty, else 5)."""
    assert 1 <= len(low) <= 7 and len(high) <= 6
    s, di, o, co = [ZERO] * 4, [ZERO] * 4, [None] * 4, [None] * 4
    cyinit = low[6] if len(low) == 7 else ZERO

    def group(bits: list[str], base: int) -> None:
        six = bits[:6]
        p = net.wire()
        net.luts.append(Lut(lut6_init(lambda *v: sum(v) & 1, len(six)), six, p))
        s[base] = p
        # the carry-chain data input: any bit whose removal leaves the rest for the next position to count
        di[base] = six[-1] if len(six) == 6 else ZERO
        five = six[:5] if len(six) == 6 else six
        p1, g1 = net.wire(), net.wire()
        net.luts.append(Lut(lut6_2_init(lambda *v: (sum(v) >> 1) & 1, lambda *v: sum(v) >= 4, len(five)), five,
                            p1, g1))
        s[base + 1], di[base + 1] = p1, g1

    group(low[:6], 0)
    outputs = [net.wire() for _ in range(5 if high else 3)]
    o[0], o[1] = outputs[0], outputs[1]
    if high:
        group(high, 2)
        o[2], o[3], co[3] = outputs[2], outputs[3], outputs[4]
    else:
        co[1] = outputs[2]
    net.carries.append(Carry4(s, di, cyinit, o, co))
    return outputs


def compressor(n: int, chain: int = 4) -> Netlist:
    """The netlist for popcount(~(x ^ w)) of n bits: chains of `chain` xnor adders, then a bit heap."""
    net = Netlist(n)
    heap: list[list[str]] = [[], []]
    pairs = [(f"x[{2 * i}]", f"w[{2 * i}]", f"x[{2 * i + 1}]", f"w[{2 * i + 1}]") for i in range(n // 2)]
    for start in range(0, len(pairs), chain):
        carried = None
        for x0, w0, x1, w1 in pairs[start:start + chain]:
            carried, carry = _xnor_adder(net, x0, w0, x1, w1, carried)
            heap[1].append(carry)
        heap[0].append(carried)
    if n % 2:  # an odd product: one LUT for its XNOR
        odd = net.wire()
        net.luts.append(Lut(lut6_init(lambda a, b: 1 - (a ^ b), 2), [f"x[{n - 1}]", f"w[{n - 1}]"], odd))
        heap[0].append(odd)
    while max(len(c) for c in heap) > 2:
        nxt: list[list[str]] = [[] for _ in range(len(heap) + 5)]
        for j, col in enumerate(heap):
            bits = list(col)
            while len(bits) > 2 and len(bits) + len(nxt[j]) > 2:
                low, bits = bits[:7], bits[7:]
                high: list[str] = []
                if j + 2 < len(heap) and len(heap[j + 2]) >= 6 and len(low) >= 4:
                    high, heap[j + 2] = heap[j + 2][:6], heap[j + 2][6:]
                if len(low) <= 3 and not high:
                    # a full adder (or half adder) in one LUT6_2 costs less than a counter's two
                    sm, cy = net.wire(), net.wire()
                    net.luts.append(Lut(lut6_2_init(lambda *v: sum(v) & 1, lambda *v: sum(v) >> 1, len(low)), low,
                                        sm, cy))
                    nxt[j].append(sm)
                    nxt[j + 1].append(cy)
                    continue
                for k, bit in enumerate(_counter(net, low, high)):
                    nxt[j + k].append(bit)
            nxt[j].extend(bits)
        while nxt and not nxt[-1]:
            nxt.pop()
        heap = nxt
    width = len(heap)
    net.rows = ([c[0] if c else None for c in heap], [c[1] if len(c) > 1 else None for c in heap])
    assert width >= 1
    return net


def evaluate(net: Netlist, x: int, w: int) -> int:
    """The netlist's result for one input, evaluated from the INIT values and CARRY4 equations."""
    values = {ZERO: 0}
    for i in range(net.n):
        values[f"x[{i}]"] = (x >> i) & 1
        values[f"w[{i}]"] = (w >> i) & 1
    pending_luts, pending_carries = list(net.luts), list(net.carries)
    while pending_luts or pending_carries:
        progress = False
        for lut in list(pending_luts):
            if all(i in values for i in lut.inputs):
                index = sum(values[i] << k for k, i in enumerate(lut.inputs))
                if lut.o5 is None:
                    values[lut.o6] = (lut.init >> index) & 1
                else:
                    values[lut.o6] = (lut.init >> (32 + index)) & 1
                    values[lut.o5] = (lut.init >> index) & 1
                pending_luts.remove(lut)
                progress = True
        for cy in list(pending_carries):
            if all(i in values for i in cy.s + cy.di + [cy.cyinit]):
                carry = values[cy.cyinit]
                for k in range(4):
                    sel = values[cy.s[k]]
                    out = sel ^ carry
                    carry = carry if sel else values[cy.di[k]]
                    if cy.o[k]:
                        values[cy.o[k]] = out
                    if cy.co[k]:
                        values[cy.co[k]] = carry
                pending_carries.remove(cy)
                progress = True
        assert progress, "combinational loop"
    total = 0
    for row in net.rows:
        total += sum(values[b] << j for j, b in enumerate(row) if b)
    return total


def verilog(net: Netlist, module: str) -> str:
    """The netlist as a Verilog module `module(x, w, count)`: LUT6/LUT6_2/CARRY4 instances and a final adder."""
    width = max(1, net.n.bit_length())
    lines = [f"module {module} (", f"    input  logic [{net.n - 1}:0] x,", f"    input  logic [{net.n - 1}:0] w,",
             f"    output logic [{width - 1}:0] count", ");"]
    names = sorted({lut.o6 for lut in net.luts} | {lut.o5 for lut in net.luts if lut.o5}
                   | {n for c in net.carries for n in c.o + c.co if n}, key=lambda s: int(s[1:]))
    lines.append(f"  logic {', '.join(names)};")
    for k, lut in enumerate(net.luts):
        pins = lut.inputs + [ZERO] * (6 - len(lut.inputs))
        if lut.o5 is not None:
            pins[5] = "1'b1"
            ports = ", ".join(f".I{i}({p})" for i, p in enumerate(pins))
            lines.append(f"  LUT6_2 #(.INIT(64'h{lut.init:016X})) u_lut{k} (.O6({lut.o6}), .O5({lut.o5}), {ports});")
        else:
            ports = ", ".join(f".I{i}({p})" for i, p in enumerate(pins))
            lines.append(f"  LUT6 #(.INIT(64'h{lut.init:016X})) u_lut{k} (.O({lut.o6}), {ports});")
    for k, cy in enumerate(net.carries):
        def bus(nets):
            return "{" + ", ".join(reversed(nets)) + "}"

        # a counter taps only some of the chain's outputs
        lines.append("  /* verilator lint_off UNUSEDSIGNAL */")
        lines.append(f"  logic [3:0] u_carry{k}_o, u_carry{k}_co;")
        lines.append("  /* verilator lint_on UNUSEDSIGNAL */")
        lines.append(f"  CARRY4 u_carry{k} (.CO(u_carry{k}_co), .O(u_carry{k}_o), .CI(1'b0), .CYINIT({cy.cyinit}), "
                     f".DI({bus(cy.di)}), .S({bus(cy.s)}));")
        for i in range(4):
            if cy.o[i]:
                lines.append(f"  assign {cy.o[i]} = u_carry{k}_o[{i}];")
            if cy.co[i]:
                lines.append(f"  assign {cy.co[i]} = u_carry{k}_co[{i}];")
    for r, row in enumerate(net.rows):
        bits = [b or ZERO for b in row]
        lines.append(f"  logic [{len(bits) - 1}:0] row{r};")
        lines.append(f"  assign row{r} = {{{', '.join(reversed(bits))}}};")
    lines.append(f"  assign count = {width}'(row0) + {width}'(row1);")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def _selfcheck(n: int) -> None:
    import random

    net = compressor(n)
    rng = random.Random(n)
    cases = product(range(1 << n), [0]) if n <= 10 else ((rng.getrandbits(n), rng.getrandbits(n)) for _ in range(2000))
    for x, w in cases:
        assert evaluate(net, x, w) == bin(~(x ^ w) & ((1 << n) - 1)).count("1"), (n, x, w)


FILE = "xk_xnor_popcount_x7.sv"
FAMILIES = ("xc7",)  # families whose synthesis reads the design with XNORKIT_XILINX_PRIMITIVES
MIN_WIDTH = 8  # narrower folds keep the portable tree: a handful of LUTs either way


def library(widths: list[int]) -> str:
    """The design's xk_xnor_popcount_x7.sv: a compressor netlist for each SIMD width of its bipolar folds and
    the module xk_xnor_popcount instantiates under XNORKIT_XILINX_PRIMITIVES, which picks one by N. The whole
    file is inside that define: other simulators and families never see a Xilinx primitive."""
    chosen = sorted({n for n in widths if n >= MIN_WIDTH})
    cases = "".join(f"    {'if' if k == 0 else 'end else if'} (N == {n}) begin : g_n{n}\n"
                    f"      xk_xnor_popcount_x7_n{n} u_tree (.x(x), .w(w), .count(count));\n"
                    for k, n in enumerate(chosen))
    fallback = ("    begin : g_tree\n" if not chosen else "    end else begin : g_tree\n")
    body = (f"{cases}{fallback}"
            "      xk_popcount #(.N(N)) u_tree (.bits(~(x ^ w)), .count(count));\n    end\n")
    return ("// Generated by xnorkit (hw/popcount_x7.py): XNOR-popcount compressor trees of LUT6_2 and CARRY4 for\n"
            "// Xilinx 7-series, one per SIMD width of this design's bipolar folds.\n"
            "`ifdef XNORKIT_XILINX_PRIMITIVES\n"
            "/* verilator lint_off DECLFILENAME */  // one file, a netlist module per width\n"
            "module xk_xnor_popcount_x7 #(\n    parameter int N = 8,\n    localparam int W = $clog2(N + 1)\n) (\n"
            "    input  logic [N-1:0] x,\n    input  logic [N-1:0] w,\n    output logic [W-1:0] count\n);\n"
            f"  generate\n{body}  endgenerate\nendmodule\n\n"
            + "\n".join(verilog(compressor(n), f"xk_xnor_popcount_x7_n{n}") for n in chosen)
            + "`endif\n")


def cell_models() -> str:
    """Yosys' simulation models of the primitives used here (LUT6, LUT6_2, CARRY4), without their timing
    blocks: what a simulator needs to run the compressor netlists."""
    import re

    from xnorkit.hw import synth

    text = synth.cell_library("xilinx").read_text()
    models = []
    for name in ("LUT6", "LUT6_2", "CARRY4"):
        match = re.search(rf"^module {name}\b.*?^endmodule", text, re.S | re.M)
        assert match, name
        body = re.sub(r"^\s*specify\b.*?endspecify\s*$", "", match.group(0), flags=re.S | re.M)
        models.append(re.sub(r"^`ifn?def.*?^`endif\s*$", "", body, flags=re.S | re.M))
    return "\n".join(models) + "\n"
