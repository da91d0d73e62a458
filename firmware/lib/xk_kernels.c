#include "xk_kernels.h"

#include <math.h>
#include <string.h>
#if defined(__ARM_FEATURE_DSP) && !defined(XK_PORTABLE)
#include <arm_acle.h> /* __smlad: two 16-bit multiply-accumulates in one instruction (Cortex-M4, M7, M33) */
#endif

static float xk_prologue_at(const float *x, uint32_t i, const xk_prologue *prologue) {
    volatile float v = x[i]; /* volatile: each op rounds to float32 on its own, never fused */
    if (prologue == 0) return v;
    const float *values = prologue->values;
    for (uint32_t s = 0; s < prologue->steps; s++) {
        const float c = values[prologue->sizes[s] == 1u ? 0u : i];
        switch (prologue->ops[s]) {
        case XK_MUL: v = v * c; break;
        case XK_DIV: v = v / c; break;
        case XK_ADD: v = v + c; break;
        default: v = v - c; break;
        }
        values += prologue->sizes[s];
    }
    return v;
}

XK_API void xk_quantize(const float *x, uint32_t channels, uint32_t pixels, int channels_last, float scale,
                 int32_t zero_point, int32_t qmin, int32_t qmax, const xk_prologue *prologue, int32_t *q) {
    /* element (c, p) of the input: (C, H, W) order, or (H, W, C) for a channels-last one */
    const uint32_t c_step = channels_last ? 1u : pixels, p_step = channels_last ? channels : 1u;
    for (uint32_t c = 0; c < channels; c++) {
        for (uint32_t p = 0; p < pixels; p++) {
            volatile float scaled = xk_prologue_at(x, c * c_step + p * p_step, prologue) / scale;
            /* rintf rounds half to even in the default rounding mode, as torch.round does */
            float y = rintf(scaled + (float)zero_point);
            if (y < (float)qmin) y = (float)qmin;
            if (y > (float)qmax) y = (float)qmax;
            q[p * channels + c] = (int32_t)y;
        }
    }
}

/* a bipolar input value at channel c of pixel p: a bit of the packed map (bit 1 = +1), or -1/+1 */
static void xk_put_sign(int positive, uint32_t c, uint32_t p, uint32_t channels, uint32_t *bits, int32_t *ints) {
    if (bits) {
        if (positive) bits[p * XK_WORDS(channels) + c / 32u] |= 1u << (c % 32u);
    } else {
        ints[p * channels + c] = positive ? 1 : -1;
    }
}

XK_API void xk_quantize_sign(const float *x, uint32_t channels, uint32_t pixels, int channels_last,
                      const xk_prologue *prologue, uint32_t *bits, int32_t *ints) {
    const uint32_t c_step = channels_last ? 1u : pixels, p_step = channels_last ? channels : 1u;
    if (bits) memset(bits, 0, (size_t)pixels * XK_WORDS(channels) * sizeof bits[0]);
    for (uint32_t c = 0; c < channels; c++) {
        for (uint32_t p = 0; p < pixels; p++) {
            xk_put_sign(xk_prologue_at(x, c * c_step + p * p_step, prologue) >= 0.0f, c, p, channels, bits, ints);
        }
    }
}

/* one element of an integer input of `elem_bytes` bytes (1, 2 or 4), signed or not */
static int32_t xk_int_at(const void *x, uint32_t i, uint32_t elem_bytes, int is_signed) {
    switch (elem_bytes) {
    case 1u: return is_signed ? (int32_t)((const int8_t *)x)[i] : (int32_t)((const uint8_t *)x)[i];
    case 2u: return is_signed ? (int32_t)((const int16_t *)x)[i] : (int32_t)((const uint16_t *)x)[i];
    default: return ((const int32_t *)x)[i];
    }
}

XK_API void xk_load_ints(const void *x, uint32_t elem_bytes, int is_signed, uint32_t channels, uint32_t pixels,
                         int channels_last, int32_t qmin, int32_t qmax, int32_t *q) {
    const uint32_t c_step = channels_last ? 1u : pixels, p_step = channels_last ? channels : 1u;
    for (uint32_t c = 0; c < channels; c++) {
        for (uint32_t p = 0; p < pixels; p++) {
            int32_t v = xk_int_at(x, c * c_step + p * p_step, elem_bytes, is_signed);
            q[p * channels + c] = v < qmin ? qmin : (v > qmax ? qmax : v);
        }
    }
}

XK_API void xk_load_signs(const int8_t *x, uint32_t channels, uint32_t pixels, int channels_last, uint32_t *bits,
                          int32_t *ints) {
    const uint32_t c_step = channels_last ? 1u : pixels, p_step = channels_last ? channels : 1u;
    if (bits) memset(bits, 0, (size_t)pixels * XK_WORDS(channels) * sizeof bits[0]);
    for (uint32_t c = 0; c < channels; c++) {
        for (uint32_t p = 0; p < pixels; p++) xk_put_sign(x[c * c_step + p * p_step] > 0, c, p, channels, bits, ints);
    }
}

