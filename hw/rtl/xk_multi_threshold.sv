// Multi-threshold activation of one value (docs/numerics.md, section 4): BASE + #{l : value >= T[l]}
// in OUT_BITS, thresholds N fields of BITS (two's complement). Shared by xk_mvtu and xk_threshold.
module xk_multi_threshold #(
    parameter int N = 1,
    parameter int BITS = 8,
    parameter int OUT_BITS = 1,
    parameter int BASE = 0
) (
    input  logic signed [BITS-1:0]   value,
    input  logic        [N*BITS-1:0] thresholds,
    output logic        [OUT_BITS-1:0] level
);
  always_comb begin
    level = OUT_BITS'(BASE);
    for (int l = 0; l < N; l++) level = level + OUT_BITS'(value >= $signed(thresholds[l*BITS+:BITS]));
  end
endmodule
