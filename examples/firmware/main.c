/*
 * main.c - the application of the example firmware: here it only runs the self-test of
 * the kernels `dwgen emit --test-vectors` wrote into kernels/ (dwgen_test_main.c,
 * compiled with DWGEN_TEST_NO_MAIN so that this main() is the program's).
 *
 * A real application calls the kernels directly, e.g. with `dwgen emit model.tflite`:
 *
 *     #include "dwgen_kernels.h"
 *     static int8_t in[DW1_1_INPUT_SIZE], out[DW1_1_OUTPUT_SIZE];
 *     dw1_1(in, out);
 */
#include "dwgen_semihost.h"

int dwgen_test_all(void); /* dwgen_test_main.c: returns the number of failed kernels */

int main(void)
{
    dwgen_semihost_puts("example firmware: checking the dwgen kernels\n");
    return dwgen_test_all() == 0 ? 0 : 1;
}