#if defined(XK_PATH_REFERENCE)
XK_API uint32_t xk_popcount_xor(const uint32_t *a, const uint32_t *b, uint32_t words) {
    uint32_t total = 0;
    for (uint32_t i = 0; i < words; i++) total += xk_popcount32(a[i] ^ b[i]);
    return total;
}
#elif defined(XK_PATH_POPCNT64)
XK_API uint32_t xk_popcount_xor(const uint32_t *a, const uint32_t *b, uint32_t words) {
    uint64_t c0 = 0, c1 = 0, c2 = 0, c3 = 0;  /* four chains keep the popcount unit busy */
    uint32_t i = 0;
    for (; i + 8u <= words; i += 8u) {
        uint64_t a64[4], b64[4];
        memcpy(a64, a + i, sizeof a64);  /* unaligned 64-bit loads; the compiler emits plain moves */
        memcpy(b64, b + i, sizeof b64);
        c0 += (uint64_t)__builtin_popcountll(a64[0] ^ b64[0]);
        c1 += (uint64_t)__builtin_popcountll(a64[1] ^ b64[1]);
        c2 += (uint64_t)__builtin_popcountll(a64[2] ^ b64[2]);
        c3 += (uint64_t)__builtin_popcountll(a64[3] ^ b64[3]);
    }
    for (; i < words; i++) c0 += xk_popcount32(a[i] ^ b[i]);
    return (uint32_t)(c0 + c1 + c2 + c3);
}
#else
/* carry-save adder: (high, low) = a + b + c bitwise */
#define XK_CSA(high, low, a, b, c) do { uint32_t u_ = (a) ^ (b); \
    (high) = ((a) & (b)) | (u_ & (c)); (low) = u_ ^ (c); } while (0)

XK_API uint32_t xk_popcount_xor(const uint32_t *a, const uint32_t *b, uint32_t words) {
    uint32_t total = 0, ones = 0, twos = 0, fours = 0, eights;
    uint32_t twos_a, twos_b, fours_a, fours_b;
    uint32_t i = 0;
    for (; i + 8u <= words; i += 8u) {
        XK_CSA(twos_a, ones, ones, a[i] ^ b[i], a[i + 1u] ^ b[i + 1u]);
        XK_CSA(twos_b, ones, ones, a[i + 2u] ^ b[i + 2u], a[i + 3u] ^ b[i + 3u]);
        XK_CSA(fours_a, twos, twos, twos_a, twos_b);
        XK_CSA(twos_a, ones, ones, a[i + 4u] ^ b[i + 4u], a[i + 5u] ^ b[i + 5u]);
        XK_CSA(twos_b, ones, ones, a[i + 6u] ^ b[i + 6u], a[i + 7u] ^ b[i + 7u]);
        XK_CSA(fours_b, twos, twos, twos_a, twos_b);
        XK_CSA(eights, fours, fours, fours_a, fours_b);
        total += xk_popcount32(eights);
    }
    total = 8u * total + 4u * xk_popcount32(fours) + 2u * xk_popcount32(twos) + xk_popcount32(ones);
    /* the tail counted down from its length: GCC's constant propagation warned on an index counted up here */
    for (uint32_t left = words - i; left > 0u; left--, i++) total += xk_popcount32(a[i] ^ b[i]);
    return total;
}
#endif

#if defined(XK_PATH_POPCNT64)
/* differing bits of x against four consecutive rows of w: each 64-bit word of x is loaded once for four
 * popcounts, so the popcount unit, not the loads, sets the pace */
static void xk_popcount_xor4(const uint32_t *x, const uint32_t *w, uint32_t words, uint32_t *differ) {
    uint64_t c0 = 0, c1 = 0, c2 = 0, c3 = 0;
    uint32_t i = 0;
    for (; i + 2u <= words; i += 2u) {
        uint64_t xv, r0, r1, r2, r3;
        memcpy(&xv, x + i, sizeof xv);
        memcpy(&r0, w + i, sizeof r0);
        memcpy(&r1, w + words + i, sizeof r1);
        memcpy(&r2, w + 2u * words + i, sizeof r2);
        memcpy(&r3, w + 3u * words + i, sizeof r3);
        c0 += (uint64_t)__builtin_popcountll(xv ^ r0);
        c1 += (uint64_t)__builtin_popcountll(xv ^ r1);
        c2 += (uint64_t)__builtin_popcountll(xv ^ r2);
        c3 += (uint64_t)__builtin_popcountll(xv ^ r3);
    }
    for (; i < words; i++) {
        c0 += xk_popcount32(x[i] ^ w[i]);
        c1 += xk_popcount32(x[i] ^ w[words + i]);
        c2 += xk_popcount32(x[i] ^ w[2u * words + i]);
        c3 += xk_popcount32(x[i] ^ w[3u * words + i]);
    }
    differ[0] = (uint32_t)c0;
    differ[1] = (uint32_t)c1;
    differ[2] = (uint32_t)c2;
    differ[3] = (uint32_t)c3;
}
#endif

