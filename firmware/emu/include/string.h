/* Fallback <string.h> for dwgen's emulated builds, used only when the compiler has
 * no C library headers of its own (zig's clang for a freestanding target): it is
 * searched with -idirafter, after the system directories. The functions live in
 * firmware/emu/support.c. */
#ifndef DWGEN_EMU_STRING_H
#define DWGEN_EMU_STRING_H
#include <stddef.h>
void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
#endif
