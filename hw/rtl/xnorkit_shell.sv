// Byte-wide AXI4-Stream shell around the generated network (xnorkit_top), for boards whose pins cannot
// carry a whole input or output beat (an iCE40 UP5K has 39 I/Os): each network beat travels as
// IN_W_PAD / 8 bytes, least significant byte first, the same bytes sim/runner.py packs for a beat
// (docs/numerics.md). The padding bits of an input beat are dropped, those of an output beat are 0.
module xnorkit_shell #(
    parameter int IN_W = 8,   // the network's input beat (design.json input elems_per_beat * elem_bits)
    parameter int OUT_W = 8,  // the network's output beat
    localparam int IN_W_PAD = (IN_W + 7) / 8 * 8,
    localparam int OUT_W_PAD = (OUT_W + 7) / 8 * 8
) (
    input  logic       clk,
    input  logic       rst_n,
    input  logic [7:0] s_axis_tdata,
    input  logic       s_axis_tvalid,
    output logic       s_axis_tready,
    output logic [7:0] m_axis_tdata,
    output logic       m_axis_tvalid,
    input  logic       m_axis_tready
);
  logic [IN_W_PAD-1:0] in_beat;
  logic [OUT_W-1:0] out_beat;
  logic in_valid, in_ready, out_valid, out_ready;

  xk_stream_dwc #(.IN_ELEMS(8), .OUT_ELEMS(IN_W_PAD), .ELEM_BITS(1)) gather (
      .clk, .rst_n, .s_tdata(s_axis_tdata), .s_tvalid(s_axis_tvalid), .s_tready(s_axis_tready),
      .m_tdata(in_beat), .m_tvalid(in_valid), .m_tready(in_ready));

  xnorkit_top network (
      .clk, .rst_n, .s_axis_tdata(in_beat[IN_W-1:0]), .s_axis_tvalid(in_valid), .s_axis_tready(in_ready),
      .m_axis_tdata(out_beat), .m_axis_tvalid(out_valid), .m_axis_tready(out_ready));

  xk_stream_dwc #(.IN_ELEMS(OUT_W_PAD), .OUT_ELEMS(8), .ELEM_BITS(1)) split (
      .clk, .rst_n, .s_tdata(OUT_W_PAD'(out_beat)), .s_tvalid(out_valid), .s_tready(out_ready),
      .m_tdata(m_axis_tdata), .m_tvalid(m_axis_tvalid), .m_tready(m_axis_tready));

  generate
    if (IN_W_PAD > IN_W) begin : g_unused
      logic unused;
      assign unused = &{1'b0, in_beat[IN_W_PAD-1:IN_W]};
    end
  endgenerate
endmodule
