// popcount(XNOR(x, w)): the matches of N activation bits against N weight bits, the MAC of a bipolar fold.
// On Xilinx 7-series (XNORKIT_XILINX_PRIMITIVES, set by xnorkit's synthesis for that family) the design's
// xk_xnor_popcount_x7.sv holds a LUT6_2/CARRY4 compressor tree for each SIMD width it uses, at about half
// the LUTs synthesis infers from the portable adder tree below (hw/popcount_x7.py).
module xk_xnor_popcount #(
    parameter int N = 8,
    localparam int W = $clog2(N + 1)
) (
    input  logic [N-1:0] x,
    input  logic [N-1:0] w,
    output logic [W-1:0] count
);
`ifdef XNORKIT_XILINX_PRIMITIVES
  xk_xnor_popcount_x7 #(.N(N)) u_x7 (.x(x), .w(w), .count(count));
`else
  xk_popcount #(.N(N)) u_tree (.bits(~(x ^ w)), .count(count));
`endif
endmodule