XK_API void xk_dense_bin_bin(const uint32_t *x, uint32_t words, uint32_t n_valid, const uint32_t *weights,
                      uint32_t n_out, int32_t *acc) {
    /* padding bits are 0 in both operands and never differ: the n_valid real products are +1 where the
     * bits agree and -1 where they differ */
    uint32_t o = 0;
#if defined(XK_PATH_POPCNT64)
    for (; o + 4u <= n_out; o += 4u) {
        uint32_t differ[4];
        xk_popcount_xor4(x, weights + o * words, words, differ);
        for (uint32_t k = 0; k < 4u; k++) acc[o + k] = (int32_t)n_valid - 2 * (int32_t)differ[k];
    }
#endif
    for (; o < n_out; o++) {
        acc[o] = (int32_t)n_valid - 2 * (int32_t)xk_popcount_xor(x, weights + o * words, words);
    }
}

XK_API void xk_dense_bin_masked(const uint32_t *x, uint32_t words, const uint32_t *keep, const uint32_t *positive,
                         const int32_t *kept, uint32_t n_out, int32_t *acc) {
    /* padding bits are 0 in `keep`: they never count */
    for (uint32_t o = 0; o < n_out; o++) {
        const uint32_t *k = keep + o * words, *p = positive + o * words;
        uint32_t differ = 0;
        for (uint32_t i = 0; i < words; i++) differ += xk_popcount32(k[i] & (x[i] ^ p[i]));
        acc[o] = kept[o] - 2 * (int32_t)differ;
    }
}

XK_API void xk_dense_bin_sparse(const uint32_t *x, const uint32_t *row_start, const uint16_t *word_index,
                         const uint32_t *keep, const uint32_t *positive, const int32_t *kept, uint32_t n_out,
                         int32_t *acc) {
    for (uint32_t o = 0; o < n_out; o++) {
        uint32_t differ = 0;
        for (uint32_t j = row_start[o]; j < row_start[o + 1u]; j++) {
            differ += xk_popcount32(keep[j] & (x[word_index[j]] ^ positive[j]));
        }
        acc[o] = kept[o] - 2 * (int32_t)differ;
    }
}

XK_API void xk_dense_int_bin(const int32_t *x, uint32_t n_in, uint32_t in_bits, int is_signed, const uint32_t *weights,
                      const int32_t *ones, uint32_t n_out, uint32_t *planes, int32_t *acc) {
    const uint32_t words = XK_WORDS(n_in);
    for (uint32_t i = 0; i < in_bits * words; i++) planes[i] = 0;
    for (uint32_t i = 0; i < n_in; i++) {
        const uint32_t value = (uint32_t)x[i];  /* two's complement bits of a signed input */
        for (uint32_t k = 0; k < in_bits; k++) planes[k * words + i / 32u] |= ((value >> k) & 1u) << (i % 32u);
    }
    for (uint32_t o = 0; o < n_out; o++) {
        const uint32_t *row = weights + o * words;
        int32_t sum = 0;
        for (uint32_t k = 0; k < in_bits; k++) {
            const int32_t plane = ones[o] - (int32_t)xk_popcount_xor(planes + k * words, row, words);
            sum += (is_signed && k + 1u == in_bits) ? -(plane * (int32_t)(1u << k)) : plane * (int32_t)(1u << k);
        }
        acc[o] = sum;
    }
}

/* a 16-bit table entry, read and written bytewise (memcpy: the arena is uint32_t storage); compilers emit one
 * halfword access */
static inline uint32_t xk_entry(const uint16_t *table, uint32_t i) {
    uint16_t v;
    memcpy(&v, table + i, sizeof v);
    return v;
}

/* The subset-sum tables of xk_dense_int_lut: group g's table holds, at index m, the sum of u = x - lo over the
 * inputs g * group_bits + b whose bit b is set in m (0 past n_in). Entry m + 2^b is entry m plus u_b: after the
 * first two, two entries at a time (each fits 16 bits, so the halves never carry into each other). */
