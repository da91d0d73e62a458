/* Minimal Cortex-M start-up for the boards QEMU emulates (MPS2-AN386 and the others of firmware/runner.py):
 * code and constants where link.ld puts them, data and bss loaded in place by QEMU, so nothing is copied;
 * newlib's _start (rdimon) zeroes .bss, sets up semihosting and calls main, then exit() ends QEMU through
 * semihosting. */
#include <stdint.h>

extern void _start(void);
extern uint32_t __stack_top;

void xk_reset_handler(void);
void xk_default_handler(void);

void xk_reset_handler(void) {
#if defined(__ARM_FP)
    /* a hard-float build: grant full access to the FPU (CP10, CP11) before any floating-point instruction */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
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
