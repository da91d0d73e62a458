// Max-pooling reduction behind xk_sliding_window (SIMD = C, so one beat is one window position of all
// channels): the maximum per channel over WINDOW consecutive beats, one output beat per window. Padding
// arrives as the type's minimum and never wins. On bipolar bits the maximum is an OR.
module xk_pool_max #(
    parameter int C = 1,
    parameter int BITS = 1,
    parameter bit SIGNED = 1'b0,
    parameter int WINDOW = 4
) (
    input  logic              clk,
    input  logic              rst_n,
    input  logic [C*BITS-1:0] s_tdata,
    input  logic              s_tvalid,
    output logic              s_tready,
    output logic [C*BITS-1:0] m_tdata,
    output logic              m_tvalid,
    input  logic              m_tready
);
  localparam int CNT_W = WINDOW > 1 ? $clog2(WINDOW) : 1;
  logic [CNT_W-1:0] position;
  logic [C*BITS-1:0] best, merged;
  logic take, last;

  assign s_tready = !m_tvalid || m_tready;
  assign take = s_tvalid && s_tready;
  assign last = position == CNT_W'(WINDOW - 1);

  always_comb begin
    for (int c = 0; c < C; c++) begin
      logic [BITS-1:0] a, b;
      logic a_wins;
      a = s_tdata[c*BITS+:BITS];
      b = best[c*BITS+:BITS];
      a_wins = SIGNED ? $signed(a) > $signed(b) : a > b;
      merged[c*BITS+:BITS] = (position == '0 || a_wins) ? a : b;
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