static uint32_t xk_lut_build(const int32_t *x, uint32_t n_in, int32_t lo, uint32_t group_bits, uint16_t *table) {
    const uint32_t groups = XK_WORDS(n_in) * (32u / group_bits), size = 1u << group_bits;
    uint32_t total = 0;
    for (uint32_t g = 0; g < groups; g++, table += size) {
        uint16_t u[8] = {0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u};
        for (uint32_t b = 0; b < group_bits && g * group_bits + b < n_in; b++) {
            u[b] = (uint16_t)(x[g * group_bits + b] - lo);
            total += u[b];
        }
        if (group_bits == 4u) {  /* 16 entries written straight: the doubling loops cost more than the sums */
            const uint16_t a = u[0], b = u[1], c = u[2], d = u[3], ab = (uint16_t)(a + b), cd = (uint16_t)(c + d);
            const uint16_t sums[16] = {0u, a, b, ab, c, (uint16_t)(a + c), (uint16_t)(b + c), (uint16_t)(ab + c),
                                       d, (uint16_t)(a + d), (uint16_t)(b + d), (uint16_t)(ab + d), cd,
                                       (uint16_t)(a + cd), (uint16_t)(b + cd), (uint16_t)(ab + cd)};
            memcpy(table, sums, sizeof sums);
            continue;
        }
        const uint16_t first[2] = {0u, u[0]};
        memcpy(table, first, sizeof first);
        for (uint32_t b = 1; b < group_bits; b++) {
            const uint32_t half = 1u << b, both = (uint32_t)u[b] * 0x10001u;
            for (uint32_t j = 0; j < half; j += 2u) {
                uint32_t pair;
                memcpy(&pair, table + j, sizeof pair);
                pair += both;
                memcpy(table + half + j, &pair, sizeof pair);
            }
        }
    }
    return total;
}

/* sum over a row's groups of their table entries at the row's weight bits: S = sum of u where the bit is set */
static uint32_t xk_lut_sum(const uint32_t *row, uint32_t words, uint32_t group_bits, const uint16_t *table) {
    uint32_t sum = 0;
    if (group_bits == 8u) {
        for (uint32_t w = 0; w < words; w++, table += 1024u) {
            const uint32_t bits = row[w];
            sum += xk_entry(table, bits & 255u) + xk_entry(table, 256u + ((bits >> 8) & 255u))
                 + xk_entry(table, 512u + ((bits >> 16) & 255u)) + xk_entry(table, 768u + (bits >> 24));
        }
        return sum;
    }
    for (uint32_t w = 0; w < words; w++, table += 128u) {
        const uint32_t bits = row[w];
        sum += xk_entry(table, bits & 15u) + xk_entry(table, 16u + ((bits >> 4) & 15u))
             + xk_entry(table, 32u + ((bits >> 8) & 15u)) + xk_entry(table, 48u + ((bits >> 12) & 15u))
             + xk_entry(table, 64u + ((bits >> 16) & 15u)) + xk_entry(table, 80u + ((bits >> 20) & 15u))
             + xk_entry(table, 96u + ((bits >> 24) & 15u)) + xk_entry(table, 112u + (bits >> 28));
    }
    return sum;
}

XK_API void xk_dense_int_lut(const int32_t *x, uint32_t n_in, int32_t lo, const uint32_t *positive,
                             const uint32_t *negative, const int32_t *offset, uint32_t n_out, uint32_t group_bits,
                             uint16_t *table, int32_t *acc) {
    const uint32_t words = XK_WORDS(n_in);
    const int32_t total = (int32_t)xk_lut_build(x, n_in, lo, group_bits, table);
    for (uint32_t o = 0; o < n_out; o++) {
        const int32_t plus = (int32_t)xk_lut_sum(positive + o * words, words, group_bits, table);
        /* binary: the -1 weights are the others, so w . u = S(+1) - (U - S(+1)) */
        const int32_t minus = negative ? (int32_t)xk_lut_sum(negative + o * words, words, group_bits, table)
                                       : total - plus;
        acc[o] = plus - minus + (offset ? offset[o] : 0);
    }
}

XK_API void xk_dense_int_kbit(const int32_t *x, uint32_t n_in, const uint32_t *weights, uint32_t field_bits, uint32_t n_out,
                       int32_t *acc) {
    const uint32_t per_word = 32u / field_bits, words = (n_in + per_word - 1u) / per_word;
    const uint32_t mask = (1u << field_bits) - 1u, sign = 1u << (field_bits - 1u);
    for (uint32_t o = 0; o < n_out; o++) {
        const uint32_t *row = weights + o * words;
        int32_t sum = 0;
        for (uint32_t w = 0, i = 0; w < words; w++) {
            uint32_t word = row[w];
            for (uint32_t f = 0; f < per_word && i < n_in; f++, i++, word >>= field_bits) {
                const int32_t weight = (int32_t)((word & mask) ^ sign) - (int32_t)sign;  /* sign-extend */
                sum += x[i] * weight;
            }
        }
        acc[o] = sum;
    }
}

XK_API void xk_dense_int_int(const int32_t *x, uint32_t n_in, const int8_t *weights, uint32_t n_out, int32_t *acc) {
    for (uint32_t o = 0; o < n_out; o++) {
        const int8_t *row = weights + o * n_in;
        int32_t sum = 0;
        for (uint32_t i = 0; i < n_in; i++) sum += x[i] * (int32_t)row[i];
        acc[o] = sum;
    }
}

/* the input row (or column) of window element k at output position o, or -1 outside the map */
static int32_t xk_source(uint32_t o, uint32_t stride, uint32_t k, uint32_t pad, uint32_t size) {
    int32_t i = (int32_t)(o * stride + k) - (int32_t)pad;
    return (i >= 0 && i < (int32_t)size) ? i : -1;
}

