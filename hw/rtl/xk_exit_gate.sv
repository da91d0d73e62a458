// Where the trunk leaves an early exit's branch: per inference, one decision beat from xk_exit_test (its
// top bit: the exit was taken) and FRAME_BEATS beats of the feature map, buffered by the FIFO before it
// while the exit computes. Not taken: the frame goes on to the rest of the network; taken: it is dropped,
// so the rest of the network never sees this inference.
module xk_exit_gate #(
    parameter int WIDTH = 8,
    parameter int DECISION_BITS = 1,
    parameter int FRAME_BEATS = 1
) (
    input  logic                     clk,
    input  logic                     rst_n,
    input  logic [WIDTH-1:0]         a_tdata,
    input  logic                     a_tvalid,
    output logic                     a_tready,
    input  logic [DECISION_BITS-1:0] b_tdata,
    input  logic                     b_tvalid,
    output logic                     b_tready,
    output logic [WIDTH-1:0]         m_tdata,
    output logic                     m_tvalid,
    input  logic                     m_tready
);
  localparam int COUNT_W = FRAME_BEATS > 1 ? $clog2(FRAME_BEATS) : 1;
  logic decided, drop;
  logic [COUNT_W-1:0] beat;
  logic advance;
  assign advance = !m_tvalid || m_tready;
  assign b_tready = !decided;
  assign a_tready = decided && (drop || advance);

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      decided <= 1'b0;
      drop <= 1'b0;
      beat <= '0;
      m_tvalid <= 1'b0;
    end else begin
      if (advance) m_tvalid <= 1'b0;
      if (b_tvalid && b_tready) begin
        decided <= 1'b1;
        drop <= b_tdata[DECISION_BITS-1];
      end
      if (a_tvalid && a_tready) begin
        if (!drop) begin
          m_tvalid <= 1'b1;
          m_tdata <= a_tdata;
        end
        if (32'(beat) == FRAME_BEATS - 1) begin
          beat <= '0;
          decided <= 1'b0;
        end else begin
          beat <= beat + 1'b1;
        end
      end
    end
  end
endmodule
