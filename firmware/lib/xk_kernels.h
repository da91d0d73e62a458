/* xnorkit kernels: portable C99 implementations of the IR nodes (docs/numerics.md, Firmware layout).
 *
 * A tensor is `channels` values at each of `pixels` positions (a vector: one pixel), stored pixel by
 * pixel, channels fastest: a (C, H, W) feature map in (H, W, C) order.
 * - integer tensors: int32_t[pixels * channels];
 * - bipolar tensors: each pixel's channels packed LSB first into XK_WORDS(channels) uint32_t words
 *   (channel c at word c / 32, bit c % 32), bit 1 = +1, bit 0 = -1, padding bits 0.
 * Bipolar inputs and weights multiply by XNOR and popcount; padding positions of a convolution and
 * padding bits count as the real value 0. */
#ifndef XK_KERNELS_H
#define XK_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How the kernels link: extern by default; a generated model (NAME.c) includes xk_kernels.c with XK_API static,
 * so that the kernels are its own and two models link into one firmware without a clash (the compiler drops the
 * kernels a model does not call). */
#ifndef XK_API
#define XK_API
#endif

#define XK_WORDS(n) (((n) + 31u) / 32u)

/* The kernel path, chosen at compile time (see xk_popcount_xor below). */
#if defined(XK_PORTABLE)
#define XK_PATH_REFERENCE 1
#define XK_KERNEL_PATH "reference"
#elif defined(__POPCNT__) || defined(__aarch64__)
#define XK_PATH_POPCNT64 1
#define XK_KERNEL_PATH "popcnt64"
#else
#define XK_PATH_HARLEY_SEAL 1
#define XK_KERNEL_PATH "harley-seal"
#endif

/* Bits set in a 32-bit word: the POPCNT instruction where the compiler targets it (x86-64 -mpopcnt), the
 * CNT instruction on AArch64, else a SWAR count (Cortex-M has no popcount instruction). All give the same
 * integers. */
static inline uint32_t xk_popcount32(uint32_t v) {
#if defined(XK_PATH_POPCNT64)
    return (uint32_t)__builtin_popcount(v);
#else
    v = v - ((v >> 1) & 0x55555555u);
    v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
    v = (v + (v >> 4)) & 0x0F0F0F0Fu;
    return (v * 0x01010101u) >> 24;
#endif
}

/* Bits that differ between a[0..words) and b[0..words): the XOR-popcount at the heart of every binary
 * dot product (a dot product of n bipolar values is n - 2 * differing). One implementation per ISA,
 * chosen at compile time (XK_KERNEL_PATH names it); all return the same integer:
 * - "reference" (compile with -DXK_PORTABLE): one word at a time, the plain definition;
 * - "popcnt64": 64-bit words through a popcount instruction (x86-64 with POPCNT, AArch64);
 * - "harley-seal": Cortex-M and other 32-bit cores without one: carry-save adders sum eight words' XORs
 *   bit-sliced, so one SWAR popcount serves eight words (Harley and Seal; Mula, Kurz, Lemire 2018). */
XK_API uint32_t xk_popcount_xor(const uint32_t *a, const uint32_t *b, uint32_t words);


/* A convolution's geometry; pads_t/pads_l are the top and left padding (bottom and right follow from
 * the output size). */
typedef struct {
    uint16_t c, h, w, out_c, kh, kw, sh, sw, pad_t, pad_l, ho, wo, groups;
} xk_conv_shape;

/* A pooling window's geometry (padding never wins a maximum and is not summed). */
typedef struct {
    uint16_t c, h, w, kh, kw, sh, sw, pad_t, pad_l, ho, wo;
} xk_pool_shape;

/* The float ops an exported model applies to its input before the input quantizer (the prologue), per
 * input element i (in the order of `x`), in order: x = x op value, op XK_MUL, XK_DIV, XK_ADD or
 * XK_SUB; a step's `sizes` value is 1 (one value for every element) or the input size (one per element),
 * its values following the previous step's in `values`. Each result is rounded to float32 before the next
 * op (a volatile store), so no compiler option (-ffp-contract, -ffast-math's fusing) changes the result. */
enum { XK_MUL = 0, XK_DIV = 1, XK_ADD = 2, XK_SUB = 3 };
typedef struct {
    uint32_t steps;
    const uint8_t *ops;
    const uint32_t *sizes;
    const float *values;
} xk_prologue;

/* Quantize: the prologue (NULL: none), then clamp(round_half_even(x / scale + zero_point), qmin, qmax), in
 * float32 as Brevitas and qonnx do. `x` is in the trained model's (C, H, W) order (`channels_last`: in
 * (H, W, C) order, a model whose first op after the quantizer is that transpose), `q` in (H, W, C) order. */
XK_API void xk_quantize(const float *x, uint32_t channels, uint32_t pixels, int channels_last, float scale,
                 int32_t zero_point, int32_t qmin, int32_t qmax, const xk_prologue *prologue, int32_t *q);