XK_API void xk_conv_bin_bin(const uint32_t *x, const xk_conv_shape *s, const uint32_t *weights, int32_t *acc) {
    const uint32_t words = XK_WORDS(s->c);
    for (uint32_t oy = 0; oy < s->ho; oy++) {
        for (uint32_t ox = 0; ox < s->wo; ox++) {
            int32_t *out = acc + (oy * s->wo + ox) * s->out_c;
            for (uint32_t o = 0; o < s->out_c; o++) {
                const uint32_t *kernel = weights + o * s->kh * s->kw * words;
                int32_t differ = 0, valid = 0;  /* padding positions: the real value 0, left out */
                for (uint32_t ky = 0; ky < s->kh; ky++) {
                    int32_t iy = xk_source(oy, s->sh, ky, s->pad_t, s->h);
                    if (iy < 0) continue;
                    for (uint32_t kx = 0; kx < s->kw; kx++) {
                        int32_t ix = xk_source(ox, s->sw, kx, s->pad_l, s->w);
                        if (ix < 0) continue;  /* padding: the real value 0 */
                        const uint32_t *pixel = x + ((uint32_t)iy * s->w + (uint32_t)ix) * words;
                        const uint32_t *wk = kernel + (ky * s->kw + kx) * words;
                        differ += (int32_t)xk_popcount_xor(pixel, wk, words);
                        valid += s->c;
                    }
                }
                out[o] = valid - 2 * differ;
            }
        }
    }
}

/* n <= 32 bits of `bits` (the others 0) written at bit `at` of the zeroed packed vector dst */
static void xk_put_bits(uint32_t *dst, uint32_t at, uint32_t bits, uint32_t n) {
    const uint32_t shift = at % 32u;
    dst[at / 32u] |= bits << shift;
    if (shift + n > 32u) dst[at / 32u + 1u] |= bits >> (32u - shift);
}

/* The window at output (oy, ox) as one packed vector, tap t's channels at bits t * c ..., and the bits of the
 * taps inside the map in `valid`; returns how many bits are valid. */
static uint32_t xk_window_bits(const uint32_t *x, const xk_conv_shape *s, uint32_t oy, uint32_t ox, uint32_t words,
                               uint32_t *window, uint32_t *valid) {
    const uint32_t in_words = XK_WORDS(s->c);
    uint32_t n_valid = 0;
    for (uint32_t i = 0; i < words; i++) window[i] = valid[i] = 0;
    for (uint32_t t = 0; t < (uint32_t)s->kh * s->kw; t++) {
        const int32_t iy = xk_source(oy, s->sh, t / s->kw, s->pad_t, s->h);
        const int32_t ix = xk_source(ox, s->sw, t % s->kw, s->pad_l, s->w);
        if (iy < 0 || ix < 0) continue;  /* padding: the real value 0, in neither count */
        const uint32_t *pixel = x + ((uint32_t)iy * s->w + (uint32_t)ix) * in_words;
        for (uint32_t j = 0; j < in_words; j++) {
            const uint32_t n = s->c - 32u * j < 32u ? s->c - 32u * j : 32u, mask = n < 32u ? (1u << n) - 1u : ~0u;
            xk_put_bits(window, t * s->c + 32u * j, pixel[j] & mask, n);
            xk_put_bits(valid, t * s->c + 32u * j, mask, n);
        }
        n_valid += s->c;
    }
    return n_valid;
}

XK_API void xk_conv_bin_window(const uint32_t *x, const xk_conv_shape *s, const uint32_t *weights, int32_t *acc) {
    const uint32_t n_bits = (uint32_t)s->kh * s->kw * s->c, words = XK_WORDS(n_bits);
    uint32_t window[XK_WINDOW_WORDS], valid[XK_WINDOW_WORDS];
    for (uint32_t oy = 0; oy < s->ho; oy++) {
        for (uint32_t ox = 0; ox < s->wo; ox++) {
            int32_t *out = acc + (oy * s->wo + ox) * s->out_c;
            const uint32_t n_valid = xk_window_bits(x, s, oy, ox, words, window, valid);
            for (uint32_t o = 0; o < s->out_c; o++) {
                const uint32_t *row = weights + o * words;
                uint32_t differ = 0;
                if (n_valid == n_bits) {  /* inside the map: the plain XOR-popcount */
                    differ = xk_popcount_xor(window, row, words);
                } else {
                    for (uint32_t i = 0; i < words; i++) differ += xk_popcount32((window[i] ^ row[i]) & valid[i]);
                }
                out[o] = (int32_t)n_valid - 2 * (int32_t)differ;
            }
        }
    }
}

#define XK_WINDOW_TAPS 64u /* taps of a window found at once, for every output channel */

/* Taps from .. to - 1 of the window at output (oy, ox) (tap t at row t / kw, column t % kw) that fall inside the
 * map, padding being the real value 0: their input offsets and weight offsets. */
