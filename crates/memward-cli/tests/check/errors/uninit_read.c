// Reads of a new block's bytes before any write. No checker without instrumentation sees
// this; memward fills new blocks with a fixed pattern so such a read gives the same value on
// every run (memcheck reports the branch on it).
// expect-no-report
// expect-exit: 0
// expect-stdout-memward: first byte 0xbe
#include <stdio.h>
#include <stdlib.h>
#include "../corpus.h"

int main(void) {
    unsigned char *p = opaque(malloc(64));
    if (p[0] == 0)
        puts("first byte zero");
    else
        printf("first byte 0x%02x\n", p[0]);
    free(p);
    return 0;
}
