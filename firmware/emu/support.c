/* Minimal runtime for dwgen's emulated builds (no libc is linked).
 *
 * gcc and clang may emit calls to memcpy/memset/memmove (struct copies, loops
 * recognised as idioms) and, with the ARM EABI, to __aeabi_memcpy*, __aeabi_memset*,
 * __aeabi_memclr* and __aeabi_memmove*.  This file provides all of them, plus
 * __emu_return: the address the emulator puts in LR, so that "return from the
 * called function" is "reach this address" (it is never executed).
 *
 * With build_elf(..., newlib=True) (gcc only) the C library's memory functions are
 * linked instead and this file is compiled with -DDWGEN_EMU_LIBC_MEMFUNCS.
 *
 * Compile this file with -fno-builtin (and, for gcc, -fno-tree-loop-distribute-
 * patterns) so the copy loops below are not turned back into calls to themselves;
 * dwgen/toolchain.py does that.
 */
#include <stddef.h>
#include <stdint.h>

__attribute__((naked, used, section(".text.__emu_return")))
void __emu_return(void)
{
    __asm__ volatile("bkpt #0x5a\n\tb __emu_return");
}

#ifndef DWGEN_EMU_LIBC_MEMFUNCS   /* defined when newlib's mem* are linked instead */

void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if ((((uintptr_t)d | (uintptr_t)s) & 3u) == 0) {
        for (; n >= 4; n -= 4, d += 4, s += 4)
            *(uint32_t *)(void *)d = *(const uint32_t *)(const void *)s;
    }
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d == s || n == 0)
        return dst;
    if (d < s || d >= s + n) {
        while (n--)
            *d++ = *s++;
    } else {
        d += n;
        s += n;
        while (n--)
            *--d = *--s;
    }
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;
    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}

/* ARM run-time ABI (RTABI) helpers. Note the argument order of __aeabi_memset. */
void __aeabi_memcpy(void *d, const void *s, size_t n) { memcpy(d, s, n); }
void __aeabi_memcpy4(void *d, const void *s, size_t n) { memcpy(d, s, n); }
void __aeabi_memcpy8(void *d, const void *s, size_t n) { memcpy(d, s, n); }
void __aeabi_memmove(void *d, const void *s, size_t n) { memmove(d, s, n); }
void __aeabi_memmove4(void *d, const void *s, size_t n) { memmove(d, s, n); }
void __aeabi_memmove8(void *d, const void *s, size_t n) { memmove(d, s, n); }
void __aeabi_memset(void *d, size_t n, int c) { memset(d, c, n); }
void __aeabi_memset4(void *d, size_t n, int c) { memset(d, c, n); }
void __aeabi_memset8(void *d, size_t n, int c) { memset(d, c, n); }
void __aeabi_memclr(void *d, size_t n) { memset(d, 0, n); }
void __aeabi_memclr4(void *d, size_t n) { memset(d, 0, n); }
void __aeabi_memclr8(void *d, size_t n) { memset(d, 0, n); }

#endif /* DWGEN_EMU_LIBC_MEMFUNCS */
