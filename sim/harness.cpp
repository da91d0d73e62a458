// Bulk simulation of a generated accelerator (xnorkit_top) under Verilator, for runs too long for
// cocotb's per-cycle Python callbacks (MNIST's 10,000 test images). The same RTL, the same AXI4-Stream
// protocol as sim/tb_network.py: input beats stream in as fast as the design accepts them, optionally
// with random gaps in valid and ready (seeded), and every output beat is recorded.
//
//   harness IN_FILE OUT_FILE CYCLES_FILE BEATS_PER_INPUT BEATS_PER_OUTPUT STALL_IN STALL_OUT SEED MAX_CYCLES
//
// IN_FILE holds the input beats, IN_BYTES each (little-endian); OUT_FILE receives the output beats,
// OUT_BYTES each; CYCLES_FILE receives, per inference, the cycle its first input beat was accepted and
// the cycle its last output beat was delivered (two uint64 each). IN_WIDTH and OUT_WIDTH (bits) come
// from -D on the compile line.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <type_traits>
#include <vector>

#include "Vxnorkit_top.h"
#include "verilated.h"

static constexpr int IN_BYTES = (IN_WIDTH + 7) / 8;
static constexpr int OUT_BYTES = (OUT_WIDTH + 7) / 8;

// Verilator keeps ports of up to 64 bits in integers and wider ones in arrays of 32-bit words.
template <typename Port>
static void set_port(Port& port, const uint8_t* bytes, int count) {
    if constexpr (std::is_integral_v<Port>) {
        uint64_t v = 0;
        for (int i = count - 1; i >= 0; --i) v = (v << 8) | bytes[i];
        port = static_cast<Port>(v);
    } else {
        for (size_t w = 0; w < sizeof(port) / 4; ++w) {
            uint32_t v = 0;
            for (int b = 3; b >= 0; --b) {
                const int i = static_cast<int>(w) * 4 + b;
                v = (v << 8) | (i < count ? bytes[i] : 0);
            }
            port[w] = v;
        }
    }
}

template <typename Port>
static void get_port(const Port& port, uint8_t* bytes, int count) {
    if constexpr (std::is_integral_v<Port>) {
        const uint64_t v = port;
        for (int i = 0; i < count; ++i) bytes[i] = static_cast<uint8_t>(v >> (8 * i));
    } else {
        for (int i = 0; i < count; ++i) bytes[i] = static_cast<uint8_t>(port[i / 4] >> (8 * (i % 4)));
    }
}

static std::vector<uint8_t> read_file(const char* path) {
    std::vector<uint8_t> data;
    FILE* f = std::fopen(path, "rb");
    if (!f) return data;
    uint8_t buffer[1 << 16];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0) data.insert(data.end(), buffer, buffer + n);
    std::fclose(f);
    return data;
}

int main(int argc, char** argv) {
    if (argc != 10) {
        std::fprintf(stderr, "usage: %s IN OUT CYCLES BEATS_IN BEATS_OUT STALL_IN STALL_OUT SEED MAX_CYCLES\n", argv[0]);
        return 2;
    }
    const std::vector<uint8_t> in = read_file(argv[1]);
    const size_t beats_in = std::strtoull(argv[4], nullptr, 10), beats_out = std::strtoull(argv[5], nullptr, 10);
    const double stall_in = std::atof(argv[6]), stall_out = std::atof(argv[7]);
    std::mt19937_64 rng(std::strtoull(argv[8], nullptr, 10));
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    const uint64_t max_cycles = std::strtoull(argv[9], nullptr, 10);
    const size_t total_in = in.size() / IN_BYTES, inferences = total_in / beats_in;
    const size_t total_out = inferences * beats_out;

    auto context = std::make_unique<VerilatedContext>();
    context->commandArgs(1, argv);
    auto top = std::make_unique<Vxnorkit_top>(context.get());
    std::vector<uint8_t> out(total_out * OUT_BYTES);
    std::vector<uint64_t> accepted, completed;

    top->clk = 0;
    top->rst_n = 0;
    top->s_axis_tvalid = 0;
    top->m_axis_tready = 0;
    for (int i = 0; i < 4; ++i) {
        top->clk = 1;
        top->eval();
        top->clk = 0;
        top->eval();
    }
    top->rst_n = 1;

    size_t sent = 0, received = 0;
    uint64_t cycle = 0;
    while (received < total_out) {
        if (++cycle > max_cycles) {
            std::fprintf(stderr, "timeout: %zu of %zu outputs after %llu cycles\n", received / beats_out, inferences,
                         static_cast<unsigned long long>(max_cycles));
            return 1;
        }
        // drive between edges, as the cocotb testbench does at the falling edge
        const bool offer = sent < total_in && (stall_in == 0.0 || uniform(rng) >= stall_in);
        top->s_axis_tvalid = offer;
        if (offer) set_port(top->s_axis_tdata, &in[sent * IN_BYTES], IN_BYTES);
        top->m_axis_tready = stall_out == 0.0 || uniform(rng) >= stall_out;
        top->eval();
        const bool take_in = offer && top->s_axis_tready;
        const bool take_out = top->m_axis_tvalid && top->m_axis_tready;
        if (take_out) get_port(top->m_axis_tdata, &out[received * OUT_BYTES], OUT_BYTES);
        top->clk = 1;
        top->eval();
        top->clk = 0;
        top->eval();
        if (take_in) {
            if (sent % beats_in == 0) accepted.push_back(cycle);
            ++sent;
        }
        if (take_out && ++received % beats_out == 0) completed.push_back(cycle);
    }
    top->final();

    FILE* f = std::fopen(argv[2], "wb");
    std::fwrite(out.data(), 1, out.size(), f);
    std::fclose(f);
    f = std::fopen(argv[3], "wb");
    for (size_t i = 0; i < inferences; ++i) {
        const uint64_t pair[2] = {accepted[i], completed[i]};
        std::fwrite(pair, sizeof(uint64_t), 2, f);
    }
    std::fclose(f);
    return 0;
}
