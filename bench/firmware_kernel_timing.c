/* Host timing of the binary dense kernel (bench/firmware_kernels.py): a 1024 x 1024 bipolar layer,
 * xk_dense_bin_bin called back to back; prints nanoseconds and TSC cycles per call (the fastest of nine
 * trials) and the kernel path. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <x86intrin.h>

#include "xk_kernels.h"

#define N_IN 1024u
#define N_OUT 1024u
#define WORDS (N_IN / 32u)

static uint32_t weights[N_OUT * WORDS];
static uint32_t x[WORDS];
static int32_t acc[N_OUT];

static uint32_t xorshift(uint32_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    return *state;
}

int main(int argc, char **argv) {
    const long reps = argc > 1 ? atol(argv[1]) : 1000;
    uint32_t state = 12345u;
    for (uint32_t i = 0; i < N_OUT * WORDS; i++) weights[i] = xorshift(&state);
    for (uint32_t i = 0; i < WORDS; i++) x[i] = xorshift(&state);
    for (long r = 0; r < reps / 10 + 1; r++) xk_dense_bin_bin(x, WORDS, N_IN, weights, N_OUT, acc); /* warm up */
    /* the fastest of several trials: other load on the machine only ever slows a trial down */
    double best_ns = 1e30, best_tsc = 0;
    int64_t check = 0;
    for (int trial = 0; trial < 9; trial++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        const unsigned long long c0 = __rdtsc();
        for (long r = 0; r < reps; r++) {
            xk_dense_bin_bin(x, WORDS, N_IN, weights, N_OUT, acc);
            x[r % WORDS] ^= (uint32_t)acc[r % N_OUT]; /* each call depends on the last: nothing is hoisted */
            check += acc[(r * 7) % N_OUT];
        }
        const unsigned long long c1 = __rdtsc();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        const double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / (double)reps;
        if (ns < best_ns) {
            best_ns = ns;
            best_tsc = (double)(c1 - c0) / (double)reps;
        }
    }
    printf("%.1f %.1f %s %lld\n", best_ns, best_tsc, XK_KERNEL_PATH, (long long)check);
    return 0;
}