static uint32_t xk_window_taps(const xk_conv_shape *s, uint32_t oy, uint32_t ox, uint32_t from, uint32_t to,
                               uint32_t group_in, uint32_t *pixel_at, uint32_t *weight_at) {
    uint32_t n = 0;
    for (uint32_t t = from; t < to; t++) {
        int32_t iy = xk_source(oy, s->sh, t / s->kw, s->pad_t, s->h);
        int32_t ix = xk_source(ox, s->sw, t % s->kw, s->pad_l, s->w);
        if (iy < 0 || ix < 0) continue;
        pixel_at[n] = ((uint32_t)iy * s->w + (uint32_t)ix) * s->c;
        weight_at[n++] = t * group_in;
    }
    return n;
}

/* A one-channel map's window values at (oy, ox) in window order, a padded tap 0 (kh * kw <= XK_WINDOW_TAPS). */
static void xk_window_values(const int32_t *x, const xk_conv_shape *s, uint32_t oy, uint32_t ox, int32_t *value) {
    const int32_t top = (int32_t)(oy * s->sh) - (int32_t)s->pad_t, left = (int32_t)(ox * s->sw) - (int32_t)s->pad_l;
    if (top >= 0 && left >= 0 && top + s->kh <= s->h && left + s->kw <= s->w) {  /* inside: rows copied */
        for (uint32_t ky = 0; ky < s->kh; ky++) {
            const int32_t *row = x + ((uint32_t)top + ky) * s->w + (uint32_t)left;
            for (uint32_t kx = 0; kx < s->kw; kx++) *value++ = row[kx];
        }
        return;
    }
    for (uint32_t ky = 0; ky < s->kh; ky++) {
        const int32_t iy = xk_source(oy, s->sh, ky, s->pad_t, s->h);
        for (uint32_t kx = 0; kx < s->kw; kx++) {
            const int32_t ix = iy < 0 ? -1 : xk_source(ox, s->sw, kx, s->pad_l, s->w);
            *value++ = ix < 0 ? 0 : x[(uint32_t)iy * s->w + (uint32_t)ix];
        }
    }
}

/* sum of a[i] * b[i] over 2 * pairs 16-bit values: SMLAD (two multiply-accumulates an instruction) on cores with
 * the DSP extension, a plain loop elsewhere; the same integer */
static int32_t xk_dot16(const int16_t *a, const int16_t *b, uint32_t pairs) {
    int32_t sum = 0;
#if defined(__ARM_FEATURE_DSP) && !defined(XK_PORTABLE)
    for (uint32_t i = 0; i < pairs; i++) {
        int32_t va, vb;
        memcpy(&va, a + 2u * i, sizeof va);
        memcpy(&vb, b + 2u * i, sizeof vb);
        sum = __smlad(va, vb, sum);
    }
#else
    for (uint32_t i = 0; i < 2u * pairs; i++) sum += (int32_t)a[i] * (int32_t)b[i];
#endif
    return sum;
}

XK_API void xk_conv_single_int16(const int32_t *x, const xk_conv_shape *s, const int16_t *weights, int32_t *acc) {
    const uint32_t window = (uint32_t)s->kh * s->kw, pairs = (window + 1u) / 2u;
    int32_t value[XK_WINDOW_TAPS];
    int16_t packed[XK_WINDOW_TAPS + 1u];
    packed[window] = 0;  /* an odd window's last pair: 0 against the weights' 0 */
    for (uint32_t oy = 0; oy < s->ho; oy++) {
        for (uint32_t ox = 0; ox < s->wo; ox++) {
            int32_t *out = acc + (oy * s->wo + ox) * s->out_c;
            xk_window_values(x, s, oy, ox, value);
            for (uint32_t t = 0; t < window; t++) packed[t] = (int16_t)value[t];
            for (uint32_t o = 0; o < s->out_c; o++) out[o] = xk_dot16(packed, weights + o * 2u * pairs, pairs);
        }
    }
}

