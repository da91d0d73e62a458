// Popcount of N bits as a balanced adder tree: pairs of bits, then pairs of partial counts, each
// level one bit wider, so depth is log2(N) small adders instead of a chain of N increments.
module xk_popcount #(
    parameter int N = 8,
    localparam int W = $clog2(N + 1)
) (
    input  logic [N-1:0] bits,
    output logic [W-1:0] count
);
  generate
    if (N == 1) begin : g_leaf
      assign count = bits;
    end else begin : g_split
      localparam int LO = N / 2;
      localparam int HI = N - LO;
      localparam int LO_W = $clog2(LO + 1);
      localparam int HI_W = $clog2(HI + 1);
      logic [LO_W-1:0] lo_count;
      logic [HI_W-1:0] hi_count;
      xk_popcount #(.N(LO)) u_lo (.bits(bits[LO-1:0]), .count(lo_count));
      xk_popcount #(.N(HI)) u_hi (.bits(bits[N-1:LO]), .count(hi_count));
      assign count = W'(lo_count) + W'(hi_count);
    end
  endgenerate
endmodule