/* Bipolar input quantizer: +1 where the prologue's result is >= 0, else -1 (NaN: -1), as qonnx's BipolarQuant;
 * packed into bits (as xk_threshold writes them) when `bits` is given, else -1/+1 integers into `ints`. */
XK_API void xk_quantize_sign(const float *x, uint32_t channels, uint32_t pixels, int channels_last,
                      const xk_prologue *prologue, uint32_t *bits, int32_t *ints);

/* Integer input, already quantized (the integer API, NAME_infer_int): the values the input quantizer would
 * produce, `elem_bytes` bytes each (1, 2 or 4), signed or not, in the order xk_quantize reads; clamped to
 * [qmin, qmax] as the quantizer clamps; `q` in (H, W, C) order. */
XK_API void xk_load_ints(const void *x, uint32_t elem_bytes, int is_signed, uint32_t channels, uint32_t pixels,
                         int channels_last, int32_t qmin, int32_t qmax, int32_t *q);

/* Bipolar integer input: +1 where the value is above 0, else -1, so the IR's bits (1: +1, 0: -1) and -1/+1
 * values read the same; packed into bits when `bits` is given, else -1/+1 integers into `ints`, as
 * xk_quantize_sign writes them. */
XK_API void xk_load_signs(const int8_t *x, uint32_t channels, uint32_t pixels, int channels_last, uint32_t *bits,
                          int32_t *ints);

/* Bipolar input, bipolar weights: acc[o] = 2 * popcount(XNOR(x, w[o])) - n_valid over `words` words per
 * row, of which n_valid bits are real (the others are 0 in both and are taken off). */
XK_API void xk_dense_bin_bin(const uint32_t *x, uint32_t words, uint32_t n_valid, const uint32_t *weights,
                      uint32_t n_out, int32_t *acc);

/* Bipolar input, weights -1, 0 or +1 (a pruned binary or ternary layer) as two bit planes packed as above:
 * `keep` (the weight is not 0) and `positive` (it is +1), `kept[o]` of a row's weights kept:
 * acc[o] = kept[o] - 2 * popcount(keep & (x XOR positive)), the kept products that differ counting -1. */
XK_API void xk_dense_bin_masked(const uint32_t *x, uint32_t words, const uint32_t *keep, const uint32_t *positive,
                         const int32_t *kept, uint32_t n_out, int32_t *acc);

/* The same with only the words that hold a kept weight (zero-block skipping, a block-pruned layer): row o's
 * words are entries row_start[o] .. row_start[o + 1] - 1, entry j at word word_index[j] of the input, with its
 * keep[j] and positive[j] bits; the zero words are neither stored nor visited. */
XK_API void xk_dense_bin_sparse(const uint32_t *x, const uint32_t *row_start, const uint16_t *word_index,
                         const uint32_t *keep, const uint32_t *positive, const int32_t *kept, uint32_t n_out,
                         int32_t *acc);

/* Integer input of `in_bits` bits (two's complement when `is_signed`), bipolar weights packed as above (one
 * row of XK_WORDS(n_in) words per output, `ones[o]` of them set): acc[o] = sum_i (w[o][i] ? +x[i] : -x[i]),
 * by bit planes: with x = sum_k c_k x_k (c_k = 2^k; the sign plane of a signed input -2^(in_bits-1)),
 * acc[o] = sum_k c_k (ones[o] - popcount(X_k XOR W_o)), so the integer layer runs on the binary kernel.
 * `planes` is scratch for in_bits * XK_WORDS(n_in) words. */
XK_API void xk_dense_int_bin(const int32_t *x, uint32_t n_in, uint32_t in_bits, int is_signed, const uint32_t *weights,
                      const int32_t *ones, uint32_t n_out, uint32_t *planes, int32_t *acc);

/* Integer input of at most 12 bits, weights +1/-1 (binary) or -1/0/+1 (ternary, pruned) as bit planes packed as
 * above (one row of XK_WORDS(n_in) words per output): `positive` has the +1 weights; `negative` the -1 weights,
 * or NULL for binary weights (every weight not +1 is -1). By subset-sum tables: with u = x - lo (lo the input
 * type's least value, so u >= 0), each group of `group_bits` (4 or 8) inputs gets a table of the sums of u
 * over every subset of the group, and a row's dot product is one table read per group:
 * acc[o] = S(+1) - S(-1) + offset[o], offset[o] = lo * sum_i w[o][i] (NULL when lo = 0). An 8-bit group
 * reads 8 weights at once (an int8 SIMD kernel does 2 MACs an instruction at best); `table` is scratch for
 * XK_WORDS(n_in) * 32 / group_bits * 2^group_bits entries (64 bytes per input with 8-bit groups, 8 with 4). */
XK_API void xk_dense_int_lut(const int32_t *x, uint32_t n_in, int32_t lo, const uint32_t *positive,
                             const uint32_t *negative, const int32_t *offset, uint32_t n_out, uint32_t group_bits,
                             uint16_t *table, int32_t *acc);

/* Integer input, k-bit weights packed in `field_bits`-bit two's complement fields (2 or 4), 32 / field_bits to
 * a word, each row starting a new word: acc[o] = sum_i x[i] * w[o][i]. A quarter or half of int8's flash. */
