// Matrix-vector-threshold unit (MVTU): one fully connected layer (or a convolution fed by
// xk_sliding_window), PE x SIMD folded, AXI4-Stream in/out.
//
// Each input vector arrives as SF = MW/SIMD beats of SIMD elements. The unit computes PE neurons at a
// time, SIMD inputs per cycle, so one vector takes SF * NF cycles (NF = MH/PE). The first neuron fold
// reads the stream and keeps the vector in a buffer for the other NF - 1 folds.
//
// Grouped convolutions (GROUPS > 1): MW is one group's window and the vector arrives group by group
// (xk_sliding_window with the same GROUPS), GROUPS * SF beats. The NF / GROUPS neuron folds of group g
// use only its inputs: the first of them reads group g's SF beats from the stream, the others the
// buffer, so a vector takes SF * NF cycles, the MACs of the layer without the zeros of a dense matrix.
// PE divides MH / GROUPS (a neuron fold never spans two groups).
//
// Zero-tile skipping (SPARSE): a vector takes N_TILES cycles instead of SF * NF. TILE_FILE, word t, holds
// step t's {compute, last of its neuron fold, sf}: the first neuron fold has a step per input beat (it reads
// the stream and buffers it), every later fold a step per nonzero PE x SIMD tile (or one step, computing
// nothing, when it has none: a fold still writes its outputs). The weight memory holds the N_WORDS tiles
// that compute, in order; a step that does not compute adds 0 (packing.tile_schedule). GROUPS must be 1.
//
// Element kinds (docs/numerics.md): IN_KIND 0 bipolar (1 bit, 1 = +1), 1 unsigned, 2 signed
// (IN_BITS each); W_BITS 1 bipolar, else signed two's complement. Datapath per PE lane and fold:
//   bipolar x bipolar:  2 * popcount(XNOR) - SIMD     (xk_xnor_popcount)
//   bipolar x ternary:  2 * popcount(keep & (x ^ negative)) - popcount(keep)   (TERNARY: W_BITS 2 with
//                       weights in {-1, 0, +1}, a pruned binary layer: 00 is 0, 01 is +1, 11 is -1)
//   integer x bipolar:  sum of +x or -x               (no multiplier)
//   any x integer:      sum of signed products        (bit-parallel multipliers)
// Output per neuron: N_THRESH == 0: the accumulator (ACC_BITS, signed); else the multi-threshold
// activation OUT_BASE + #{l : acc >= T[l]} in OUT_BITS (two's complement when OUT_BASE < 0).
// Output beat nf carries neurons nf*PE .. nf*PE+PE-1, lane p at bits [p*OUT_W +: OUT_W].
//
// Writable weights (WEIGHT_STYLE 3, hw/config_map.py): the weight and threshold memories are RAMs whose
// 32-bit chunks the cfg port writes (register a of the layer's region: weight word a >> W_STRIDE_LOG2, chunk
// a % 2^W_STRIDE_LOG2; from T_OFFSET the threshold words alike); the .mem files are their reset values. The
// port writes while no inference runs (a write during one changes weights the datapath is reading).
//
// Pipeline (one global enable, `advance`, stalls everything while the output is blocked):
//   s0 fold counters and ROM address, s1 registered ROM word and input, s2 registered partial sums
//   (popcount / dot product of the fold), s3 accumulate, compare and output register.
module xk_mvtu #(
    parameter int MW = 64,
    parameter int MH = 64,
    parameter int PE = 4,
    parameter int SIMD = 8,
    parameter int GROUPS = 1,
    parameter int IN_BITS = 1,
    parameter int IN_KIND = 0,
    parameter int W_BITS = 1,
    parameter int ACC_BITS = 16,
    parameter int N_THRESH = 1,
    parameter int OUT_BITS = 1,
    parameter int OUT_BASE = 0,
    parameter WEIGHT_FILE = "weights.mem",
    parameter THRESHOLD_FILE = "thresholds.mem",
    parameter int WEIGHT_STYLE = 0,  // 0: the tool's choice, 1: block RAM, 2: logic (constants folded into LUTs),
                                     // 3: writable RAMs (weights and thresholds) behind the cfg port
    parameter int CFG_W = 1,  // register address bits of the layer's region
    parameter int W_STRIDE_LOG2 = 0,
    parameter int T_STRIDE_LOG2 = 0,
    parameter int T_OFFSET = 0,
    parameter bit TERNARY = 1'b0,  // W_BITS 2 weights are all -1, 0 or +1 (set by the generator from the IR)
    parameter bit SPARSE = 1'b0,  // zero tiles skipped: N_TILES stored tiles, their places in TILE_FILE
    parameter int N_TILES = (MW / SIMD) * (MH / PE),
    parameter int N_WORDS = N_TILES,
    parameter TILE_FILE = "tiles.mem",
    localparam int OUT_W = N_THRESH == 0 ? ACC_BITS : OUT_BITS
) (
    input  logic                     clk,
    input  logic                     rst_n,
    input  logic [SIMD*IN_BITS-1:0]  s_tdata,
    input  logic                     s_tvalid,
    output logic                     s_tready,
    output logic [PE*OUT_W-1:0]      m_tdata,
    output logic                     m_tvalid,
    input  logic                     m_tready,
    input  logic                     cfg_we,
    input  logic [CFG_W-1:0]         cfg_addr,
    input  logic [31:0]              cfg_data
);
  localparam int SF = MW / SIMD;
  localparam int NF = MH / PE;
  localparam int NF_G = NF / GROUPS;  // neuron folds per group
  localparam int SF_W = SF > 1 ? $clog2(SF) : 1;
  localparam int NF_W = NF > 1 ? $clog2(NF) : 1;
  localparam int POP_W = $clog2(SIMD + 1);
  localparam bit XNOR = IN_KIND == 0 && W_BITS == 1;
  localparam bit MASKED_XNOR = IN_KIND == 0 && W_BITS == 2 && TERNARY;
  // an integer fold's terms (+x or -x, or x * w) and their sum
  localparam int TERM_BITS = W_BITS == 1 ? IN_BITS + 2 : IN_BITS + W_BITS + 2;
  localparam int SUM_BITS = TERM_BITS + $clog2(SIMD);

  // ---- s0: fold counters ----------------------------------------------------------------------------
  localparam int DEPTH = SPARSE ? (N_WORDS > 0 ? N_WORDS : 1) : SF * NF;  // weight memory words
  localparam int ADDR_W = DEPTH > 1 ? $clog2(DEPTH) : 1;
  logic [SF_W-1:0] sf;
  logic [NF_W-1:0] nf;
  logic [ADDR_W-1:0] addr;  // of the weight memory
  logic advance, s0_valid, fire, reading, s0_first, s0_last, s0_compute;
  logic [SIMD*IN_BITS-1:0] s0_data;

  assign advance  = !m_tvalid || m_tready;
  assign s0_valid = reading ? s_tvalid : 1'b1;
  assign s_tready = advance && reading;
  assign fire     = advance && s0_valid;

  generate
    if (SPARSE) begin : g_tile_schedule
      localparam int STEP_W = N_TILES > 1 ? $clog2(N_TILES) : 1;
      logic [SF_W+1:0] tile_rom[N_TILES];  // {compute, last, sf}
      initial $readmemh(TILE_FILE, tile_rom);
      logic [SF_W+1:0] tile;
      logic [STEP_W-1:0] step;
      logic at_first;
      assign tile = tile_rom[step];
      assign sf = tile[SF_W-1:0];
      assign s0_last = tile[SF_W];
      assign s0_compute = tile[SF_W+1];
      assign s0_first = at_first;
      assign reading = nf == '0;
      always_ff @(posedge clk) begin
        if (!rst_n) begin
          nf <= '0;
          step <= '0;
          addr <= '0;
          at_first <= 1'b1;
        end else if (fire) begin
          step <= (step == STEP_W'(N_TILES - 1)) ? '0 : step + 1'b1;
          if (s0_compute) addr <= (addr == ADDR_W'(DEPTH - 1)) ? '0 : addr + 1'b1;
          at_first <= s0_last;
          if (s0_last) nf <= (nf == NF_W'(NF - 1)) ? '0 : nf + 1'b1;
        end
      end
    end else begin : g_fold_counters
      logic [NF_W-1:0] nf_in_group;
      assign reading  = nf_in_group == '0;  // the group's first neuron fold takes its inputs from the stream
      assign s0_first = sf == '0;
      assign s0_last  = sf == SF_W'(SF - 1);
      assign s0_compute = 1'b1;
      always_ff @(posedge clk) begin
        if (!rst_n) begin
          sf <= '0;
          nf <= '0;
          nf_in_group <= '0;
          addr <= '0;
        end else if (fire) begin
          if (sf == SF_W'(SF - 1)) begin
            sf <= '0;
            nf <= (nf == NF_W'(NF - 1)) ? '0 : nf + 1'b1;
            nf_in_group <= (nf_in_group == NF_W'(NF_G - 1)) ? '0 : nf_in_group + 1'b1;
          end else begin
            sf <= sf + 1'b1;
          end
          addr <= (addr == ADDR_W'(SF * NF - 1)) ? '0 : addr + 1'b1;
        end
      end
    end
  endgenerate

  generate
    if (NF_G > 1) begin : g_buffer
      logic [SIMD*IN_BITS-1:0] in_buffer[SF];
      always_ff @(posedge clk) if (fire && reading) in_buffer[sf] <= s_tdata;
      assign s0_data = reading ? s_tdata : in_buffer[sf];
    end else begin : g_no_buffer
      assign s0_data = s_tdata;
    end
  endgenerate

  // ---- weight memory: word nf * SF + sf (SPARSE: tile t), field p * SIMD + s ------------------------------------------
  // (rom_style is read by Yosys and Vivado; the generator chooses per layer by the board's budget)
  logic [PE*SIMD*W_BITS-1:0] s1_weights;  // the s1 register of the ROM word (a block RAM's output)
  generate
    if (WEIGHT_STYLE == 1) begin : g_block_rom
      (* rom_style = "block" *) logic [PE*SIMD*W_BITS-1:0] weight_rom[DEPTH];
      initial $readmemh(WEIGHT_FILE, weight_rom);
      always_ff @(posedge clk) if (fire) s1_weights <= weight_rom[addr];
    end else if (WEIGHT_STYLE == 2) begin : g_logic_rom
      (* rom_style = "logic" *) logic [PE*SIMD*W_BITS-1:0] weight_rom[DEPTH];
      initial $readmemh(WEIGHT_FILE, weight_rom);
      always_ff @(posedge clk) if (fire) s1_weights <= weight_rom[addr];
    end else if (WEIGHT_STYLE == 3) begin : g_writable
      localparam int CHUNKS = (PE * SIMD * W_BITS + 31) / 32;
      logic [CHUNKS*32-1:0] weight_ram[DEPTH];
      initial $readmemh(WEIGHT_FILE, weight_ram);
      logic [CHUNKS*32-1:0] word;
      always_ff @(posedge clk) if (fire) word <= weight_ram[addr];
      assign s1_weights = word[PE*SIMD*W_BITS-1:0];
      /* verilator lint_off UNUSEDSIGNAL */  // register arithmetic in int; the chunk pads the word to 32 bits
      int unsigned reg_index;
      logic [CHUNKS*32-1:0] unused_pad;
      /* verilator lint_on UNUSEDSIGNAL */
      assign reg_index = 32'(cfg_addr);
      assign unused_pad = word;
      always_ff @(posedge clk) begin
        for (int c = 0; c < CHUNKS; c++) begin
          if (cfg_we && reg_index < T_OFFSET && (reg_index & ((1 << W_STRIDE_LOG2) - 1)) == c
              && (reg_index >> W_STRIDE_LOG2) < DEPTH)
            weight_ram[ADDR_W'(reg_index >> W_STRIDE_LOG2)][c*32+:32] <= cfg_data;
        end
      end
    end else begin : g_rom
      logic [PE*SIMD*W_BITS-1:0] weight_rom[DEPTH];
      initial $readmemh(WEIGHT_FILE, weight_rom);
      always_ff @(posedge clk) if (fire) s1_weights <= weight_rom[addr];
    end
    if (WEIGHT_STYLE != 3) begin : g_no_cfg
      logic unused_cfg;
      assign unused_cfg = &{1'b0, cfg_we, cfg_addr, cfg_data};
    end
  endgenerate

  // ---- s1: ROM word and input ---------------------------------------------------------------------
  logic s1_valid, s1_first, s1_last, s1_compute;
  logic [NF_W-1:0] s1_nf;
  logic [SIMD*IN_BITS-1:0] s1_data;

  always_ff @(posedge clk) begin
    if (!rst_n) s1_valid <= 1'b0;
    else if (advance) s1_valid <= s0_valid;
  end
  always_ff @(posedge clk) begin
    if (fire) begin
      s1_data    <= s0_data;
      s1_first   <= s0_first;
      s1_last    <= s0_last;
      s1_compute <= s0_compute;
      s1_nf      <= nf;
    end
  end

  // ---- s2: partial sum of the fold per lane --------------------------------------------------------
  logic s2_valid, s2_first, s2_last;
  logic [NF_W-1:0] s2_nf;
  logic signed [ACC_BITS-1:0] s2_partial[PE];

  always_ff @(posedge clk) begin
    if (!rst_n) s2_valid <= 1'b0;
    else if (advance) s2_valid <= s1_valid;
  end
  always_ff @(posedge clk) begin
    if (advance && s1_valid) begin
      s2_first <= s1_first;
      s2_last  <= s1_last;
      s2_nf    <= s1_nf;
    end
  end

  for (genvar p = 0; p < PE; p++) begin : g_lane
    logic signed [ACC_BITS-1:0] partial;
    if (XNOR) begin : g_xnor_popcount
      logic [POP_W-1:0] popcount;
      xk_xnor_popcount #(.N(SIMD)) u_popcount (.x(s1_data), .w(s1_weights[p*SIMD+:SIMD]), .count(popcount));
      // dot product of the fold from its popcount: 2 p - SIMD
      assign partial = $signed({{(ACC_BITS - POP_W - 1) {1'b0}}, popcount, 1'b0}) - ACC_BITS'(SIMD);
    end else if (MASKED_XNOR) begin : g_masked_xnor
      // a zero weight drops out of both popcounts; with constant weights synthesis removes it entirely
      localparam int DOT_BITS = POP_W + 2;
      logic [SIMD-1:0] keep, negative;
      logic [POP_W-1:0] agree, kept;
      logic signed [DOT_BITS-1:0] dot;
      for (genvar s = 0; s < SIMD; s++) begin : g_weight_bits
        assign keep[s]     = s1_weights[(p*SIMD+s)*2];
        assign negative[s] = s1_weights[(p*SIMD+s)*2+1];
      end
      xk_popcount #(.N(SIMD)) u_agree (.bits(keep & (s1_data ^ negative)), .count(agree));
      xk_popcount #(.N(SIMD)) u_kept (.bits(keep), .count(kept));
      assign dot = $signed({1'b0, agree, 1'b0}) - $signed({2'b0, kept});
      assign partial = ACC_BITS'(dot);  // the fold's sum fits the accumulator: its range is the layer's
      if (DOT_BITS > ACC_BITS) begin : g_unused_dot_bits
        logic unused_dot;
        assign unused_dot = &{1'b0, dot[DOT_BITS-1:ACC_BITS]};
      end
    end else begin : g_integer
      // elements and weights as signed values one bit wider than stored (xk_value owns the bit meaning)
      logic signed [IN_BITS:0] in_values[SIMD];
      for (genvar s = 0; s < SIMD; s++) begin : g_in_value
        xk_value #(.BITS(IN_BITS), .KIND(IN_KIND), .OUT_BITS(IN_BITS + 1)) u_value (
            .x(s1_data[s*IN_BITS+:IN_BITS]), .value(in_values[s]));
      end
      // terms of the fold (+x or -x, or x * w), summed by a balanced tree
      logic [SIMD*TERM_BITS-1:0] terms;
      logic signed [SUM_BITS-1:0] sum;
      if (W_BITS == 1) begin : g_int_times_sign
        for (genvar s = 0; s < SIMD; s++) begin : g_term
          assign terms[s*TERM_BITS+:TERM_BITS] = s1_weights[p*SIMD+s] ? TERM_BITS'(in_values[s])
                                                                      : -(TERM_BITS'(in_values[s]));
        end
      end else begin : g_int_times_int
        logic signed [W_BITS:0] w_values[SIMD];
        for (genvar s = 0; s < SIMD; s++) begin : g_term
          xk_value #(.BITS(W_BITS), .KIND(2), .OUT_BITS(W_BITS + 1)) u_value (
              .x(s1_weights[(p*SIMD+s)*W_BITS+:W_BITS]), .value(w_values[s]));
          assign terms[s*TERM_BITS+:TERM_BITS] = TERM_BITS'(in_values[s] * w_values[s]);
        end
      end
      xk_adder_tree #(.N(SIMD), .BITS(TERM_BITS)) u_sum (.terms, .sum);
      assign partial = ACC_BITS'(sum);  // the fold's sum fits the accumulator: its range is the layer's
      if (SUM_BITS > ACC_BITS) begin : g_unused_sum_bits
        logic unused_sum;
        assign unused_sum = &{1'b0, sum[SUM_BITS-1:ACC_BITS]};
      end
    end
    // a step without weights (a skipping unit's zero tile) adds nothing
    always_ff @(posedge clk) if (advance && s1_valid) s2_partial[p] <= s1_compute ? partial : '0;
  end

  // ---- s3: accumulate and output --------------------------------------------------------------------
  logic signed [ACC_BITS-1:0] acc[PE];
  logic signed [ACC_BITS-1:0] acc_next[PE];
  for (genvar p = 0; p < PE; p++) begin : g_acc
    assign acc_next[p] = (s2_first ? '0 : acc[p]) + s2_partial[p];
    always_ff @(posedge clk) if (advance && s2_valid) acc[p] <= acc_next[p];
  end

  always_ff @(posedge clk) begin
    if (!rst_n) m_tvalid <= 1'b0;
    else if (advance) m_tvalid <= s2_valid && s2_last;
  end

  generate
    if (N_THRESH > 0) begin : g_threshold
      // word nf, field p * N_THRESH + l: threshold l of neuron nf * PE + p
      logic [PE*N_THRESH*ACC_BITS-1:0] thresholds;
      logic [PE*OUT_BITS-1:0] levels;
      if (WEIGHT_STYLE == 3) begin : g_threshold_ram
        localparam int T_CHUNKS = (PE * N_THRESH * ACC_BITS + 31) / 32;
        logic [T_CHUNKS*32-1:0] threshold_ram[NF];
        initial $readmemh(THRESHOLD_FILE, threshold_ram);
        /* verilator lint_off UNUSEDSIGNAL */  // register arithmetic in int; the chunks pad the word
        int unsigned t_index;
        logic [T_CHUNKS*32-1:0] word;
        /* verilator lint_on UNUSEDSIGNAL */
        assign t_index = 32'(cfg_addr) - T_OFFSET;
        assign word = threshold_ram[s2_nf];
        assign thresholds = word[PE*N_THRESH*ACC_BITS-1:0];
        always_ff @(posedge clk) begin
          for (int c = 0; c < T_CHUNKS; c++) begin
            if (cfg_we && 32'(cfg_addr) >= T_OFFSET && (t_index & ((1 << T_STRIDE_LOG2) - 1)) == c
                && (t_index >> T_STRIDE_LOG2) < NF)
              threshold_ram[NF_W'(t_index >> T_STRIDE_LOG2)][c*32+:32] <= cfg_data;
          end
        end
      end else begin : g_threshold_rom
        logic [PE*N_THRESH*ACC_BITS-1:0] threshold_rom[NF];
        initial $readmemh(THRESHOLD_FILE, threshold_rom);
        assign thresholds = threshold_rom[s2_nf];
      end
      for (genvar p = 0; p < PE; p++) begin : g_level
        xk_multi_threshold #(.N(N_THRESH), .BITS(ACC_BITS), .OUT_BITS(OUT_BITS), .BASE(OUT_BASE)) u_level (
            .value(acc_next[p]), .thresholds(thresholds[p*N_THRESH*ACC_BITS+:N_THRESH*ACC_BITS]),
            .level(levels[p*OUT_BITS+:OUT_BITS]));
      end
      always_ff @(posedge clk) if (advance && s2_valid && s2_last) m_tdata <= levels;
    end else begin : g_raw
      logic unused_nf;
      assign unused_nf = &{1'b0, s2_nf};  // no threshold memory to address
      always_ff @(posedge clk) begin
        if (advance && s2_valid && s2_last) begin
          for (int p = 0; p < PE; p++) m_tdata[p*ACC_BITS+:ACC_BITS] <= acc_next[p];
        end
      end
    end
  endgenerate
endmodule
