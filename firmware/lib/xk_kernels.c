#include "xk_kernels.h"

#include <math.h>

void xk_quantize(const float *x, uint32_t n, float scale, int32_t zero_point, int32_t qmin, int32_t qmax,
                 int32_t *q) {
    for (uint32_t i = 0; i < n; i++) {
        /* rintf rounds half to even in the default rounding mode, as torch.round does */
        float y = rintf(x[i] / scale + (float)zero_point);
        if (y < (float)qmin) y = (float)qmin;
        if (y > (float)qmax) y = (float)qmax;
        q[i] = (int32_t)y;
    }
}

void xk_dense_int_bin(const int32_t *x, uint32_t n_in, const uint32_t *weights, uint32_t n_out, int32_t *acc) {
    const uint32_t words = XK_WORDS(n_in);
    for (uint32_t o = 0; o < n_out; o++) {
        const uint32_t *row = weights + o * words;
        int32_t sum = 0;
        for (uint32_t i = 0; i < n_in; i++) {
            sum += ((row[i / 32u] >> (i % 32u)) & 1u) ? x[i] : -x[i];
        }
        acc[o] = sum;
    }
}

void xk_dense_bin_bin(const uint32_t *x, uint32_t n_in, const uint32_t *weights, uint32_t n_out, int32_t *acc) {
    const uint32_t words = XK_WORDS(n_in);
    /* padding bits are 0 in both operands, so their XNOR counts as a match: take them off */
    const int32_t padding = (int32_t)(words * 32u - n_in);
    for (uint32_t o = 0; o < n_out; o++) {
        const uint32_t *row = weights + o * words;
        uint32_t matches = 0;
        for (uint32_t w = 0; w < words; w++) matches += xk_popcount32(~(x[w] ^ row[w]));
        acc[o] = 2 * ((int32_t)matches - padding) - (int32_t)n_in;
    }
}

void xk_threshold(const int32_t *acc, const int32_t *threshold, uint32_t n, uint32_t *out) {
    for (uint32_t w = 0; w < XK_WORDS(n); w++) out[w] = 0;
    for (uint32_t o = 0; o < n; o++) {
        if (acc[o] >= threshold[o]) out[o / 32u] |= 1u << (o % 32u);
    }
}

void xk_multithreshold(const int32_t *acc, const int32_t *threshold, uint32_t n, uint32_t levels, int32_t base,
                       int32_t *out) {
    for (uint32_t o = 0; o < n; o++) {
        const int32_t *row = threshold + o * levels;
        int32_t value = base;
        for (uint32_t l = 0; l < levels; l++) value += acc[o] >= row[l];
        out[o] = value;
    }
}
