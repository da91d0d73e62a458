// The value of one stream element as a signed OUT_BITS integer (docs/numerics.md, section 1): KIND 0
// bipolar (bit 1 is +1, bit 0 is -1), 1 unsigned, 2 signed (two's complement). The one place the RTL
// reads an element's meaning.
module xk_value #(
    parameter int BITS = 1,
    parameter int KIND = 0,
    parameter int OUT_BITS = BITS + 1
) (
    input  logic        [BITS-1:0]     x,
    output logic signed [OUT_BITS-1:0] value
);
  generate
    if (KIND == 0) begin : g_bipolar
      assign value = x[0] ? OUT_BITS'(1) : -(OUT_BITS'(1));
      if (BITS > 1) begin : g_unused
        logic unused;
        assign unused = &{1'b0, x[BITS-1:1]};
      end
    end else if (KIND == 1) begin : g_unsigned
      assign value = $signed(OUT_BITS'(x));
    end else begin : g_signed
      assign value = OUT_BITS'($signed(x));
    end
  endgenerate
endmodule
