/* Batch runner for the host and for semihosted targets: reads float32 input vectors from
 * XK_INPUT_PATH until end of file, writes the int32 outputs of xk_infer to XK_OUTPUT_PATH. */
#include <stdio.h>

#include "xk_model.h"

#ifndef XK_INPUT_PATH
#define XK_INPUT_PATH "inputs.bin"
#endif
#ifndef XK_OUTPUT_PATH
#define XK_OUTPUT_PATH "outputs.bin"
#endif

int main(void) {
    static float input[XK_INPUT_SIZE];
    static int32_t output[XK_OUTPUT_SIZE];
    FILE *in = fopen(XK_INPUT_PATH, "rb");
    FILE *out = fopen(XK_OUTPUT_PATH, "wb");
    if (!in || !out) {
        printf("xnorkit: cannot open %s or %s\n", XK_INPUT_PATH, XK_OUTPUT_PATH);
        return 1;
    }
    unsigned count = 0;
    while (fread(input, sizeof input[0], XK_INPUT_SIZE, in) == XK_INPUT_SIZE) {
        xk_infer(input, output);
        if (fwrite(output, sizeof output[0], XK_OUTPUT_SIZE, out) != XK_OUTPUT_SIZE) return 1;
        count++;
    }
    fclose(in);
    fclose(out);
    printf("xnorkit: %u inferences\n", count);
    return 0;
}