XK_API void xk_dense_int_kbit(const int32_t *x, uint32_t n_in, const uint32_t *weights, uint32_t field_bits, uint32_t n_out,
                       int32_t *acc);

/* Integer input, k-bit weights (int8, row-major (out, in)): acc[o] = sum_i x[i] * w[o][i]. */
XK_API void xk_dense_int_int(const int32_t *x, uint32_t n_in, const int8_t *weights, uint32_t n_out, int32_t *acc);

/* Bipolar map, bipolar weights (groups = 1): weights[o][ky][kx] as XK_WORDS(c) packed words. */
XK_API void xk_conv_bin_bin(const uint32_t *x, const xk_conv_shape *s, const uint32_t *weights, int32_t *acc);

/* The same for few channels (c not a multiple of 32; kh * kw * c at most 32 * XK_WINDOW_WORDS): each window
 * gathered into one packed vector (tap t's channels at bits t * c ...), so a 5x5 window of 6 channels is five
 * words for one XOR-popcount instead of 25 one-word ones; weights[o] the (ky, kx, c) bits packed the same way
 * into XK_WORDS(kh * kw * c) words. Padding taps are masked out. */
#define XK_WINDOW_WORDS 64u
XK_API void xk_conv_bin_window(const uint32_t *x, const xk_conv_shape *s, const uint32_t *weights, int32_t *acc);

/* One input channel whose values fit 16 bits (a first layer on pixels), int8-range weights as int16, each output
 * channel's kh * kw taps padded to an even count: the window once per position, then SMLAD dot products on
 * cores with the DSP extension (two multiply-accumulates an instruction), a plain loop elsewhere. */
XK_API void xk_conv_single_int16(const int32_t *x, const xk_conv_shape *s, const int16_t *weights, int32_t *acc);

/* Integer map, k-bit weights (int8, (out, ky, kx, c / groups)), any groups. */
XK_API void xk_conv_int_int(const int32_t *x, const xk_conv_shape *s, const int8_t *weights, int32_t *acc);

/* Sign activation: bit of (pixel, channel) = acc >= threshold[channel]; packed as above. */
XK_API void xk_threshold(const int32_t *acc, const int32_t *threshold, uint32_t channels, uint32_t pixels,
                  uint32_t *out);

/* Sign activation as integers, -1 or +1 (the int8 baseline, which never packs bits). */
XK_API void xk_sign_int(const int32_t *acc, const int32_t *threshold, uint32_t channels, uint32_t pixels, int32_t *out);

/* k-bit activation: out = base + #{l < levels : acc >= threshold[channel * levels + l]} (each channel's levels
 * nondecreasing, as the IR requires: found by bisection). */
XK_API void xk_multithreshold(const int32_t *acc, const int32_t *threshold, uint32_t channels, uint32_t pixels,
                       uint32_t levels, int32_t base, int32_t *out);

/* A bipolar tensor's values as integers, -1 or +1 (for kernels that have no bipolar form). */
XK_API void xk_bits_to_int(const uint32_t *x, uint32_t channels, uint32_t pixels, int32_t *out);

/* Max pooling: an OR of bipolar bits, a maximum of integers. */
XK_API void xk_maxpool_bits(const uint32_t *x, const xk_pool_shape *s, uint32_t *out);
XK_API void xk_maxpool_int(const int32_t *x, const xk_pool_shape *s, int32_t *out);

/* Sum pooling (average pooling without its division). */
XK_API void xk_sumpool_int(const int32_t *x, const xk_pool_shape *s, int32_t *out);

/* Elementwise sum (residual connections). */
XK_API void xk_add_int(const int32_t *a, const int32_t *b, uint32_t n, int32_t *out);

/* Channel concatenation per pixel: a's channels, then b's. */
XK_API void xk_concat_int(const int32_t *a, uint32_t a_channels, const int32_t *b, uint32_t b_channels, uint32_t pixels,
                   int32_t *out);
XK_API void xk_concat_bits(const uint32_t *a, uint32_t a_channels, const uint32_t *b, uint32_t b_channels,
                    uint32_t pixels, uint32_t *out);

/* The network's output in the IR's (C, H, W) order as int32 (bipolar: the bit, 1 = +1). */
XK_API void xk_output_int(const int32_t *x, uint32_t channels, uint32_t pixels, int32_t *out);
XK_API void xk_output_bits(const uint32_t *x, uint32_t channels, uint32_t pixels, int32_t *out);

/* The class of n >= 2 integer outputs: the index of the largest class score weight[i] * x[i] + bias[i]
 * (numerics.class_scores; the first on ties). */
XK_API int32_t xk_class(const int32_t *x, const int32_t *weight, const int64_t *bias, uint32_t n);
/* An early exit's confidence (numerics.exit_margin): the largest class score minus the second largest. */
XK_API int64_t xk_exit_margin(const int32_t *x, const int32_t *weight, const int64_t *bias, uint32_t n);

#ifdef __cplusplus
}
#endif

#endif
