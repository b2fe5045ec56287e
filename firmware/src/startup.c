/*
 * startup.c - reset handler and vector table for the dwgen firmware harness
 * (Cortex-M4, M7 and M33 on QEMU's MPS2 boards; any ARMv7-M / ARMv8-M core).
 *
 * Reset_Handler: enables the FPU (CPACR CP10/CP11 full access) before any C code
 * could use a floating-point register, sets the stack limit on ARMv8-M (MSPLIM),
 * copies .data from flash to RAM, zeroes .bss, runs constructors, calls main() and
 * hands its return value to the host as the exit status (semihosting).
 * A fault prints its name and the fault status registers, then exits with status 3.
 *
 * Build with the hard-float ABI of the core, e.g. -mcpu=cortex-m4 -mfpu=fpv4-sp-d16
 * -mfloat-abi=hard, and link with one of the ld/ scripts (they define the symbols
 * used below).
 */
#include <stddef.h>
#include <stdint.h>

#include "dwgen_semihost.h"

extern uint32_t __stack_top[], __stack_limit[];
extern uint32_t __data_start[], __data_end[], __data_load[];
extern uint32_t __bss_start[], __bss_end[];
typedef void (*dwgen_init_fn)(void);
extern dwgen_init_fn __preinit_array_start[], __preinit_array_end[];
extern dwgen_init_fn __init_array_start[], __init_array_end[];

int main(void);
void Reset_Handler(void);
void dwgen_default_handler(void);
void _exit(int status);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)
#define SCB_MMFAR (*(volatile uint32_t *)0xE000ED34u)
#define SCB_BFAR (*(volatile uint32_t *)0xE000ED38u)

__attribute__((noreturn)) void Reset_Handler(void)
{
#if defined(__ARM_FP)
    SCB_CPACR |= (3u << 20) | (3u << 22); /* CP10, CP11: full access */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
#if defined(__ARM_ARCH_8M_MAIN__) || defined(__ARM_ARCH_8_1M_MAIN__)
    __asm__ volatile("msr msplim, %0" ::"r"(__stack_limit));
#endif
    /* Word copies (the linker script aligns .data and .bss to 8 bytes); volatile so that
     * the compiler does not turn them into calls to memcpy/memset before .data exists. */
    for (volatile uint32_t *src = __data_load, *dst = __data_start; dst < __data_end;)
        *dst++ = *src++;
    for (volatile uint32_t *dst = __bss_start; dst < __bss_end;)
        *dst++ = 0;
    for (dwgen_init_fn *f = __preinit_array_start; f < __preinit_array_end; f++)
        (*f)();
    for (dwgen_init_fn *f = __init_array_start; f < __init_array_end; f++)
        (*f)();
    dwgen_semihost_exit(main());
}

/* newlib's exit() ends here. */
void _exit(int status)
{
    dwgen_semihost_exit(status);
}

static char *put_hex(char *p, uint32_t v)
{
    *p++ = '0';
    *p++ = 'x';
    for (int shift = 28; shift >= 0; shift -= 4)
        *p++ = "0123456789abcdef"[(v >> shift) & 0xfu];
    return p;
}

static char *put_str(char *p, const char *s)
{
    while (*s)
        *p++ = *s++;
    return p;
}

void dwgen_default_handler(void)
{
    static const char *const names[16] = {
        "?", "Reset", "NMI", "HardFault", "MemManage", "BusFault", "UsageFault", "SecureFault",
        "?", "?", "?", "SVCall", "DebugMonitor", "?", "PendSV", "SysTick",
    };
    char line[160], *p = line;
    uint32_t exc = SCB_ICSR & 0x1ffu;
    p = put_str(p, "dwgen: fault: ");
    p = put_str(p, exc < 16 ? names[exc] : "interrupt");
    p = put_str(p, " (exception ");
    p = put_hex(p, exc);
    p = put_str(p, ") CFSR ");
    p = put_hex(p, SCB_CFSR);
    p = put_str(p, " HFSR ");
    p = put_hex(p, SCB_HFSR);
    p = put_str(p, " MMFAR ");
    p = put_hex(p, SCB_MMFAR);
    p = put_str(p, " BFAR ");
    p = put_hex(p, SCB_BFAR);
    *p++ = '\n';
    *p = '\0';
    dwgen_semihost_puts(line);
    dwgen_semihost_exit(3);
}

void NMI_Handler(void) __attribute__((weak, alias("dwgen_default_handler")));
void HardFault_Handler(void) __attribute__((weak, alias("dwgen_default_handler")));
void MemManage_Handler(void) __attribute__((weak, alias("dwgen_default_handler")));
void BusFault_Handler(void) __attribute__((weak, alias("dwgen_default_handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("dwgen_default_handler")));
void SecureFault_Handler(void) __attribute__((weak, alias("dwgen_default_handler")));
void SVC_Handler(void) __attribute__((weak, alias("dwgen_default_handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("dwgen_default_handler")));
void PendSV_Handler(void) __attribute__((weak, alias("dwgen_default_handler")));
void SysTick_Handler(void) __attribute__((weak, alias("dwgen_default_handler")));

/* The 16 system exceptions and 32 external interrupts (none is enabled by the harness;
 * a stray one reports itself through dwgen_default_handler). */
typedef void (*dwgen_vector)(void);
#define DWGEN_IRQ8 dwgen_default_handler, dwgen_default_handler, dwgen_default_handler, \
    dwgen_default_handler, dwgen_default_handler, dwgen_default_handler, dwgen_default_handler, \
    dwgen_default_handler
__attribute__((section(".vectors"), used)) const dwgen_vector dwgen_vectors[16 + 32] = {
    (dwgen_vector)(uintptr_t)__stack_top,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    SecureFault_Handler,
    0,
    0,
    0,
    SVC_Handler,
    DebugMon_Handler,
    0,
    PendSV_Handler,
    SysTick_Handler,
    DWGEN_IRQ8, DWGEN_IRQ8, DWGEN_IRQ8, DWGEN_IRQ8,
};
