/*
 * dwgen_semihost.h - Arm semihosting for the dwgen firmware harness.
 *
 * The harness prints and reports its exit status through semihosting (BKPT 0xAB on
 * M-profile), which QEMU serves with `-semihosting-config enable=on,target=native`;
 * a debugger (OpenOCD, pyOCD, J-Link) serves it on real hardware. Without a host
 * attached, BKPT halts or faults: do not call these on a board running free.
 */
#ifndef DWGEN_SEMIHOST_H
#define DWGEN_SEMIHOST_H

#ifdef __cplusplus
extern "C" {
#endif

/* Writes a NUL-terminated string to the host console (SYS_WRITE0). */
void dwgen_semihost_puts(const char *s);

/* Ends the program (SYS_EXIT / SYS_EXIT_EXTENDED): QEMU exits with `status`
 * (0..255; any other non-zero value becomes 1). Never returns. */
void dwgen_semihost_exit(int status) __attribute__((noreturn));

/* The output hook of dwgen_test_main.c (see dwgen emit --test-vectors). */
void dwgen_test_puts(const char *s);

#ifdef __cplusplus
}
#endif

#endif /* DWGEN_SEMIHOST_H */
