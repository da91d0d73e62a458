// Stream width converter between a layer's PE-wide output and the next layer's SIMD-wide input.
// One of IN_ELEMS and OUT_ELEMS divides the other; element i of a vector keeps its position
// (docs/numerics.md packing order), so gathering and splitting are plain concatenation.
module xk_stream_dwc #(
    parameter int IN_ELEMS = 1,
    parameter int OUT_ELEMS = 1,
    parameter int ELEM_BITS = 1
) (
    input  logic                          clk,
    input  logic                          rst_n,
    input  logic [IN_ELEMS*ELEM_BITS-1:0]  s_tdata,
    input  logic                          s_tvalid,
    output logic                          s_tready,
    output logic [OUT_ELEMS*ELEM_BITS-1:0] m_tdata,
    output logic                          m_tvalid,
    input  logic                          m_tready
);
  localparam int IN_W = IN_ELEMS * ELEM_BITS;
  localparam int OUT_W = OUT_ELEMS * ELEM_BITS;

  generate
    if (IN_ELEMS == OUT_ELEMS) begin : g_pass
      assign m_tdata  = s_tdata;
      assign m_tvalid = s_tvalid;
      assign s_tready = m_tready;
      logic unused;
      assign unused = &{1'b0, clk, rst_n};
    end else if (OUT_ELEMS > IN_ELEMS) begin : g_gather
      localparam int RATIO = OUT_ELEMS / IN_ELEMS;
      localparam int CNT_W = $clog2(RATIO + 1);
      logic [OUT_W-1:0] buffer;
      logic [CNT_W-1:0] count;
      logic full, push, pop;
      assign full     = count == CNT_W'(RATIO);
      assign m_tvalid = full;
      assign m_tdata  = buffer;
      assign s_tready = !full || m_tready;
      assign push     = s_tvalid && s_tready;
      assign pop      = full && m_tready;
      always_ff @(posedge clk) begin
        if (!rst_n) count <= '0;
        else if (pop) count <= push ? CNT_W'(1) : '0;
        else if (push) count <= count + 1'b1;
      end
      always_ff @(posedge clk) begin
        if (push) begin
          for (int i = 0; i < RATIO; i++) begin
            if ((pop ? '0 : count) == CNT_W'(i)) buffer[i*IN_W+:IN_W] <= s_tdata;
          end
        end
      end
    end else begin : g_split
      localparam int RATIO = IN_ELEMS / OUT_ELEMS;
      localparam int IDX_W = $clog2(RATIO);
      logic [IN_W-1:0] word;
      logic [IDX_W-1:0] index;
      logic holding, last;
      assign last     = index == IDX_W'(RATIO - 1);
      assign m_tvalid = holding;
      assign m_tdata  = word[index*OUT_W+:OUT_W];
      assign s_tready = !holding || (m_tready && last);
      always_ff @(posedge clk) begin
        if (!rst_n) begin
          holding <= 1'b0;
          index   <= '0;
        end else begin
          if (holding && m_tready) index <= last ? '0 : index + 1'b1;
          if (s_tvalid && s_tready) holding <= 1'b1;
          else if (holding && m_tready && last) holding <= 1'b0;
        end
      end
      always_ff @(posedge clk) if (s_tvalid && s_tready) word <= s_tdata;
    end
  endgenerate
endmodule
