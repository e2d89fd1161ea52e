// A write after free, found when the block leaves a small quarantine (1 MiB) pushed out
// by 8 MiB of later frees, long before exit.
// check-options: --quarantine 1 --no-leaks
// expect-error: heap-use-after-free on address
// expect: is located 16 bytes inside of 64-byte region
// expect: freed by thread T0 here:
// expect-summary: heap-use-after-free
#include <stdio.h>
#include <stdlib.h>
#include "../corpus.h"

int main(void) {
    long *p = opaque(malloc(64));
    free(p);
    p[2] = 7;
    for (int i = 0; i < 2048; i++) free(opaque(malloc(4096)));
    /* Only reached if the checker never looked at p again before exit. */
    puts("churn done");
    return 0;
}
