// xnorkit HLS library: the stages of hw/rtl/ as C++ templates for Vitis HLS, the same numerics as the RTL
// (docs/numerics.md) and the same PE x SIMD folding. Plain C++14: it compiles with g++ for the bit-exactness
// check against the golden model and with Vitis HLS, where the pragmas fold the loops (g++ ignores them).
//
// A feature map is one array per frame, pixel by pixel, channels fastest (the RTL's stream order); between
// stages the arrays are DATAFLOW ping-pong buffers, so a stage works on frame n + 1 while the next one
// reads frame n, as the RTL's double frame buffers do. Each element is its stream field as a value: a
// bipolar element is its bit (1 = +1, 0 = -1), every other element its integer.
//
// Each layer is described by a traits struct the generator writes (xk_weights.h): its sizes, folding, how it
// reads its input (Source: a whole vector, or a sliding window over a frame) and its activation.
#ifndef XK_HLS_H
#define XK_HLS_H

#include <stdint.h>

namespace xk {

enum Kind { BIPOLAR = 0, UNSIGNED = 1, SIGNED = 2 };

// The integer an element stands for
template <int KIND, typename T>
inline int32_t value(T x) {
#pragma HLS INLINE
    return KIND == BIPOLAR ? ((x & 1) ? 1 : -1) : static_cast<int32_t>(x);
}

// popcount of a 64-bit word as a tree of adds (synthesizable; no compiler builtin)
inline int popcount64(uint64_t v) {
#pragma HLS INLINE
    v = v - ((v >> 1) & 0x5555555555555555ULL);
    v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return static_cast<int>((v * 0x0101010101010101ULL) >> 56);
}

// A fully connected layer's source: element j of its input vector
struct Vector {
    template <typename T>
    static int32_t at(const T in[], int, int, int j) {
#pragma HLS INLINE
        return in[j];
    }
};

// A sliding window over a (H, W, C) frame: element j of group g's window at output position pos, in
// (ky, kx, c) order with c local to the group. Positions outside the frame read PAD; TO_INT turns bipolar
// bits into -1 / +1, so that padding can be the real 0 (docs/numerics.md, Convolution and padding).
template <int C, int H, int W, int KH, int KW, int SH, int SW, int PAD_T, int PAD_L, int WO, int GROUPS, bool TO_INT,
          int PAD>
struct Window {
    static constexpr int CG = C / GROUPS;
    template <typename T>
    static int32_t at(const T in[], int pos, int g, int j) {
#pragma HLS INLINE
        const int c = g * CG + j % CG, kx = (j / CG) % KW, ky = j / (CG * KW);
        const int y = (pos / WO) * SH + ky - PAD_T, x = (pos % WO) * SW + kx - PAD_L;
        if (y < 0 || y >= H || x < 0 || x >= W) return PAD;
        const int32_t v = in[(y * W + x) * C + c];
        return TO_INT ? ((v & 1) ? 1 : -1) : v;
    }
};

// One step of a unit that skips zero tiles (packing.Step): its tile, whether it ends the neuron fold, whether
// it computes (the weight memory holds the computing steps' tiles, in order)
struct Step {
    int16_t nf, sf;
    bool last, compute;
};

// A neuron's output: the multi-threshold activation BASE + #{l : acc >= T[l]}, or the accumulator itself
template <class L, typename Out>
inline void write_fold(int pos, int nf, const int32_t acc[L::PE], Out out[],
                       const int32_t thresholds[][L::N_THRESH > 0 ? L::N_THRESH : 1]) {
#pragma HLS INLINE
    for (int p = 0; p < L::PE; ++p) {
#pragma HLS UNROLL
        const int n = nf * L::PE + p;
        int32_t level = L::BASE;
        for (int l = 0; l < L::N_THRESH; ++l) {
#pragma HLS UNROLL
            level += acc[p] >= thresholds[n][l] ? 1 : 0;
        }
        out[pos * L::MH + n] = static_cast<Out>(L::N_THRESH > 0 ? level : acc[p]);
    }
}

// Tile (nf, sf) of position pos: per lane, SIMD inputs of its group's vector against its weights.
// XNOR: bipolar inputs and weights, acc += 2 * popcount(XNOR) - SIMD (weights: bit s of word s / 64, 1 = +1).
// Else weights as values: W_BIPOLAR adds or subtracts (1 / 0), k-bit or ternary weights multiply.
template <class L, typename In, typename Wt>
inline void tile(const In in[], int pos, int nf, int sf, const Wt weights[L::PE][L::WL], int32_t acc[L::PE]) {
#pragma HLS INLINE
    for (int p = 0; p < L::PE; ++p) {
#pragma HLS UNROLL
        const int g = (nf * L::PE + p) / (L::MH / L::GROUPS);
        if (L::XNOR) {
            int matches = 0;
            for (int w = 0; w < L::WL; ++w) {
                uint64_t x = 0;
                const int bits = (w + 1) * 64 <= L::SIMD ? 64 : L::SIMD - w * 64;
                for (int s = 0; s < bits; ++s)
                    x |= static_cast<uint64_t>(L::Source::at(in, pos, g, sf * L::SIMD + w * 64 + s) & 1) << s;
                const uint64_t mask = bits == 64 ? ~0ULL : ((1ULL << bits) - 1);
                matches += popcount64(~(x ^ static_cast<uint64_t>(weights[p][w])) & mask);
            }
            acc[p] += 2 * matches - L::SIMD;
        } else {
            int32_t partial = 0;
            for (int s = 0; s < L::SIMD; ++s) {
                const int32_t x = value<L::KIND>(L::Source::at(in, pos, g, sf * L::SIMD + s));
                const int32_t w = static_cast<int32_t>(weights[p][s]);
                partial += L::W_BIPOLAR ? (w ? x : -x) : x * w;
            }
            acc[p] += partial;
        }
    }
}

// The matrix-vector-threshold unit (xk_mvtu): per position, NF neuron folds of SF input folds, one PE x SIMD
// tile per cycle. WEIGHTS[nf * SF + sf][p]
template <class L, typename In, typename Out, typename Wt>
void mvtu(const In in[], Out out[], const Wt weights[][L::PE][L::WL],
          const int32_t thresholds[][L::N_THRESH > 0 ? L::N_THRESH : 1]) {
    for (int pos = 0; pos < L::POS; ++pos) {
        for (int nf = 0; nf < L::MH / L::PE; ++nf) {
            int32_t acc[L::PE];
#pragma HLS ARRAY_PARTITION variable = acc complete
            for (int p = 0; p < L::PE; ++p) acc[p] = 0;
            for (int sf = 0; sf < L::MW / L::SIMD; ++sf) {
#pragma HLS PIPELINE II = 1
                tile<L>(in, pos, nf, sf, weights[nf * (L::MW / L::SIMD) + sf], acc);
            }
            write_fold<L>(pos, nf, acc, out, thresholds);
        }
    }
}

// The same unit skipping zero tiles (pruned weights): one cycle per step of its schedule, the weight memory
// holding only the tiles it computes
template <class L, typename In, typename Out, typename Wt>
void mvtu_steps(const In in[], Out out[], const Step steps[L::N_STEPS], const Wt weights[][L::PE][L::WL],
                const int32_t thresholds[][L::N_THRESH > 0 ? L::N_THRESH : 1]) {
    for (int pos = 0; pos < L::POS; ++pos) {
        int32_t acc[L::PE];
#pragma HLS ARRAY_PARTITION variable = acc complete
        for (int p = 0; p < L::PE; ++p) acc[p] = 0;
        int stored = 0;
        for (int t = 0; t < L::N_STEPS; ++t) {
#pragma HLS PIPELINE II = 1
            const Step step = steps[t];
            if (step.compute) tile<L>(in, pos, step.nf, step.sf, weights[stored++], acc);
            if (step.last) {
                write_fold<L>(pos, step.nf, acc, out, thresholds);
                for (int p = 0; p < L::PE; ++p) acc[p] = 0;
            }
        }
    }
}

// Pooling (xk_pool) over windows of WINDOW positions of all C channels: the maximum of the fields (padding
// reads the type's minimum; on bipolar bits the maximum is an OR), or the sum of the values
template <class L, typename In, typename Out>
void pool(const In in[], Out out[]) {
    for (int pos = 0; pos < L::POS; ++pos) {
        for (int c = 0; c < L::C; ++c) {
#pragma HLS PIPELINE II = 1
            int32_t best = L::Source::at(in, pos, 0, c), sum = 0;
            for (int k = 0; k < L::WINDOW; ++k) {
                const int32_t v = L::Source::at(in, pos, 0, k * L::C + c);
                best = v > best ? v : best;
                sum += value<L::KIND>(v);
            }
            out[pos * L::C + c] = static_cast<Out>(L::SUM ? sum : best);
        }
    }
}

// A threshold stage of its own (xk_threshold, after a join or a pool): per channel BASE + #{l : x >= T[c][l]}
template <class L, typename In, typename Out>
void threshold(const In in[], Out out[], const int32_t thresholds[][L::N_THRESH]) {
    for (int e = 0; e < L::FRAME * L::C; ++e) {
#pragma HLS PIPELINE II = 1
        const int32_t x = value<L::KIND>(in[e]);
        int32_t level = L::BASE;
        for (int l = 0; l < L::N_THRESH; ++l) {
#pragma HLS UNROLL
            level += x >= thresholds[e % L::C][l] ? 1 : 0;
        }
        out[e] = static_cast<Out>(level);
    }
}

// A join (xk_join), pixel by pixel: the elementwise sum of the values (CONCAT false) or A's channels then B's
template <class L, typename A, typename B, typename Out>
void join(const A a[], const B b[], Out out[]) {
    for (int px = 0; px < L::FRAME; ++px) {
        for (int i = 0; i < (L::CONCAT ? L::A_C + L::B_C : L::A_C); ++i) {
#pragma HLS PIPELINE II = 1
            if (!L::CONCAT)
                out[px * L::A_C + i] = static_cast<Out>(value<L::A_KIND>(a[px * L::A_C + i]) +
                                                        value<L::B_KIND>(b[px * L::A_C + i]));
            else
                out[px * (L::A_C + L::B_C) + i] = static_cast<Out>(i < L::A_C ? static_cast<int32_t>(a[px * L::A_C + i])
                                                                              : b[px * L::B_C + i - L::A_C]);
        }
    }
}

// An early exit's test (xk_exit_test): class scores WEIGHT[k] * acc[k] + BIAS[k], taken when the largest
// minus the second largest reaches MARGIN. DECISION = {taken, the N accumulators}
template <class L, typename In>
void exit_test(const In in[L::N], int32_t decision[L::N + 1], const int64_t weight[L::N], const int64_t bias[L::N]) {
    int64_t top = INT64_MIN, second = INT64_MIN;
    for (int k = 0; k < L::N; ++k) {
#pragma HLS PIPELINE II = 1
        const int64_t score = weight[k] * in[k] + bias[k];
        if (score > top) {
            second = top;
            top = score;
        } else if (score > second) {
            second = score;
        }
        decision[k + 1] = in[k];
    }
    decision[0] = top - second >= L::MARGIN ? 1 : 0;
}

// An early exit's gate (xk_exit_gate): the branch's frame, passed on after the exit's decision. The RTL drops
// the frame of an input the exit took, and the layers after it never run for it; here they compute it and the
// merge sends 0 instead: the same outputs, not the RTL's saving of cycles (a limit of the array dataflow).
template <class L, typename T>
void exit_gate(const T in[L::FRAME], const int32_t decision[], T out[L::FRAME]) {
    const bool taken = decision[0] != 0;
    for (int e = 0; e < L::FRAME; ++e) {
#pragma HLS PIPELINE II = 1
        out[e] = taken ? static_cast<T>(0) : in[e];
    }
}

// The output of a network with early exits (xk_exit_merge, golden.with_exits): the exit's accumulators, then
// the N_TAIL values after it (0 when the exit was taken), then the index of the output taken: appended
// (TAIL_INDEXED false: 0 this exit, 1 the final layer), or the tail's last value (the next merge's index) + 1.
template <class L, typename Tail>
void exit_merge(const int32_t decision[L::N_EXIT + 1], const Tail tail[L::N_TAIL], int32_t out[L::TOTAL]) {
    const bool taken = decision[0] != 0;
    for (int i = 0; i < L::TOTAL; ++i) {
#pragma HLS PIPELINE II = 1
        int32_t v;
        if (i < L::N_EXIT) v = decision[i + 1];
        else if (i >= L::N_EXIT + L::N_TAIL) v = taken ? 0 : 1;
        else if (taken) v = 0;
        else v = static_cast<int32_t>(tail[i - L::N_EXIT]) + (L::TAIL_INDEXED && i == L::TOTAL - 1 ? 1 : 0);
        out[i] = v;
    }
}

// A stream read by two stages: one copy each (DATAFLOW: one reader per buffer)
template <int N, typename T>
void fork(const T in[N], T a[N], T b[N]) {
    for (int e = 0; e < N; ++e) {
#pragma HLS PIPELINE II = 1
        a[e] = in[e];
        b[e] = in[e];
    }
}

// The AXI4-Stream ports read and write in order; the stages between them read their frames in any order
template <int N, typename From, typename To>
void copy(const From in[N], To out[N]) {
    for (int e = 0; e < N; ++e) {
#pragma HLS PIPELINE II = 1
        out[e] = static_cast<To>(in[e]);
    }
}

}  // namespace xk

#endif  // XK_HLS_H
