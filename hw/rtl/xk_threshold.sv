// Multi-threshold activation on a stream of pixels (C channels per beat): per channel c, the input value
// x (IN_KIND 0 bipolar, 1 unsigned, 2 signed; IN_BITS each) gives OUT_BASE + #{l : x >= T[c][l]} in
// OUT_BITS (docs/numerics.md). Thresholds are T_BITS two's complement, wide enough for the input's range
// and one past it. Used where thresholds do not follow an MVTU: after a residual sum or a pooling sum.
module xk_threshold #(
    parameter int C = 1,
    parameter int IN_BITS = 8,
    parameter int IN_KIND = 2,
    parameter int T_BITS = 9,
    parameter int N_THRESH = 1,
    parameter int OUT_BITS = 1,
    parameter int OUT_BASE = 0,
    parameter THRESHOLD_FILE = "thresholds.mem"
) (
    input  logic                  clk,
    input  logic                  rst_n,
    input  logic [C*IN_BITS-1:0]  s_tdata,
    input  logic                  s_tvalid,
    output logic                  s_tready,
    output logic [C*OUT_BITS-1:0] m_tdata,
    output logic                  m_tvalid,
    input  logic                  m_tready
);
  // one word: field c * N_THRESH + l is threshold l of channel c
  logic [C*N_THRESH*T_BITS-1:0] threshold_rom[1];
  initial $readmemh(THRESHOLD_FILE, threshold_rom);

  logic [C*OUT_BITS-1:0] levels;
  for (genvar c = 0; c < C; c++) begin : g_channel
    logic signed [T_BITS-1:0] value;
    xk_value #(.BITS(IN_BITS), .KIND(IN_KIND), .OUT_BITS(T_BITS)) u_value (.x(s_tdata[c*IN_BITS+:IN_BITS]),
                                                                          .value(value));
    xk_multi_threshold #(.N(N_THRESH), .BITS(T_BITS), .OUT_BITS(OUT_BITS), .BASE(OUT_BASE)) u_level (
        .value, .thresholds(threshold_rom[0][c*N_THRESH*T_BITS+:N_THRESH*T_BITS]),
        .level(levels[c*OUT_BITS+:OUT_BITS]));
  end

  assign s_tready = !m_tvalid || m_tready;
  always_ff @(posedge clk) begin
    if (!rst_n) m_tvalid <= 1'b0;
    else if (s_tready) m_tvalid <= s_tvalid;
  end
  always_ff @(posedge clk) if (s_tvalid && s_tready) m_tdata <= levels;
endmodule
