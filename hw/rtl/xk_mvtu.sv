// Matrix-vector-threshold unit (MVTU): one fully connected layer, PE x SIMD folded, AXI4-Stream in/out.
//
// Each input vector arrives as SF = MW/SIMD beats of SIMD elements. The unit computes PE neurons at a
// time, SIMD inputs per cycle, so one vector takes SF * NF cycles (NF = MH/PE). The first neuron fold
// reads the stream and keeps the vector in a buffer for the other NF - 1 folds.
//
// Datapath per PE lane (docs/numerics.md):
//   IN_BITS == 1: XNOR of input and weight bits, popcount        (acc = popcount, 0 .. MW)
//   IN_BITS  > 1: unsigned input x, weight bit 1 -> +x, 0 -> -x  (acc = sum x * w)
// Output per neuron: USE_THRESHOLD ? (acc >= threshold, one bipolar bit) : acc (ACC_BITS, signed).
// Output beat nf carries neurons nf*PE .. nf*PE+PE-1, lane p at bits [p*OUT_BITS +: OUT_BITS].
//
// Pipeline: stage 0 counters and ROM addresses, stage 1 registered ROM words and input, accumulate,
// output register. One global enable (`advance`) stalls everything while the output is blocked.
module xk_mvtu #(
    parameter int MW = 64,
    parameter int MH = 64,
    parameter int PE = 4,
    parameter int SIMD = 8,
    parameter int IN_BITS = 1,
    parameter int ACC_BITS = 16,
    parameter bit USE_THRESHOLD = 1'b1,
    parameter WEIGHT_FILE = "weights.mem",
    parameter THRESHOLD_FILE = "thresholds.mem"
) (
    input  logic                     clk,
    input  logic                     rst_n,
    input  logic [SIMD*IN_BITS-1:0]  s_tdata,
    input  logic                     s_tvalid,
    output logic                     s_tready,
    output logic [PE*(USE_THRESHOLD ? 1 : ACC_BITS)-1:0] m_tdata,
    output logic                     m_tvalid,
    input  logic                     m_tready
);
  localparam int SF = MW / SIMD;
  localparam int NF = MH / PE;
  localparam int SF_W = SF > 1 ? $clog2(SF) : 1;
  localparam int NF_W = NF > 1 ? $clog2(NF) : 1;
  localparam int ADDR_W = SF * NF > 1 ? $clog2(SF * NF) : 1;
  localparam int POP_W = $clog2(SIMD + 1);  // popcount of one fold

  // ---- weight and threshold memories --------------------------------------------------------------
  logic [PE*SIMD-1:0] weight_rom[SF*NF];
  initial $readmemh(WEIGHT_FILE, weight_rom);

  // ---- stage 0: fold counters -----------------------------------------------------------------------
  logic [SF_W-1:0] sf;
  logic [NF_W-1:0] nf;
  logic [ADDR_W-1:0] addr;
  logic advance, s0_valid, fire;
  logic [SIMD*IN_BITS-1:0] s0_data;

  assign advance  = !m_tvalid || m_tready;
  assign s0_valid = (nf == '0) ? s_tvalid : 1'b1;
  assign s_tready = advance && (nf == '0);
  assign fire     = advance && s0_valid;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      sf <= '0;
      nf <= '0;
      addr <= '0;
    end else if (fire) begin
      if (sf == SF_W'(SF - 1)) begin
        sf <= '0;
        nf <= (nf == NF_W'(NF - 1)) ? '0 : nf + 1'b1;
      end else begin
        sf <= sf + 1'b1;
      end
      addr <= (addr == ADDR_W'(SF * NF - 1)) ? '0 : addr + 1'b1;
    end
  end

  generate
    if (NF > 1) begin : g_buffer
      logic [SIMD*IN_BITS-1:0] in_buffer[SF];
      always_ff @(posedge clk) if (fire && nf == '0) in_buffer[sf] <= s_tdata;
      assign s0_data = (nf == '0) ? s_tdata : in_buffer[sf];
    end else begin : g_no_buffer
      assign s0_data = s_tdata;
    end
  endgenerate

  // ---- stage 1: accumulate --------------------------------------------------------------------------
  logic s1_valid, s1_first, s1_last;
  logic [SIMD*IN_BITS-1:0] s1_data;
  logic [PE*SIMD-1:0] s1_weights;

  always_ff @(posedge clk) begin
    if (!rst_n) s1_valid <= 1'b0;
    else if (advance) s1_valid <= s0_valid;
  end
  always_ff @(posedge clk) begin
    if (fire) begin
      s1_data    <= s0_data;
      s1_weights <= weight_rom[addr];
      s1_first   <= (sf == '0);
      s1_last    <= (sf == SF_W'(SF - 1));
    end
  end

  logic signed [ACC_BITS-1:0] acc[PE];
  logic signed [ACC_BITS-1:0] acc_next[PE];

  for (genvar p = 0; p < PE; p++) begin : g_lane
    logic signed [ACC_BITS-1:0] partial;
    if (IN_BITS == 1) begin : g_xnor_popcount
      logic [POP_W-1:0] popcount;
      always_comb begin
        popcount = '0;
        for (int s = 0; s < SIMD; s++) begin
          popcount = popcount + {{(POP_W - 1){1'b0}}, s1_data[s] ~^ s1_weights[p*SIMD+s]};
        end
      end
      // dot product of the fold from its popcount: 2 p - SIMD
      assign partial = $signed({{(ACC_BITS - POP_W - 1) {1'b0}}, popcount, 1'b0}) - ACC_BITS'(SIMD);
    end else begin : g_int_times_sign
      always_comb begin
        partial = '0;
        for (int s = 0; s < SIMD; s++) begin
          if (s1_weights[p*SIMD+s]) partial = partial + ACC_BITS'(s1_data[s*IN_BITS+:IN_BITS]);
          else partial = partial - ACC_BITS'(s1_data[s*IN_BITS+:IN_BITS]);
        end
      end
    end
    assign acc_next[p] = (s1_first ? '0 : acc[p]) + partial;
    always_ff @(posedge clk) if (advance && s1_valid) acc[p] <= acc_next[p];
  end

  // ---- output ------------------------------------------------------------------------------------------
  always_ff @(posedge clk) begin
    if (!rst_n) m_tvalid <= 1'b0;
    else if (advance) m_tvalid <= s1_valid && s1_last;
  end

  generate
    if (USE_THRESHOLD) begin : g_threshold
      logic [PE*ACC_BITS-1:0] threshold_rom[NF];
      initial $readmemh(THRESHOLD_FILE, threshold_rom);
      logic [NF_W-1:0] s1_nf;  // the fold that stage 1 works on
      always_ff @(posedge clk) if (fire) s1_nf <= nf;
      logic [PE*ACC_BITS-1:0] thresholds;
      assign thresholds = threshold_rom[s1_nf];
      always_ff @(posedge clk) begin
        if (advance && s1_valid && s1_last) begin
          for (int p = 0; p < PE; p++) begin
            m_tdata[p] <= acc_next[p] >= $signed(thresholds[p*ACC_BITS+:ACC_BITS]);
          end
        end
      end
    end else begin : g_raw
      always_ff @(posedge clk) begin
        if (advance && s1_valid && s1_last) begin
          for (int p = 0; p < PE; p++) m_tdata[p*ACC_BITS+:ACC_BITS] <= acc_next[p];
        end
      end
    end
  endgenerate
endmodule
