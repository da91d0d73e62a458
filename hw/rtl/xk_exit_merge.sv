// The output of a network with early exits (golden.with_exits), one signed OUT_BITS value per beat. Per
// inference it reads one decision beat {taken, the exit's N_EXIT accumulators} and sends those accumulators,
// then the N_TAIL values of what comes after the exit, read from the tail stream unless the exit was taken
// (then 0: the rest of the network never ran for this inference, and nothing is read):
// - TAIL_INDEXED 0: the tail is the final layer's accumulators, TAIL_ELEMS per beat, and the index of the
//   output taken follows (0 this exit, 1 the final layer);
// - TAIL_INDEXED 1: the tail is the next exit's merge, one value per beat, its last value the index of the
//   output taken counted from the next exit: this merge adds 1 (and sends 0 when its own exit was taken).
module xk_exit_merge #(
    parameter int N_EXIT = 10,
    parameter int EXIT_BITS = 16,
    parameter int N_TAIL = 10,
    parameter int TAIL_ELEMS = 1,
    parameter int TAIL_BITS = 16,
    parameter bit TAIL_INDEXED = 1'b0,
    parameter int OUT_BITS = 16
) (
    input  logic                            clk,
    input  logic                            rst_n,
    input  logic [N_EXIT*EXIT_BITS:0]       a_tdata,
    input  logic                            a_tvalid,
    output logic                            a_tready,
    input  logic [TAIL_ELEMS*TAIL_BITS-1:0] b_tdata,
    input  logic                            b_tvalid,
    output logic                            b_tready,
    output logic [OUT_BITS-1:0]             m_tdata,
    output logic                            m_tvalid,
    input  logic                            m_tready
);
  localparam int TOTAL = N_EXIT + N_TAIL + (TAIL_INDEXED ? 0 : 1);
  localparam int POS_W = $clog2(TOTAL + 1);
  localparam int ELEM_W = TAIL_ELEMS > 1 ? $clog2(TAIL_ELEMS) : 1;

  logic holding;  // a decision is latched and its values are being sent
  logic taken;
  logic [N_EXIT*EXIT_BITS-1:0] exit_accs;
  logic [TAIL_ELEMS*TAIL_BITS-1:0] tail_beat;
  logic [POS_W-1:0] pos;  // the next value
  logic [ELEM_W-1:0] elem;  // the next element of tail_beat
  logic advance, in_exit, in_tail, last, need_beat;
  assign advance = !m_tvalid || m_tready;
  assign in_exit = 32'(pos) < N_EXIT;
  assign in_tail = !in_exit && 32'(pos) < N_EXIT + N_TAIL;
  assign last = 32'(pos) == TOTAL - 1;
  assign need_beat = in_tail && !taken && elem == '0;
  assign a_tready = advance && !holding;
  assign b_tready = advance && holding && need_beat;

  logic signed [OUT_BITS-1:0] exit_value, held_value, beat_value, tail_value;
  assign exit_value = OUT_BITS'($signed(exit_accs[pos*EXIT_BITS+:EXIT_BITS]));
  assign held_value = OUT_BITS'($signed(tail_beat[elem*TAIL_BITS+:TAIL_BITS]));
  assign beat_value = OUT_BITS'($signed(b_tdata[TAIL_BITS-1:0]));
  // the next exit's index, counted from this one
  assign tail_value = (elem == '0 ? beat_value : held_value) + ((TAIL_INDEXED && last) ? OUT_BITS'(1) : '0);

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      holding <= 1'b0;
      m_tvalid <= 1'b0;
      pos <= '0;
      elem <= '0;
    end else if (advance) begin
      m_tvalid <= 1'b0;
      if (!holding) begin
        if (a_tvalid) begin
          {taken, exit_accs} <= a_tdata;
          holding <= 1'b1;
          pos <= '0;
          elem <= '0;
        end
      end else if (in_exit || !in_tail || taken || elem != '0 || b_tvalid) begin
        if (in_exit) begin
          m_tdata <= exit_value;
        end else if (!in_tail) begin
          m_tdata <= taken ? '0 : OUT_BITS'(1);  // the index after the final layer's accumulators
        end else if (taken) begin
          m_tdata <= '0;
        end else begin
          if (elem == '0) tail_beat <= b_tdata;
          m_tdata <= tail_value;
          elem <= 32'(elem) == TAIL_ELEMS - 1 ? '0 : elem + 1'b1;
        end
        m_tvalid <= 1'b1;
        pos <= pos + 1'b1;
        if (last) holding <= 1'b0;
      end
    end
  end
endmodule
