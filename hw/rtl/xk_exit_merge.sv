// The output of a network with one early exit (golden.with_exits), one signed OUT_BITS value per beat: the
// exit's N_EXIT accumulators, the final layer's N_FINAL accumulators (0 when the exit was taken: the rest of
// the network never ran), then the index of the output taken (0 the exit, 1 the final layer). Per inference
// it reads one decision beat {taken, exit accumulators} and, unless taken, the final layer's beats.
module xk_exit_merge #(
    parameter int N_EXIT = 10,
    parameter int EXIT_BITS = 16,
    parameter int N_FINAL = 10,
    parameter int FINAL_ELEMS = 1,
    parameter int FINAL_BITS = 16,
    parameter int OUT_BITS = 16
) (
    input  logic                              clk,
    input  logic                              rst_n,
    input  logic [N_EXIT*EXIT_BITS:0]         a_tdata,
    input  logic                              a_tvalid,
    output logic                              a_tready,
    input  logic [FINAL_ELEMS*FINAL_BITS-1:0] b_tdata,
    input  logic                              b_tvalid,
    output logic                              b_tready,
    output logic [OUT_BITS-1:0]               m_tdata,
    output logic                              m_tvalid,
    input  logic                              m_tready
);
  localparam int TOTAL = N_EXIT + N_FINAL + 1;
  localparam int POS_W = $clog2(TOTAL + 1);
  localparam int ELEM_W = FINAL_ELEMS > 1 ? $clog2(FINAL_ELEMS) : 1;

  logic holding;  // a decision is latched and its outputs are being sent
  logic taken;
  logic [N_EXIT*EXIT_BITS-1:0] exit_accs;
  logic [FINAL_ELEMS*FINAL_BITS-1:0] final_beat;
  logic [POS_W-1:0] pos;  // the next output value
  logic [ELEM_W-1:0] elem;  // the next element of final_beat
  logic advance, in_exit, in_final, need_beat;
  assign advance = !m_tvalid || m_tready;
  assign in_exit = 32'(pos) < N_EXIT;
  assign in_final = !in_exit && 32'(pos) < N_EXIT + N_FINAL;
  assign need_beat = in_final && !taken && elem == '0;
  assign a_tready = advance && !holding;
  assign b_tready = advance && holding && need_beat;

  logic signed [OUT_BITS-1:0] exit_value, final_value, beat_value;
  assign exit_value = OUT_BITS'($signed(exit_accs[pos*EXIT_BITS+:EXIT_BITS]));
  assign final_value = OUT_BITS'($signed(final_beat[elem*FINAL_BITS+:FINAL_BITS]));
  assign beat_value = OUT_BITS'($signed(b_tdata[FINAL_BITS-1:0]));

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
      end else if (in_exit) begin
        m_tdata <= exit_value;
        m_tvalid <= 1'b1;
        pos <= pos + 1'b1;
      end else if (in_final) begin
        if (taken) begin
          m_tdata <= '0;
          m_tvalid <= 1'b1;
          pos <= pos + 1'b1;
        end else if (elem != '0 || b_tvalid) begin
          if (elem == '0) final_beat <= b_tdata;
          m_tdata <= elem == '0 ? beat_value : final_value;
          m_tvalid <= 1'b1;
          pos <= pos + 1'b1;
          elem <= 32'(elem) == FINAL_ELEMS - 1 ? '0 : elem + 1'b1;
        end
      end else begin
        m_tdata <= taken ? '0 : OUT_BITS'(1);
        m_tvalid <= 1'b1;
        holding <= 1'b0;
      end
    end
  end
endmodule
