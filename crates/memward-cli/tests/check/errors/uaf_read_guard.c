// An int read from a freed block: caught at the read itself when freed blocks are
// protected (--guard all).
// check-options: --guard all
// expect-error: heap-use-after-free on address
// expect: READ of
// expect: is located 12 bytes inside of 40-byte region
// expect: freed by thread T0 here:
// expect: previously allocated by thread T0 here:
// expect-frame: main
// expect-summary: heap-use-after-free
#include <stdio.h>
#include <stdlib.h>
#include "../corpus.h"

int main(void) {
    int *p = opaque(malloc(40));
    for (int i = 0; i < 10; i++) p[i] = i;
    free(p);
    printf("%d\n", ((volatile int *)p)[3]);
    return 0;
}
