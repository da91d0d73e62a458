// xnorkit HLS library: the matrix-vector-threshold unit as a C++ template for Vitis HLS, the same
// numerics as the RTL's xk_mvtu (docs/numerics.md) and the same PE x SIMD folding. Plain C++14: it
// compiles with g++ for the bit-exactness check against the golden model and with Vitis HLS, where the
// pragmas fold the loops (a g++ build ignores them).
//
// Activations between layers are one value per element in the narrowest signed type that holds them
// (a bipolar element is its bit: 1 = +1, 0 = -1);
// the unit packs each fold's SIMD bipolar inputs into words for the XNOR-popcount, which costs nothing
// in hardware (wires).
#ifndef XK_HLS_H
#define XK_HLS_H

#include <stdint.h>

namespace xk {

// popcount of a 64-bit word as a tree of adds (synthesizable; no compiler builtin)
inline int popcount64(uint64_t v) {
#pragma HLS INLINE
    v = v - ((v >> 1) & 0x5555555555555555ULL);
    v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return static_cast<int>((v * 0x0101010101010101ULL) >> 56);
}

// Output of a neuron: the multi-threshold activation base + #{l : acc >= T[l]}, or the accumulator itself
template <int N_THRESH, int BASE>
inline int32_t activate(int32_t acc, const int32_t thresholds[]) {
#pragma HLS INLINE
    int32_t level = BASE;
    for (int l = 0; l < N_THRESH; ++l) {
#pragma HLS UNROLL
        level += acc >= thresholds[l] ? 1 : 0;
    }
    return level;
}

// The PE outputs of neuron fold nf: activations, or the accumulators themselves in the output layer
template <int PE, int N_THRESH, int BASE, typename Out>
inline void write_fold(int nf, const int32_t acc[PE], Out out[], const int32_t thresholds[][N_THRESH > 0 ? N_THRESH : 1]) {
#pragma HLS INLINE
    for (int p = 0; p < PE; ++p) {
#pragma HLS UNROLL
        const int n = nf * PE + p;
        out[n] = static_cast<Out>(N_THRESH > 0 ? activate<N_THRESH, BASE>(acc[p], thresholds[N_THRESH > 0 ? n : 0])
                                               : acc[p]);
    }
}

// Bipolar inputs, bipolar weights: acc += 2 * popcount(XNOR) - SIMD per fold. WEIGHTS[nf * SF + sf][p][w]
// holds lane p's SIMD weight bits of the fold (bit s of word s / 64; 1 = +1).
template <int MW, int MH, int PE, int SIMD, int N_THRESH, int BASE, typename Out>
void mvtu_xnor(const int8_t in[MW], Out out[MH], const uint64_t weights[][PE][(SIMD + 63) / 64],
               const int32_t thresholds[][N_THRESH > 0 ? N_THRESH : 1]) {
    constexpr int SF = MW / SIMD, NF = MH / PE, WORDS = (SIMD + 63) / 64;
    for (int nf = 0; nf < NF; ++nf) {
        int32_t acc[PE];
#pragma HLS ARRAY_PARTITION variable = acc complete
        for (int p = 0; p < PE; ++p) acc[p] = 0;
        for (int sf = 0; sf < SF; ++sf) {
#pragma HLS PIPELINE II = 1
            uint64_t x[WORDS];
#pragma HLS ARRAY_PARTITION variable = x complete
            for (int w = 0; w < WORDS; ++w) x[w] = 0;
            for (int s = 0; s < SIMD; ++s) x[s / 64] |= static_cast<uint64_t>(in[sf * SIMD + s] & 1) << (s % 64);
            for (int p = 0; p < PE; ++p) {
#pragma HLS UNROLL
                int matches = 0;
                for (int w = 0; w < WORDS; ++w) {
                    const int bits = (w + 1) * 64 <= SIMD ? 64 : SIMD - w * 64;
                    const uint64_t mask = bits == 64 ? ~0ULL : ((1ULL << bits) - 1);
                    matches += popcount64(~(x[w] ^ weights[nf * SF + sf][p][w]) & mask);
                }
                acc[p] += 2 * matches - SIMD;
            }
        }
        write_fold<PE, N_THRESH, BASE>(nf, acc, out, thresholds);
    }
}

// Integer inputs (their values; IN_BIPOLAR: bits meaning -1 / +1), weights as values: bipolar weights add or
// subtract (W_BIPOLAR), k-bit weights multiply. WEIGHTS[nf * SF + sf][p][s].
template <int MW, int MH, int PE, int SIMD, bool IN_BIPOLAR, bool W_BIPOLAR, int N_THRESH, int BASE, typename In,
          typename Out>
void mvtu_int(const In in[MW], Out out[MH], const int8_t weights[][PE][SIMD],
              const int32_t thresholds[][N_THRESH > 0 ? N_THRESH : 1]) {
    constexpr int SF = MW / SIMD, NF = MH / PE;
    for (int nf = 0; nf < NF; ++nf) {
        int32_t acc[PE];
#pragma HLS ARRAY_PARTITION variable = acc complete
        for (int p = 0; p < PE; ++p) acc[p] = 0;
        for (int sf = 0; sf < SF; ++sf) {
#pragma HLS PIPELINE II = 1
            for (int p = 0; p < PE; ++p) {
#pragma HLS UNROLL
                int32_t partial = 0;
                for (int s = 0; s < SIMD; ++s) {
#pragma HLS UNROLL
                    const int32_t x = IN_BIPOLAR ? ((in[sf * SIMD + s] & 1) ? 1 : -1) : in[sf * SIMD + s];
                    const int32_t w = weights[nf * SF + sf][p][s];
                    partial += W_BIPOLAR ? (w ? x : -x) : x * w;
                }
                acc[p] += partial;
            }
        }
        write_fold<PE, N_THRESH, BASE>(nf, acc, out, thresholds);
    }
}

}  // namespace xk

#endif  // XK_HLS_H
