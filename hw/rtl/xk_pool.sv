// Pooling reduction behind xk_sliding_window (SIMD = C, so one beat is one window position of all
// channels), one output beat per WINDOW consecutive beats:
//   SUM 0: the maximum per channel (padding arrives as the type's minimum and never wins; on bipolar
//          bits the maximum is an OR), OUT_BITS = BITS;
//   SUM 1: the sum of the values per channel (average pooling without its division, docs/numerics.md),
//          bipolar bits counting -1 / +1, a signed OUT_BITS integer.
module xk_pool #(
    parameter int C = 1,
    parameter int BITS = 1,
    parameter int KIND = 1,  // 0 bipolar, 1 unsigned, 2 signed
    parameter bit SUM = 1'b0,
    parameter int WINDOW = 4,
    parameter int OUT_BITS = BITS
) (
    input  logic                  clk,
    input  logic                  rst_n,
    input  logic [C*BITS-1:0]     s_tdata,
    input  logic                  s_tvalid,
    output logic                  s_tready,
    output logic [C*OUT_BITS-1:0] m_tdata,
    output logic                  m_tvalid,
    input  logic                  m_tready
);
  localparam int CNT_W = WINDOW > 1 ? $clog2(WINDOW) : 1;
  logic [CNT_W-1:0] position;
  logic [C*OUT_BITS-1:0] best, merged;
  logic take, last;

  assign s_tready = !m_tvalid || m_tready;
  assign take = s_tvalid && s_tready;
  assign last = position == CNT_W'(WINDOW - 1);

  for (genvar c = 0; c < C; c++) begin : g_channel
    logic [OUT_BITS-1:0] b;
    assign b = best[c*OUT_BITS+:OUT_BITS];
    if (SUM) begin : g_sum
      logic signed [OUT_BITS-1:0] a;
      xk_value #(.BITS(BITS), .KIND(KIND), .OUT_BITS(OUT_BITS)) u_value (.x(s_tdata[c*BITS+:BITS]), .value(a));
      assign merged[c*OUT_BITS+:OUT_BITS] = (position == '0) ? a : a + b;
    end else begin : g_max
      logic [OUT_BITS-1:0] a;
      logic a_wins;
      assign a = OUT_BITS'(s_tdata[c*BITS+:BITS]);
      assign a_wins = KIND == 2 ? $signed(a) > $signed(b) : a > b;
      assign merged[c*OUT_BITS+:OUT_BITS] = (position == '0 || a_wins) ? a : b;
    end
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      position <= '0;
      m_tvalid <= 1'b0;
    end else begin
      if (m_tvalid && m_tready) m_tvalid <= 1'b0;
      if (take) begin
        position <= last ? '0 : position + 1'b1;
        if (last) m_tvalid <= 1'b1;
      end
    end
  end
  always_ff @(posedge clk) begin
    if (take) begin
      best <= merged;
      if (last) m_tdata <= merged;
    end
  end
endmodule
