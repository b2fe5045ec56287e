/*
 * semihost.c - console output and exit status over Arm semihosting.
 *
 * Operations (Arm "Semihosting for AArch32 and AArch64", v2):
 *   SYS_WRITE0 (0x04):        r1 = address of a NUL-terminated string
 *   SYS_EXIT (0x18):          r1 = reason code; ADP_Stopped_ApplicationExit exits 0,
 *                             any other reason exits 1 (QEMU)
 *   SYS_EXIT_EXTENDED (0x20): r1 = address of {reason, subcode}; QEMU exits with subcode
 */
#include <stdint.h>

#include "dwgen_semihost.h"

#define SYS_WRITE0 0x04
#define SYS_EXIT 0x18
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026
#define ADP_STOPPED_RUNTIME_ERROR_UNKNOWN 0x20023

static inline uintptr_t semihost_call(uintptr_t op, uintptr_t arg)
{
    register uintptr_t r0 __asm__("r0") = op;
    register uintptr_t r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt #0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void dwgen_semihost_puts(const char *s)
{
    semihost_call(SYS_WRITE0, (uintptr_t)s);
}

void dwgen_test_puts(const char *s)
{
    dwgen_semihost_puts(s);
}

void dwgen_semihost_exit(int status)
{
    if (status == 0) {
        semihost_call(SYS_EXIT, ADP_STOPPED_APPLICATION_EXIT);
    } else {
        volatile uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)status & 0xffu};
        if (block[1] == 0)
            block[1] = 1;
        semihost_call(SYS_EXIT_EXTENDED, (uintptr_t)block);
        /* A host without SYS_EXIT_EXTENDED returns: report a plain failure. */
        semihost_call(SYS_EXIT, ADP_STOPPED_RUNTIME_ERROR_UNKNOWN);
    }
    for (;;)
        __asm__ volatile("bkpt #0");
}
