// AXI4-Stream shell of BUS_BYTES-wide words around the generated network (xnorkit_top): for boards whose
// pins cannot carry a whole input or output beat (an iCE40 UP5K has 39 I/Os; BUS_BYTES 1), and for a DMA
// of a fixed width (a Zynq's 64-bit AXI DMA; BUS_BYTES 8). Each network beat travels as its bytes,
// least significant first, padded to whole bus words, the same bytes sim/runner.py packs for a beat
// (docs/numerics.md). The padding bits of an input beat are dropped, those of an output beat are 0.
module xnorkit_shell #(
    parameter int IN_W = 8,   // the network's input beat (design.json input elems_per_beat * elem_bits)
    parameter int OUT_W = 8,  // the network's output beat
    parameter int BUS_BYTES = 1,
    localparam int BUS_W = 8 * BUS_BYTES,
    localparam int IN_W_PAD = (IN_W + BUS_W - 1) / BUS_W * BUS_W,
    localparam int OUT_W_PAD = (OUT_W + BUS_W - 1) / BUS_W * BUS_W
) (
    input  logic             clk,
    input  logic             rst_n,
    input  logic [BUS_W-1:0] s_axis_tdata,
    input  logic             s_axis_tvalid,
    output logic             s_axis_tready,
    output logic [BUS_W-1:0] m_axis_tdata,
    output logic             m_axis_tvalid,
    input  logic             m_axis_tready
);
  logic [IN_W_PAD-1:0] in_beat;
  logic [OUT_W-1:0] out_beat;
  logic in_valid, in_ready, out_valid, out_ready;

  xk_stream_dwc #(.IN_ELEMS(BUS_W), .OUT_ELEMS(IN_W_PAD), .ELEM_BITS(1)) gather (
      .clk, .rst_n, .s_tdata(s_axis_tdata), .s_tvalid(s_axis_tvalid), .s_tready(s_axis_tready),
      .m_tdata(in_beat), .m_tvalid(in_valid), .m_tready(in_ready));

  xnorkit_top network (
      .clk, .rst_n, .s_axis_tdata(in_beat[IN_W-1:0]), .s_axis_tvalid(in_valid), .s_axis_tready(in_ready),
      .m_axis_tdata(out_beat), .m_axis_tvalid(out_valid), .m_axis_tready(out_ready));

  xk_stream_dwc #(.IN_ELEMS(OUT_W_PAD), .OUT_ELEMS(BUS_W), .ELEM_BITS(1)) split (
      .clk, .rst_n, .s_tdata(OUT_W_PAD'(out_beat)), .s_tvalid(out_valid), .s_tready(out_ready),
      .m_tdata(m_axis_tdata), .m_tvalid(m_axis_tvalid), .m_tready(m_axis_tready));

  generate
    if (IN_W_PAD > IN_W) begin : g_unused
      logic unused;
      assign unused = &{1'b0, in_beat[IN_W_PAD-1:IN_W]};
    end
  endgenerate
endmodule