XK_API void xk_conv_int_int(const int32_t *x, const xk_conv_shape *s, const int8_t *weights, int32_t *acc) {
    const uint32_t group_in = s->c / s->groups, group_out = s->out_c / s->groups;
    const uint32_t window = s->kh * s->kw;
    uint32_t pixel_at[XK_WINDOW_TAPS], weight_at[XK_WINDOW_TAPS];
    int32_t value[XK_WINDOW_TAPS];
    for (uint32_t oy = 0; oy < s->ho; oy++) {
        for (uint32_t ox = 0; ox < s->wo; ox++) {
            int32_t *out = acc + (oy * s->wo + ox) * s->out_c;
            for (uint32_t o = 0; o < s->out_c; o++) out[o] = 0;
            /* the taps are found once for every output channel: with few input channels (a first layer's one)
             * finding them cost more than their multiply-accumulates */
            if (s->c == 1u && window <= XK_WINDOW_TAPS) {  /* one input channel: the window once, dense dots */
                xk_window_values(x, s, oy, ox, value);
                for (uint32_t o = 0; o < s->out_c; o++) {
                    const int8_t *kernel = weights + o * window;
                    int32_t sum = 0;
                    for (uint32_t t = 0; t < window; t++) sum += value[t] * (int32_t)kernel[t];
                    out[o] = sum;
                }
                continue;
            }
            for (uint32_t from = 0; from < window; from += XK_WINDOW_TAPS) {
                const uint32_t to = window - from > XK_WINDOW_TAPS ? from + XK_WINDOW_TAPS : window;
                const uint32_t n = xk_window_taps(s, oy, ox, from, to, group_in, pixel_at, weight_at);
                for (uint32_t o = 0; o < s->out_c; o++) {
                    const int8_t *kernel = weights + o * window * group_in;
                    const uint32_t first = (o / group_out) * group_in;  /* the group's first input channel */
                    int32_t sum = 0;
                    if (group_in == 1u) {  /* one channel per tap: no channel loop */
                        for (uint32_t t = 0; t < n; t++) sum += x[pixel_at[t] + first] * (int32_t)kernel[weight_at[t]];
                    } else {
                        for (uint32_t t = 0; t < n; t++) {
                            const int32_t *pixel = x + pixel_at[t] + first;
                            const int8_t *wk = kernel + weight_at[t];
                            for (uint32_t c = 0; c < group_in; c++) sum += pixel[c] * (int32_t)wk[c];
                        }
                    }
                    out[o] += sum;
                }
            }
        }
    }
}

XK_API void xk_threshold(const int32_t *acc, const int32_t *threshold, uint32_t channels, uint32_t pixels,
                  uint32_t *out) {
    const uint32_t words = XK_WORDS(channels);
    for (uint32_t p = 0; p < pixels; p++) {
        uint32_t *bits = out + p * words;
        for (uint32_t i = 0; i < words; i++) bits[i] = 0;
        for (uint32_t c = 0; c < channels; c++) {
            if (acc[p * channels + c] >= threshold[c]) bits[c / 32u] |= 1u << (c % 32u);
        }
    }
}

XK_API void xk_sign_int(const int32_t *acc, const int32_t *threshold, uint32_t channels, uint32_t pixels, int32_t *out) {
    for (uint32_t p = 0; p < pixels; p++) {
        for (uint32_t c = 0; c < channels; c++) out[p * channels + c] = acc[p * channels + c] >= threshold[c] ? 1 : -1;
    }
}

XK_API void xk_multithreshold(const int32_t *acc, const int32_t *threshold, uint32_t channels, uint32_t pixels,
                       uint32_t levels, int32_t base, int32_t *out) {
    for (uint32_t p = 0; p < pixels; p++) {
        for (uint32_t c = 0; c < channels; c++) {
            const int32_t *row = threshold + c * levels;
            const int32_t value = acc[p * channels + c];
            /* a channel's thresholds are nondecreasing: the count reached is found by bisection */
            uint32_t reached = 0, above = levels;
            while (reached < above) {
                const uint32_t mid = (reached + above) / 2u;
                if (value >= row[mid]) {
                    reached = mid + 1u;
                } else {
                    above = mid;
                }
            }
            out[p * channels + c] = base + (int32_t)reached;
        }
    }
}

static int32_t xk_bit(const uint32_t *x, uint32_t words, uint32_t p, uint32_t c) {
    return (int32_t)((x[p * words + c / 32u] >> (c % 32u)) & 1u);
}

XK_API void xk_bits_to_int(const uint32_t *x, uint32_t channels, uint32_t pixels, int32_t *out) {
    const uint32_t words = XK_WORDS(channels);
    for (uint32_t p = 0; p < pixels; p++) {
        for (uint32_t c = 0; c < channels; c++) out[p * channels + c] = 2 * xk_bit(x, words, p, c) - 1;
    }
}

XK_API void xk_maxpool_bits(const uint32_t *x, const xk_pool_shape *s, uint32_t *out) {
    const uint32_t words = XK_WORDS(s->c);
    for (uint32_t oy = 0; oy < s->ho; oy++) {
        for (uint32_t ox = 0; ox < s->wo; ox++) {
            uint32_t *bits = out + (oy * s->wo + ox) * words;
            for (uint32_t i = 0; i < words; i++) bits[i] = 0;
            for (uint32_t ky = 0; ky < s->kh; ky++) {
                int32_t iy = xk_source(oy, s->sh, ky, s->pad_t, s->h);
                if (iy < 0) continue;
                for (uint32_t kx = 0; kx < s->kw; kx++) {
                    int32_t ix = xk_source(ox, s->sw, kx, s->pad_l, s->w);
                    if (ix < 0) continue;
                    const uint32_t *pixel = x + ((uint32_t)iy * s->w + (uint32_t)ix) * words;
                    for (uint32_t i = 0; i < words; i++) bits[i] |= pixel[i];
                }
            }
        }
    }
}

