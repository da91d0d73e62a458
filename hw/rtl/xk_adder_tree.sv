// Sum of N signed terms as a balanced adder tree (as xk_popcount for bits): depth log2(N) adders,
// each level one bit wider, instead of the chain of N additions a loop describes, which synthesis
// keeps as a chain (Yosys does not rebalance it) and which then sets the clock.
module xk_adder_tree #(
    parameter int N = 8,
    parameter int BITS = 8,  // of one term, two's complement
    localparam int SUM_BITS = BITS + $clog2(N)
) (
    input  logic [N*BITS-1:0]           terms,  // term i at bits [i*BITS +: BITS]
    output logic signed [SUM_BITS-1:0]  sum
);
  generate
    if (N == 1) begin : g_leaf
      assign sum = $signed(terms);
    end else begin : g_split
      localparam int LO = N / 2;
      localparam int HI = N - LO;
      localparam int LO_W = BITS + $clog2(LO);
      localparam int HI_W = BITS + $clog2(HI);
      logic signed [LO_W-1:0] lo_sum;
      logic signed [HI_W-1:0] hi_sum;
      xk_adder_tree #(.N(LO), .BITS(BITS)) u_lo (.terms(terms[LO*BITS-1:0]), .sum(lo_sum));
      xk_adder_tree #(.N(HI), .BITS(BITS)) u_hi (.terms(terms[N*BITS-1:LO*BITS]), .sum(hi_sum));
      assign sum = SUM_BITS'(lo_sum) + SUM_BITS'(hi_sum);
    end
  endgenerate
endmodule
