/* Instruction counts per kernel call on the emulated MPS2 boards: QEMU runs with -icount shift=0 (one
 * instruction per nanosecond of virtual time), and the board's CMSDK APB timer 0 counts down at the 25 MHz
 * system clock, so each timer tick is 40 instructions. xk_model.c, built with -DXK_PROFILE, calls
 * xk_profile_point(k) before its first kernel call and after each one. Reads float32 inputs from
 * inputs.bin like xk_runner.c, writes the int32 outputs to outputs.bin and, per inference, the timer ticks
 * each of the XK_PROFILE_STEPS steps took (uint32; 0 for steps an early exit skipped) to profile.bin. */
#include <stdio.h>

#include "xk_model.h"

#define XK_TIMER ((volatile uint32_t *)0x40000000u) /* CTRL, VALUE, RELOAD */
#define XK_MAX_POINTS 512u

#if XK_PROFILE_STEPS >= XK_MAX_POINTS
#error "more kernel calls than xk_profile.c records: raise XK_MAX_POINTS"
#endif

void xk_profile_point(uint32_t step);

static uint32_t xk_points[XK_MAX_POINTS];
static uint32_t xk_used;

void xk_profile_point(uint32_t step) {
    if (step < XK_MAX_POINTS) {
        xk_points[step] = XK_TIMER[1];
        if (step + 1u > xk_used) xk_used = step + 1u;
    }
}

int main(void) {
    static float input[XK_INPUT_SIZE];
    static int32_t output[XK_OUTPUT_SIZE];
    static uint32_t ticks[XK_MAX_POINTS];
    FILE *in = fopen("inputs.bin", "rb");
    FILE *out = fopen("outputs.bin", "wb");
    FILE *profile = fopen("profile.bin", "wb");
    if (!in || !out || !profile) {
        printf("xnorkit: cannot open inputs.bin, outputs.bin or profile.bin\n");
        return 1;
    }
    XK_TIMER[2] = 0xFFFFFFFFu;
    XK_TIMER[1] = 0xFFFFFFFFu;
    XK_TIMER[0] = 1u; /* enable, free-running down from 2^32 - 1 */
    while (fread(input, sizeof input[0], XK_INPUT_SIZE, in) == XK_INPUT_SIZE) {
        xk_used = 0;
        xk_infer(input, output);
        /* an early exit records its last point at the step it returns from: the steps after it took 0 */
        for (uint32_t k = 0; k < XK_PROFILE_STEPS; k++) {
            ticks[k] = k + 1u < xk_used ? xk_points[k] - xk_points[k + 1u] : 0u;
        }
        if (fwrite(output, sizeof output[0], XK_OUTPUT_SIZE, out) != XK_OUTPUT_SIZE) return 1;
        if (fwrite(ticks, sizeof ticks[0], XK_PROFILE_STEPS, profile) != XK_PROFILE_STEPS) return 1;
    }
    fclose(in);
    fclose(out);
    fclose(profile);
    return 0;
}