static void xk_pool_int(const int32_t *x, const xk_pool_shape *s, int32_t *out, int sum) {
    for (uint32_t oy = 0; oy < s->ho; oy++) {
        for (uint32_t ox = 0; ox < s->wo; ox++) {
            int32_t *values = out + (oy * s->wo + ox) * s->c;
            int first = 1;
            for (uint32_t ky = 0; ky < s->kh; ky++) {
                int32_t iy = xk_source(oy, s->sh, ky, s->pad_t, s->h);
                if (iy < 0) continue;
                for (uint32_t kx = 0; kx < s->kw; kx++) {
                    int32_t ix = xk_source(ox, s->sw, kx, s->pad_l, s->w);
                    if (ix < 0) continue;
                    const int32_t *pixel = x + ((uint32_t)iy * s->w + (uint32_t)ix) * s->c;
                    for (uint32_t c = 0; c < s->c; c++) {
                        if (first) values[c] = pixel[c];
                        else if (sum) values[c] += pixel[c];
                        else if (pixel[c] > values[c]) values[c] = pixel[c];
                    }
                    first = 0;
                }
            }
        }
    }
}

XK_API void xk_maxpool_int(const int32_t *x, const xk_pool_shape *s, int32_t *out) { xk_pool_int(x, s, out, 0); }

XK_API void xk_sumpool_int(const int32_t *x, const xk_pool_shape *s, int32_t *out) { xk_pool_int(x, s, out, 1); }

XK_API void xk_add_int(const int32_t *a, const int32_t *b, uint32_t n, int32_t *out) {
    for (uint32_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

XK_API void xk_concat_int(const int32_t *a, uint32_t a_channels, const int32_t *b, uint32_t b_channels, uint32_t pixels,
                   int32_t *out) {
    for (uint32_t p = 0; p < pixels; p++) {
        int32_t *pixel = out + p * (a_channels + b_channels);
        for (uint32_t c = 0; c < a_channels; c++) pixel[c] = a[p * a_channels + c];
        for (uint32_t c = 0; c < b_channels; c++) pixel[a_channels + c] = b[p * b_channels + c];
    }
}

XK_API void xk_concat_bits(const uint32_t *a, uint32_t a_channels, const uint32_t *b, uint32_t b_channels,
                    uint32_t pixels, uint32_t *out) {
    const uint32_t a_words = XK_WORDS(a_channels), b_words = XK_WORDS(b_channels);
    const uint32_t words = XK_WORDS(a_channels + b_channels);
    for (uint32_t p = 0; p < pixels; p++) {
        uint32_t *bits = out + p * words;
        for (uint32_t i = 0; i < words; i++) bits[i] = 0;
        for (uint32_t c = 0; c < a_channels + b_channels; c++) {
            uint32_t bit = c < a_channels ? (uint32_t)xk_bit(a, a_words, p, c)
                                          : (uint32_t)xk_bit(b, b_words, p, c - a_channels);
            bits[c / 32u] |= bit << (c % 32u);
        }
    }
}

XK_API void xk_output_int(const int32_t *x, uint32_t channels, uint32_t pixels, int32_t *out) {
    for (uint32_t p = 0; p < pixels; p++) {
        for (uint32_t c = 0; c < channels; c++) out[c * pixels + p] = x[p * channels + c];
    }
}

XK_API void xk_output_bits(const uint32_t *x, uint32_t channels, uint32_t pixels, int32_t *out) {
    const uint32_t words = XK_WORDS(channels);
    for (uint32_t p = 0; p < pixels; p++) {
        for (uint32_t c = 0; c < channels; c++) out[c * pixels + p] = xk_bit(x, words, p, c);
    }
}

static int64_t xk_score(const int32_t *x, const int32_t *weight, const int64_t *bias, uint32_t i) {
    return (int64_t)weight[i] * x[i] + bias[i];
}

XK_API int64_t xk_exit_margin(const int32_t *x, const int32_t *weight, const int64_t *bias, uint32_t n) {
    int64_t top = xk_score(x, weight, bias, 0), second = xk_score(x, weight, bias, 1);
    if (second > top) {
        const int64_t first = second;
        second = top;
        top = first;
    }
    for (uint32_t i = 2; i < n; i++) {
        const int64_t score = xk_score(x, weight, bias, i);
        if (score > top) {
            second = top;
            top = score;
        } else if (score > second) {
            second = score;
        }
    }
    return top - second;
}

XK_API int32_t xk_class(const int32_t *x, const int32_t *weight, const int64_t *bias, uint32_t n) {
    uint32_t best = 0;
    int64_t best_score = xk_score(x, weight, bias, 0);
    for (uint32_t i = 1; i < n; i++) {
        const int64_t score = xk_score(x, weight, bias, i);
        if (score > best_score) {
            best = i;
            best_score = score;
        }
    }
    return (int32_t)best;
}
