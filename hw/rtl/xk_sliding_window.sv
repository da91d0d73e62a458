// Sliding-window generator: turns a feature map streamed pixel by pixel (row-major, one pixel of C
// elements per beat, channel c at field c) into the window vectors of a convolution or pooling: for
// each output position (oy, ox), row-major, the KH x KW x C window in (ky, kx, c) order, SIMD elements
// per beat. SIMD divides C (the window walks ky, kx, channel fold), or SIMD = KH * KW * C (one whole
// window per beat).
//
// A grouped convolution (GROUPS > 1, CG = C / GROUPS channels each) reads each group's window in turn:
// (g, ky, kx, c) with c local to the group, so the MVTU after it sees one group's inputs at a time and
// never multiplies by the zeros outside its group. SIMD then divides CG or equals KH * KW * CG.
//
// Positions outside the input (padding) read PAD_VALUE. With BIPOLAR_TO_INT, 1-bit bipolar inputs leave
// as 2-bit signed integers (+1 / -1) and padding as 0: padding is the real value 0, which a bipolar bit
// cannot hold (docs/numerics.md, Convolution and padding).
//
// Two frame buffers: the next frame is written while windows of the current one are read, so a frame
// takes max(H * W input beats, HO * WO * window beats) cycles in steady state. When SIMD divides the
// channels, a beat's elements are one pixel's, so the frames are one memory of 2 * H * W pixel words with
// one write and one registered read port (block RAM on an FPGA: CIFAR-sized maps fit); a whole window per
// beat reads KH * KW pixels at once, so those frames are registers.
module xk_sliding_window #(
    parameter int C = 1,
    parameter int H = 28,
    parameter int W = 28,
    parameter int KH = 3,
    parameter int KW = 3,
    parameter int SH = 1,
    parameter int SW = 1,
    parameter int PAD_T = 0,
    parameter int PAD_L = 0,
    parameter int HO = 26,
    parameter int WO = 26,
    parameter int SIMD = 1,
    parameter int GROUPS = 1,
    parameter int BITS = 1,
    parameter bit BIPOLAR_TO_INT = 1'b0,
    parameter logic [BITS-1:0] PAD_VALUE = '0,
    localparam int OUT_BITS = BIPOLAR_TO_INT ? 2 : BITS
) (
    input  logic                     clk,
    input  logic                     rst_n,
    input  logic [C*BITS-1:0]        s_tdata,
    input  logic                     s_tvalid,
    output logic                     s_tready,
    output logic [SIMD*OUT_BITS-1:0] m_tdata,
    output logic                     m_tvalid,
    input  logic                     m_tready
);
  localparam int PIXELS = H * W;
  localparam int CG = C / GROUPS;
  localparam bit WHOLE = SIMD == KH * KW * CG;
  localparam int CF = WHOLE ? 1 : CG / SIMD;  // channel folds per window position
  localparam int PIX_W = PIXELS > 1 ? $clog2(PIXELS) : 1;

  logic [1:0] full;

  // ---- write side -----------------------------------------------------------------------------------
  logic wr_bank;
  logic [PIX_W-1:0] wr_pixel;
  logic wr_done;
  assign s_tready = !full[wr_bank];
  assign wr_done = s_tvalid && s_tready && wr_pixel == PIX_W'(PIXELS - 1);
  always_ff @(posedge clk) begin
    if (!rst_n) begin
      wr_bank <= 1'b0;
      wr_pixel <= '0;
    end else if (s_tvalid && s_tready) begin
      wr_pixel <= wr_done ? '0 : wr_pixel + 1'b1;
      if (wr_done) wr_bank <= !wr_bank;
    end
  end

  // ---- read side: counters over (oy, ox, g, ky, kx, cf) -------------------------------------------------
  logic rd_bank, rd_fire, rd_done;
  int oy, ox, g, ky, kx, cf;
  assign rd_fire = full[rd_bank] && (!m_tvalid || m_tready);
  assign rd_done = rd_fire && oy == HO - 1 && ox == WO - 1 && g == GROUPS - 1
                   && (WHOLE || (ky == KH - 1 && kx == KW - 1 && cf == CF - 1));

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      rd_bank <= 1'b0;
      {oy, ox, g, ky, kx, cf} <= '0;
    end else if (rd_fire) begin
      if (rd_done) rd_bank <= !rd_bank;
      if (!WHOLE && cf != CF - 1) cf <= cf + 1;
      else begin
        cf <= 0;
        if (!WHOLE && kx != KW - 1) kx <= kx + 1;
        else begin
          kx <= 0;
          if (!WHOLE && ky != KH - 1) ky <= ky + 1;
          else begin
            ky <= 0;
            if (g != GROUPS - 1) g <= g + 1;
            else begin
              g <= 0;
              if (ox != WO - 1) ox <= ox + 1;
              else begin
                ox <= 0;
                oy <= (oy == HO - 1) ? 0 : oy + 1;
              end
            end
          end
        end
      end
    end
  end

  always_ff @(posedge clk) begin
    if (!rst_n) full <= '0;
    else begin
      for (int b = 0; b < 2; b++) begin
        if (wr_done && wr_bank == b[0]) full[b] <= 1'b1;
        else if (rd_done && rd_bank == b[0]) full[b] <= 1'b0;
      end
    end
  end

  // ---- window elements of this beat ------------------------------------------------------------------
  logic [SIMD*BITS-1:0] selected;  // the stored element of each lane (PAD_VALUE outside the map)
  logic [SIMD-1:0] lane_in_map;
  generate
    if (WHOLE) begin : g_registers
      logic [C*BITS-1:0] frame[2][PIXELS];
      always_ff @(posedge clk) if (s_tvalid && s_tready) frame[wr_bank][wr_pixel] <= s_tdata;
      logic [SIMD*BITS-1:0] lanes;
      logic [SIMD-1:0] lanes_in_map;
      always_comb begin
        for (int s = 0; s < SIMD; s++) begin
          /* verilator lint_off UNUSEDSIGNAL */  // index arithmetic in int; only the low bits select
          int iy, ix, c;
          /* verilator lint_on UNUSEDSIGNAL */
          iy = oy * SH + s / (KW * CG) - PAD_T;
          ix = ox * SW + (s / CG) % KW - PAD_L;
          c = g * CG + s % CG;
          lanes_in_map[s] = iy >= 0 && iy < H && ix >= 0 && ix < W;
          lanes[s*BITS+:BITS] = lanes_in_map[s] ? frame[rd_bank][PIX_W'(lanes_in_map[s] ? iy * W + ix : 0)][c*BITS+:BITS]
                                                : PAD_VALUE;
        end
      end
      // the beat is registered when read (rd_fire), as the memory's read port below
      always_ff @(posedge clk) if (rd_fire) {selected, lane_in_map} <= {lanes, lanes_in_map};
    end else begin : g_memory
      localparam int DEPTH = 2 * PIXELS;
      localparam int ADDR_W = $clog2(DEPTH);
      logic [C*BITS-1:0] frames[DEPTH];
      logic [C*BITS-1:0] pixel;  // the memory's registered read
      logic in_map;
      int base;  // the beat's first channel in the pixel
      always_ff @(posedge clk) begin
        if (s_tvalid && s_tready) frames[wr_bank ? ADDR_W'(PIXELS) + ADDR_W'(wr_pixel) : ADDR_W'(wr_pixel)] <= s_tdata;
      end
      /* verilator lint_off UNUSEDSIGNAL */  // index arithmetic in int; only the low bits address
      int iy, ix;
      /* verilator lint_on UNUSEDSIGNAL */
      logic rd_in_map;
      logic [ADDR_W-1:0] rd_addr;
      always_comb begin
        iy = oy * SH + ky - PAD_T;
        ix = ox * SW + kx - PAD_L;
        rd_in_map = iy >= 0 && iy < H && ix >= 0 && ix < W;
        rd_addr = ADDR_W'(rd_in_map ? iy * W + ix : 0) + (rd_bank ? ADDR_W'(PIXELS) : '0);
      end
      always_ff @(posedge clk) begin
        if (rd_fire) begin
          pixel <= frames[rd_addr];
          in_map <= rd_in_map;
          base <= g * CG + cf * SIMD;
        end
      end
      always_comb begin
        for (int s = 0; s < SIMD; s++) begin
          selected[s*BITS+:BITS] = in_map ? pixel[(base + s)*BITS+:BITS] : PAD_VALUE;
          lane_in_map[s] = in_map;
        end
      end
    end
  endgenerate

  logic [SIMD*OUT_BITS-1:0] beat;
  generate
    if (BIPOLAR_TO_INT) begin : g_to_int
      for (genvar s = 0; s < SIMD; s++) begin : g_lane
        logic signed [1:0] value;
        xk_value #(.BITS(1), .KIND(0), .OUT_BITS(2)) u_value (.x(selected[s]), .value(value));
        assign beat[s*2+:2] = lane_in_map[s] ? value : 2'sd0;  // padding: the real value 0
      end
    end else begin : g_pass
      assign beat = selected;
      logic unused;
      assign unused = &{1'b0, lane_in_map};
    end
  endgenerate

  always_ff @(posedge clk) begin
    if (!rst_n) m_tvalid <= 1'b0;
    else if (!m_tvalid || m_tready) m_tvalid <= full[rd_bank];
  end
  assign m_tdata = beat;
endmodule
