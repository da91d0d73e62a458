// AXI4-Stream shell of BUS_BYTES-wide words around the generated network (xnorkit_top), for a DMA of a fixed
// width (a Zynq's 64-bit AXI DMA: BUS_BYTES 8) and for boards whose pins cannot carry a whole beat (an iCE40
// UP5K has 39 I/Os: BUS_BYTES 1).
//
// Packing (docs/numerics.md, as sim/runner.py and the PYNQ driver pack it): each network beat travels as its
// bytes, least significant first, padded to whole bus words. The padding bits of an input beat are dropped,
// those of an output beat are 0.
// Packets: the result of each inference (OUT_BEATS network beats) is one packet: m_axis_tlast is set on its
// last bus word, m_axis_tkeep on that word marks the bytes that carry the result (every other word keeps all
// its bytes), so an AXI DMA's S2MM channel completes one transfer per inference. Inputs are counted, not
// delimited: s_axis_tlast is accepted and ignored, since a DMA's MM2S sets it once at the end of a transfer that
// may hold many inputs; s_axis_tkeep is not a port (every input byte is data).
// Clock and reset: one clock, clk, rising edge; rst_n is synchronous and active low (every register takes its
// reset at one rising edge; the testbenches hold it low 4 cycles).
module xnorkit_shell #(
    parameter int IN_W = 8,       // the network's input beat (design.json input elems_per_beat * elem_bits)
    parameter int OUT_W = 8,      // the network's output beat
    parameter int OUT_BEATS = 1,  // the network's output beats per inference (design.json output beats)
    parameter int BUS_BYTES = 1,
    localparam int BUS_W = 8 * BUS_BYTES,
    localparam int IN_W_PAD = (IN_W + BUS_W - 1) / BUS_W * BUS_W,
    localparam int OUT_W_PAD = (OUT_W + BUS_W - 1) / BUS_W * BUS_W
) (
    input  logic                 clk,
    input  logic                 rst_n,
    input  logic [BUS_W-1:0]     s_axis_tdata,
    input  logic                 s_axis_tvalid,
    output logic                 s_axis_tready,
    input  logic                 s_axis_tlast,
    output logic [BUS_W-1:0]     m_axis_tdata,
    output logic                 m_axis_tvalid,
    input  logic                 m_axis_tready,
    output logic                 m_axis_tlast,
    output logic [BUS_BYTES-1:0] m_axis_tkeep
);
  // bus words per inference's result, and the bytes of the last one that carry it
  localparam int OUT_WORDS = OUT_BEATS * (OUT_W_PAD / BUS_W);
  localparam int LAST_BYTES = (OUT_W + 7) / 8 - (OUT_W_PAD / BUS_W - 1) * BUS_BYTES;
  localparam int COUNT_W = OUT_WORDS > 1 ? $clog2(OUT_WORDS) : 1;

  logic [IN_W_PAD-1:0] in_beat;
  logic [OUT_W-1:0] out_beat;
  logic in_valid, in_ready, out_valid, out_ready;
  logic [COUNT_W-1:0] out_word;

  xk_stream_dwc #(.IN_ELEMS(BUS_W), .OUT_ELEMS(IN_W_PAD), .ELEM_BITS(1)) gather (
      .clk, .rst_n, .s_tdata(s_axis_tdata), .s_tvalid(s_axis_tvalid), .s_tready(s_axis_tready),
      .m_tdata(in_beat), .m_tvalid(in_valid), .m_tready(in_ready));

  xnorkit_top network (
      .clk, .rst_n, .s_axis_tdata(in_beat[IN_W-1:0]), .s_axis_tvalid(in_valid), .s_axis_tready(in_ready),
      .m_axis_tdata(out_beat), .m_axis_tvalid(out_valid), .m_axis_tready(out_ready));

  xk_stream_dwc #(.IN_ELEMS(OUT_W_PAD), .OUT_ELEMS(BUS_W), .ELEM_BITS(1)) split (
      .clk, .rst_n, .s_tdata(OUT_W_PAD'(out_beat)), .s_tvalid(out_valid), .s_tready(out_ready),
      .m_tdata(m_axis_tdata), .m_tvalid(m_axis_tvalid), .m_tready(m_axis_tready));

  always_ff @(posedge clk) begin
    if (!rst_n) out_word <= '0;
    else if (m_axis_tvalid && m_axis_tready) out_word <= m_axis_tlast ? '0 : out_word + 1'b1;
  end
  assign m_axis_tlast = out_word == COUNT_W'(OUT_WORDS - 1);
  assign m_axis_tkeep = m_axis_tlast ? BUS_BYTES'((1 << LAST_BYTES) - 1) : '1;

  logic unused;
  assign unused = &{1'b0, s_axis_tlast};
  generate
    if (IN_W_PAD > IN_W) begin : g_unused
      logic unused_pad;
      assign unused_pad = &{1'b0, in_beat[IN_W_PAD-1:IN_W]};
    end
  endgenerate
endmodule
