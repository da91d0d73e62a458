/* xnorkit kernels: portable C99 implementations of the IR nodes (docs/numerics.md).
 * Bipolar vectors are packed LSB first into uint32_t words: element i at word i / 32, bit i % 32,
 * bit 1 = +1, bit 0 = -1, padding bits 0. */
#ifndef XK_KERNELS_H
#define XK_KERNELS_H

#include <stdint.h>

#define XK_WORDS(n) (((n) + 31u) / 32u)

/* Bits set in a 32-bit word. POPCNT where the compiler targets it, else a SWAR count (Cortex-M has
 * no popcount instruction). Both give the same integers. */
static inline uint32_t xk_popcount32(uint32_t v) {
#if defined(__POPCNT__)
    return (uint32_t)__builtin_popcount(v);
#else
    v = v - ((v >> 1) & 0x55555555u);
    v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
    v = (v + (v >> 4)) & 0x0F0F0F0Fu;
    return (v * 0x01010101u) >> 24;
/* k-bit activation: out[o] = base + #{l < levels : acc[o] >= threshold[o * levels + l]}. */
void xk_multithreshold(const int32_t *acc, const int32_t *threshold, uint32_t n, uint32_t levels, int32_t base,
                       int32_t *out);

#endif
}

/* Quantize: clamp(round_half_even(x / scale) + zero_point, qmin, qmax), in float32 as Brevitas does. */
void xk_quantize(const float *x, uint32_t n, float scale, int32_t zero_point, int32_t qmin, int32_t qmax,
                 int32_t *q);

/* Integer input times binary weights: acc[o] = sum_i (w[o][i] ? +x[i] : -x[i]). */
void xk_dense_int_bin(const int32_t *x, uint32_t n_in, const uint32_t *weights, uint32_t n_out, int32_t *acc);

/* Binary input times binary weights: acc[o] = sum_i x_i w_o,i over +-1 values, computed as
 * 2 * popcount(XNOR(x, w[o])) - n_in over the n_in valid bits. */
void xk_dense_bin_bin(const uint32_t *x, uint32_t n_in, const uint32_t *weights, uint32_t n_out, int32_t *acc);

/* Sign activation: bit o of out = acc[o] >= threshold[o]; packed as above. */
void xk_threshold(const int32_t *acc, const int32_t *threshold, uint32_t n, uint32_t *out);

/* k-bit activation: out[o] = base + #{l < levels : acc[o] >= threshold[o * levels + l]}. */
void xk_multithreshold(const int32_t *acc, const int32_t *threshold, uint32_t n, uint32_t levels, int32_t base,
                       int32_t *out);

#endif
