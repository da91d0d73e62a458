// AXI4-Lite slave of the writable weights (hw/config_map.py holds the register map): each register write becomes
// one cycle of cfg_we with its register address (the byte address / 4) and data, which the top routes to the
// layer whose region it falls in; reads return the ID (register 0) and the number of writable layers
// (register 1), else 0. A write needs all four byte strobes (else SLVERR, nothing written). One transaction at a
// time per direction: the address and data channels are taken in any order, the response follows.
module xk_axil_config #(
    parameter int ADDR_W = 12,
    parameter int LAYERS = 1,
    parameter logic [31:0] ID = 32'h584B5731
) (
    input  logic              clk,
    input  logic              rst_n,
    input  logic [ADDR_W-1:0] s_axil_awaddr,
    input  logic              s_axil_awvalid,
    output logic              s_axil_awready,
    input  logic [31:0]       s_axil_wdata,
    input  logic [3:0]        s_axil_wstrb,
    input  logic              s_axil_wvalid,
    output logic              s_axil_wready,
    output logic [1:0]        s_axil_bresp,
    output logic              s_axil_bvalid,
    input  logic              s_axil_bready,
    input  logic [ADDR_W-1:0] s_axil_araddr,
    input  logic              s_axil_arvalid,
    output logic              s_axil_arready,
    output logic [31:0]       s_axil_rdata,
    output logic [1:0]        s_axil_rresp,
    output logic              s_axil_rvalid,
    input  logic              s_axil_rready,
    output logic              cfg_we,
    output logic [ADDR_W-3:0] cfg_addr,
    output logic [31:0]       cfg_data
);
  // ---- writes: hold the address and the data until both are in, then write and respond -------------------
  logic have_addr, have_data;
  logic [ADDR_W-3:0] addr;
  logic [31:0] data;
  logic whole;  // all four strobes
  assign s_axil_awready = !have_addr && !s_axil_bvalid;
  assign s_axil_wready = !have_data && !s_axil_bvalid;
  always_ff @(posedge clk) begin
    if (!rst_n) begin
      have_addr <= 1'b0;
      have_data <= 1'b0;
      s_axil_bvalid <= 1'b0;
      cfg_we <= 1'b0;
    end else begin
      cfg_we <= 1'b0;
      if (s_axil_awvalid && s_axil_awready) begin
        have_addr <= 1'b1;
        addr <= s_axil_awaddr[ADDR_W-1:2];
      end
      if (s_axil_wvalid && s_axil_wready) begin
        have_data <= 1'b1;
        data <= s_axil_wdata;
        whole <= s_axil_wstrb == 4'hF;
      end
      if (have_addr && have_data) begin
        have_addr <= 1'b0;
        have_data <= 1'b0;
        cfg_we <= whole;
        cfg_addr <= addr;
        cfg_data <= data;
        s_axil_bresp <= whole ? 2'b00 : 2'b10;
        s_axil_bvalid <= 1'b1;
      end else if (s_axil_bvalid && s_axil_bready) begin
        s_axil_bvalid <= 1'b0;
      end
    end
  end

  // ---- reads: the ID and the layer count -----------------------------------------------------------------
  assign s_axil_arready = !s_axil_rvalid;
  assign s_axil_rresp = 2'b00;
  always_ff @(posedge clk) begin
    if (!rst_n) begin
      s_axil_rvalid <= 1'b0;
    end else if (s_axil_arvalid && s_axil_arready) begin
      s_axil_rvalid <= 1'b1;
      s_axil_rdata <= s_axil_araddr[ADDR_W-1:2] == '0 ? ID
                    : s_axil_araddr[ADDR_W-1:2] == (ADDR_W-2)'(1) ? 32'(LAYERS) : '0;
    end else if (s_axil_rvalid && s_axil_rready) begin
      s_axil_rvalid <= 1'b0;
    end
  end
  logic unused;
  assign unused = &{1'b0, s_axil_awaddr[1:0], s_axil_araddr[1:0]};
endmodule
