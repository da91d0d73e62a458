/* Minimal Cortex-M start-up for the boards QEMU emulates (MPS2-AN386 and the others of firmware/runner.py):
 * code and constants where link.ld puts them, data loaded in place by QEMU, so nothing is copied. The stack is
 * the vector table's, at the top of link.ld's RAM: newlib's own _start (rdimon's crt0) is not used, because it
 * moves the stack to where QEMU's semihosting HEAPINFO says (512 KB into an MPS2 board's SSRAM, inside a large
 * program; outside the AN547's RAM). Here: zero .bss, open the semihosting handles, run the constructors, then
 * exit(main()) ends QEMU through semihosting. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __stack_top, __bss_start__, __bss_end__;
extern void initialise_monitor_handles(void);
extern void __libc_init_array(void);
extern int main(void);

void xk_reset_handler(void);
void xk_default_handler(void);
void _init(void);
void _fini(void);

void xk_reset_handler(void) {
#if defined(__ARM_FP)
    /* a hard-float build: grant full access to the FPU (CP10, CP11) before any floating-point instruction */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    for (volatile uint32_t *word = &__bss_start__; word < &__bss_end__; word++) *word = 0u;
    initialise_monitor_handles();
    __libc_init_array();
    exit(main());
}

/* __libc_init_array calls _init; without newlib's start files (-nostartfiles) there is none: nothing to do */
__attribute__((weak)) void _init(void) {}
__attribute__((weak)) void _fini(void) {}

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
