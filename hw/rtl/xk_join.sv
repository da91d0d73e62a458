// Join two streams beat by beat: a residual sum (MODE 0: the elementwise sum of the values, bipolar
// bits counting -1 / +1, as a signed OUT_BITS integer) or a channel concatenation (MODE 1: A's elements
// then B's, one pixel each). A beat leaves when both inputs have one.
module xk_join #(
    parameter int MODE = 0,
    parameter int A_ELEMS = 1,
    parameter int B_ELEMS = 1,
    parameter int A_BITS = 1,
    parameter int B_BITS = 1,
    parameter int A_KIND = 0,  // 0 bipolar, 1 unsigned, 2 signed
    parameter int B_KIND = 0,
    parameter int OUT_BITS = 2,
    localparam int OUT_ELEMS = MODE == 0 ? A_ELEMS : A_ELEMS + B_ELEMS
) (
    input  logic                        clk,
    input  logic                        rst_n,
    input  logic [A_ELEMS*A_BITS-1:0]   a_tdata,
    input  logic                        a_tvalid,
    output logic                        a_tready,
    input  logic [B_ELEMS*B_BITS-1:0]   b_tdata,
    input  logic                        b_tvalid,
    output logic                        b_tready,
    output logic [OUT_ELEMS*OUT_BITS-1:0] m_tdata,
    output logic                        m_tvalid,
    input  logic                        m_tready
);
  logic advance, fire;
  assign advance = !m_tvalid || m_tready;
  assign fire = advance && a_tvalid && b_tvalid;
  assign a_tready = advance && b_tvalid;
  assign b_tready = advance && a_tvalid;

  logic [OUT_ELEMS*OUT_BITS-1:0] joined;
  generate
    if (MODE == 0) begin : g_add
      for (genvar e = 0; e < A_ELEMS; e++) begin : g_elem
        logic signed [OUT_BITS-1:0] a, b;
        xk_value #(.BITS(A_BITS), .KIND(A_KIND), .OUT_BITS(OUT_BITS)) u_a (.x(a_tdata[e*A_BITS+:A_BITS]), .value(a));
        xk_value #(.BITS(B_BITS), .KIND(B_KIND), .OUT_BITS(OUT_BITS)) u_b (.x(b_tdata[e*B_BITS+:B_BITS]), .value(b));
        assign joined[e*OUT_BITS+:OUT_BITS] = a + b;
      end
    end else begin : g_concat
      assign joined = {b_tdata, a_tdata};
    end
  endgenerate

  always_ff @(posedge clk) begin
    if (!rst_n) m_tvalid <= 1'b0;
    else if (advance) m_tvalid <= a_tvalid && b_tvalid;
  end
  always_ff @(posedge clk) if (fire) m_tdata <= joined;
endmodule
