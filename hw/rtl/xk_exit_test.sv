// An early exit's test (docs/numerics.md, "Early exits"): reads the exit classifier's N accumulators,
// ELEMS per beat, scores one class per cycle, score = weight * acc + bias (the integer class scores), keeps
// the largest two and, after the last class, sends one decision beat: {taken, the N accumulators}, taken
// when the largest score minus the second largest reaches MARGIN.
module xk_exit_test #(
    parameter int N = 10,
    parameter int ELEMS = 1,
    parameter int ACC_BITS = 16,
    parameter int W_BITS = 18,  // score weight, signed
    parameter int B_BITS = 32,  // score bias, signed
    parameter int S_BITS = 48,  // a margin: the difference of two scores, signed
    parameter logic signed [S_BITS-1:0] MARGIN = '0,
    parameter SCORE_FILE = "scores.mem",  // per class {bias, weight}
    localparam int BEATS = N / ELEMS
) (
    input  logic                     clk,
    input  logic                     rst_n,
    input  logic [ELEMS*ACC_BITS-1:0] s_tdata,
    input  logic                     s_tvalid,
    output logic                     s_tready,
    output logic [N*ACC_BITS:0]      m_tdata,
    output logic                     m_tvalid,
    input  logic                     m_tready
);
  localparam int CLASS_W = N > 1 ? $clog2(N) : 1;
  localparam int ELEM_W = ELEMS > 1 ? $clog2(ELEMS) : 1;

  logic [B_BITS+W_BITS-1:0] scores[N];
  initial $readmemh(SCORE_FILE, scores);

  logic [ELEMS*ACC_BITS-1:0] beat;
  logic busy;  // `beat` holds accumulators not yet scored
  logic [ELEM_W-1:0] elem;
  logic [CLASS_W-1:0] cls;
  logic [N*ACC_BITS-1:0] accs;
  logic signed [S_BITS-1:0] top, second;

  logic signed [ACC_BITS-1:0] acc;
  logic signed [W_BITS-1:0] weight;
  logic signed [B_BITS-1:0] bias;
  logic signed [S_BITS-1:0] score;
  assign acc = beat[elem*ACC_BITS+:ACC_BITS];
  assign {bias, weight} = scores[cls];
  assign score = S_BITS'(weight) * S_BITS'(acc) + S_BITS'(bias);

  assign s_tready = !busy && !m_tvalid;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      busy <= 1'b0;
      m_tvalid <= 1'b0;
      elem <= '0;
      cls <= '0;
      top <= {1'b1, {(S_BITS - 1) {1'b0}}};
      second <= {1'b1, {(S_BITS - 1) {1'b0}}};
    end else begin
      if (m_tvalid && m_tready) begin
        m_tvalid <= 1'b0;
        top <= {1'b1, {(S_BITS - 1) {1'b0}}};
        second <= {1'b1, {(S_BITS - 1) {1'b0}}};
      end
      if (s_tvalid && s_tready) begin
        beat <= s_tdata;
        busy <= 1'b1;
        elem <= '0;
      end else if (busy) begin
        accs[cls*ACC_BITS+:ACC_BITS] <= acc;
        // numerics.exit_margin: a tie with the largest makes the margin 0
        if (score > top) begin
          second <= top;
          top <= score;
        end else if (score > second) begin
          second <= score;
        end
        if (32'(elem) == ELEMS - 1) begin
          busy <= 1'b0;
          elem <= '0;
        end else begin
          elem <= elem + 1'b1;
        end
        if (32'(cls) == N - 1) begin
          cls <= '0;
          m_tvalid <= 1'b1;
        end else begin
          cls <= cls + 1'b1;
        end
      end
    end
  end

  // m_tvalid rises with the last class's update: the decision reads the final two
  assign m_tdata = {(top - second) >= MARGIN, accs};

  logic unused;
  assign unused = &{1'b0, BEATS};
endmodule
