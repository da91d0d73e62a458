// Broadcast one stream to N consumers (a tensor read by several layers: a residual block's input). Each
// output takes the beat on its own handshake; the input beat is released once every output has taken
// it, so a slow consumer only stalls the fork, never loses or repeats data.
module xk_stream_fork #(
    parameter int WIDTH = 8,
    parameter int N = 2
) (
    input  logic               clk,
    input  logic               rst_n,
    input  logic [WIDTH-1:0]   s_tdata,
    input  logic               s_tvalid,
    output logic               s_tready,
    output logic [N*WIDTH-1:0] m_tdata,
    output logic [N-1:0]       m_tvalid,
    input  logic [N-1:0]       m_tready
);
  logic [N-1:0] taken;  // outputs that already took the current beat
  logic [N-1:0] done;
  assign done = taken | (m_tvalid & m_tready);
  assign s_tready = &done;
  assign m_tvalid = {N{s_tvalid}} & ~taken;
  assign m_tdata = {N{s_tdata}};
  always_ff @(posedge clk) begin
    if (!rst_n) taken <= '0;
    else if (s_tvalid) taken <= s_tready ? '0 : done;
  end
endmodule
