/* Minimal Cortex-M4 start-up for the MPS2-AN386 board under QEMU: the whole program runs from SSRAM at
 * address 0 (link.ld), so nothing is copied from flash; newlib's _start (rdimon) zeroes .bss, sets up
 * semihosting and calls main, then exit() ends QEMU through semihosting. */
#include <stdint.h>

extern void _start(void);
extern uint32_t __stack_top;

void xk_reset_handler(void);
void xk_default_handler(void);

void xk_reset_handler(void) {
    _start();
    for (;;) {
    }
}

void xk_default_handler(void) {
    for (;;) {
    }
}

typedef void (*xk_vector)(void);

__attribute__((section(".vectors"), used)) const xk_vector xk_vectors[16] = {
    (xk_vector)(uintptr_t)&__stack_top, xk_reset_handler, xk_default_handler, xk_default_handler,
    xk_default_handler, xk_default_handler, xk_default_handler, 0, 0, 0, 0, xk_default_handler,
    xk_default_handler, 0, xk_default_handler, xk_default_handler,
};
